"""``esxcli network ...`` views of an emulated ESXi host, read from the
running lab (placement, the controller's pinning and guest state) and the
lab file.

* ``vm_list``            esxcli network vm list (+ port list): VM, port, MAC,
                         port group, VLAN, uplink in use (TEAM-PNIC)
* ``ip_interface_list``  esxcli network ip interface list (+ ipv4 get):
                         vmk, IPv4, netmask, netstack, port group, MAC, MTU
"""
from __future__ import annotations

from vlab import naming

from .textable import render
from vlab.bindings import switch_bindings
from vlab.lab.resolve import switch_of_port_group

VM_COLUMNS = ("World", "Port ID", "Port", "MAC Address", "Portgroup", "VLAN ID", "Team Uplink")
VMK_COLUMNS = ("Name", "IPv4 Address", "IPv4 Netmask", "Netstack", "Portgroup", "MAC Address",
               "MTU")


def vm_list(ctl, host: str) -> list[dict]:
    ctl.esxi(host)
    applied = ctl.applied()
    pins = applied.get("pinning", {}).get(host, {})
    guests = applied.get("guests", {})
    rows = []
    for b in switch_bindings(ctl.lab, ctl.placement()):
        if b.host != host:
            continue
        for p in b.ports:
            if p.kind != "vnic":
                continue
            mac = (guests.get(p.name) or {}).get("effective_mac") or p.mac
            rows.append({"World": p.owner, "Port ID": p.ofport, "Port": p.name,
                         "MAC Address": mac, "Portgroup": p.port_group,
                         "VLAN ID": b.switch.port_group(p.port_group).vlan,
                         "Team Uplink": pins.get(p.name) or "void"})
    return sorted(rows, key=lambda r: r["Port ID"])


def ip_interface_list(ctl, host: str) -> list[dict]:
    esx = ctl.esxi(host)
    macs = {p.name: p.mac for b in switch_bindings(ctl.lab) if b.host == host for p in b.ports}
    rows = []
    for vmk in esx.vmkernel:
        sw, _ = switch_of_port_group(ctl.lab, esx, vmk.port_group)
        rows.append({"Name": vmk.name, "IPv4 Address": str(vmk.ip.ip),
                     "IPv4 Netmask": str(vmk.ip.netmask),
                     "Netstack": {"default": "defaultTcpipStack", "vmotion": "vmotion",
                                  "provisioning": "vSphereProvisioning"}[vmk.stack],
                     "Portgroup": vmk.port_group, "MAC Address": macs.get(vmk.name),
                     "MTU": sw.mtu})
    return rows


def format_rows(rows: list[dict], columns) -> str:
    """A table like esxcli's: left-aligned, header underlined."""
    return render(rows, columns, rule=True)


def inspect(ctl) -> dict:
    """The running lab for other tools: nodes, every vSwitch port with its
    MAC, IP and uplink in use, uplinks down, guests' NIC state, VTEPs."""
    applied = ctl.applied()
    ips = {naming.vnic_port(vm.name, nic.name): str(nic.ip) if nic.ip else None
           for vm in ctl.lab.vms for nic in vm.vnics}
    ips.update({vmk.name: str(vmk.ip) for h in ctl.lab.esxi_hosts for vmk in h.vmkernel})
    hosts = {}
    for b in switch_bindings(ctl.lab, ctl.placement()):
        pins = applied.get("pinning", {}).get(b.host, {})
        guests = applied.get("guests", {})
        host = hosts.setdefault(b.host, {"vswitches": [], "vmkernel": ip_interface_list(ctl, b.host),
                                         "uplinks_down": applied.get("uplinks_down", {})
                                         .get(b.host, [])})
        host["vswitches"].append({"name": b.bridge, "dpid": f"{b.dpid:016x}", "ports": [
            {"name": p.name, "port_id": p.ofport, "kind": p.kind, "owner": p.owner,
             "port_group": p.port_group,
             "vlan": b.switch.port_group(p.port_group).vlan if p.port_group else None,
             "mac": ((guests.get(p.name) or {}).get("effective_mac") or p.mac),
             "ip": ips.get(p.name), "team_pnic": p.name if p.kind == "uplink"
             else pins.get(p.name)} for p in b.ports]})
    return {"lab": ctl.lab.name, "run": ctl.run_id, "nodes": ctl.pids,
            "esxi_hosts": hosts, "guests": applied.get("guests", {}),
            "vteps": [], "generation": applied.get("generation", 0)}

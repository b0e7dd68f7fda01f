"""``esxcli network ...`` views of an emulated ESXi host, read from the
running lab (placement, the controller's pinning and guest state) and the
lab file.

* ``vm_list``            esxcli network vm list (+ port list): VM, port, MAC,
                         port group, VLAN, uplink in use (TEAM-PNIC)
* ``ip_interface_list``  esxcli network ip interface list (+ ipv4 get):
                         vmk, IPv4, netmask, netstack, port group, MAC, MTU
* ``nsx_tables``         the NSX controller's VTEP, MAC and ARP tables
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Optional

from controller.nsx import vteps
from controller.portsecurity import PortSecurity
from vlab import control, naming
from vlab.bindings import GuestNic, switch_bindings
from vlab.lab.resolve import sites_of, switch_of_port_group
from vlab.operations import OperationError

from .textable import render

VM_COLUMNS = ("World", "Port ID", "Port", "MAC Address", "Portgroup", "VLAN ID", "Team Uplink")
VMK_COLUMNS = ("Name", "IPv4 Address", "IPv4 Netmask", "Netstack", "Portgroup", "MAC Address", "MTU")


def _with_guests(b, guests: dict):
    """Binding ``b`` with what the hosts reported of their guests' NICs."""
    return b.with_guests({name: GuestNic.from_json(g) for name, g in guests.items() if g is not None})


def _mac(b, p) -> str:
    """The MAC the vSwitch holds for port ``p``: a vNIC's effective MAC
    (the guest's after an accepted MAC change), else its own."""
    return PortSecurity.of(b, p).effective_mac if p.kind == "vnic" else (p.mac or "").lower()


def vm_list(ctl, host: str) -> list[dict]:
    ctl.esxi(host)
    applied = ctl.applied()
    pins = applied.get("pinning", {}).get(host, {})
    guests = applied.get("guests", {})
    rows = []
    for b in switch_bindings(ctl.lab, ctl.placement()):
        if b.host != host:
            continue
        b = _with_guests(b, guests)
        for p in b.ports:
            if p.kind != "vnic":
                continue
            mac = _mac(b, p)
            # A logical switch port shows its VNI, as a virtualwire port group.
            rows.append(
                {
                    "World": p.owner,
                    "Port ID": p.ofport,
                    "Port": p.name,
                    "MAC Address": mac,
                    "Portgroup": p.port_group or f"vxw-{p.logical_switch}",
                    "VLAN ID": (
                        b.switch.port_group(p.port_group).vlan
                        if p.port_group
                        else _vni(ctl.lab, p.logical_switch)
                    ),
                    "Team Uplink": pins.get(p.name) or "void",
                }
            )
    return sorted(rows, key=lambda r: r["Port ID"])


def ip_interface_list(ctl, host: str) -> list[dict]:
    esx = ctl.esxi(host)
    macs = {p.name: p.mac for b in switch_bindings(ctl.lab) if b.host == host for p in b.ports}
    rows = []
    for vmk in esx.vmkernel:
        sw, _ = switch_of_port_group(ctl.lab, esx, vmk.port_group)
        rows.append(
            {
                "Name": vmk.name,
                "IPv4 Address": str(vmk.ip.ip),
                "IPv4 Netmask": str(vmk.ip.netmask),
                "Netstack": {
                    "default": "defaultTcpipStack",
                    "vmotion": "vmotion",
                    "provisioning": "vSphereProvisioning",
                    "vxlan": "vxlan",
                }[vmk.stack],
                "Portgroup": vmk.port_group,
                "MAC Address": macs.get(vmk.name),
                "MTU": sw.mtu,
            }
        )
    return rows


def _vni(lab, logical_switch: str) -> int:
    return next(ls.vni for ls in lab.nsx.logical_switches if ls.name == logical_switch)


def nsx_tables(ctl) -> dict:
    """The NSX controller's tables as the controller last wrote them."""
    if ctl.lab.nsx is None:
        raise OperationError(f"lab {ctl.lab.name} has no nsx section (no logical switches)")
    return control.read_json(ctl.dir / control.NSX_TABLES) or {}


def format_rows(rows: list[dict], columns) -> str:
    """A table like esxcli's: left-aligned, header underlined."""
    return render(rows, columns, rule=True)


def _shaping(b, p) -> Optional[dict]:
    """A port's traffic shaping policy in vSphere's units (Kbit/s, KB), per
    direction in the switch's terms; None for ports without a port group."""
    if p.port_group is None:
        return None
    shaping = b.switch.port_group(p.port_group).shaping
    directions = {"ingress": shaping.ingress, "egress": shaping.egress}
    return {d: None if s is None else asdict(s) for d, s in directions.items()}


def inspect(ctl) -> dict:
    """The running lab for other tools: nodes, every vSwitch port with its
    MAC, IP and uplink in use, uplinks down, guests' NIC state, VTEPs."""
    applied = ctl.applied()
    ips = {
        naming.vnic_port(vm.name, nic.name): str(nic.ip) if nic.ip else None
        for vm in ctl.lab.vms
        for nic in vm.vnics
    }
    ips.update({vmk.name: str(vmk.ip) for h in ctl.lab.esxi_hosts for vmk in h.vmkernel})
    hosts = {}
    guests = applied.get("guests", {})
    for b in switch_bindings(ctl.lab, ctl.placement()):
        pins = applied.get("pinning", {}).get(b.host, {})
        b = _with_guests(b, guests)
        host = hosts.setdefault(
            b.host,
            {
                "vswitches": [],
                "vmkernel": ip_interface_list(ctl, b.host),
                "uplinks_down": applied.get("uplinks_down", {}).get(b.host, []),
                "site": next(h.site for h in ctl.lab.esxi_hosts if h.name == b.host),
            },
        )
        host["vswitches"].append(
            {
                "name": b.bridge,
                "dpid": f"{b.dpid:016x}",
                "ports": [
                    {
                        "name": p.name,
                        "port_id": p.ofport,
                        "kind": p.kind,
                        "owner": p.owner,
                        "port_group": p.port_group,
                        "logical_switch": p.logical_switch,
                        "vlan": b.switch.port_group(p.port_group).vlan if p.port_group else None,
                        "mac": _mac(b, p) or None,
                        "ip": ips.get(p.name),
                        "team_pnic": p.name if p.kind == "uplink" else pins.get(p.name),
                        "shaping": _shaping(b, p),
                    }
                    for p in b.ports
                ],
            }
        )
    return {
        "lab": ctl.lab.name,
        "run": ctl.run_id,
        "nodes": ctl.pids,
        "esxi_hosts": hosts,
        "guests": applied.get("guests", {}),
        "sites": sites_of(ctl.lab),
        "vteps": [{"host": v.host, "ip": str(v.ip), "mac": v.mac} for v in vteps(ctl.lab).values()],
        "nsx": nsx_tables(ctl) if ctl.lab.nsx is not None else None,
        "generation": applied.get("generation", 0),
    }

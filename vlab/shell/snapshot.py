"""The running lab as data for other tools (``vlab inspect``, tests,
experiments), read from the same host facts the ESXi commands show.

* ``inspect``     nodes, every vSwitch port with its ESXi port number, MAC,
                  IP and uplink in use, vmks, uplinks down, guests, VTEPs
* ``nsx_tables``  the NSX controller's VTEP, MAC and ARP tables
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Optional

from controller.nsx import vteps
from vlab import control, naming
from vlab.lab.resolve import sites_of
from vlab.operations import OperationError

from .hostfacts import NETSTACK, HostFacts


def _vmkernel(f: HostFacts) -> list[dict]:
    """The host's vmks in ``esxcli network ip interface list``'s terms."""
    rows = []
    for vmk in f.esx.vmkernel:
        b = f.switch_of(vmk.name)
        ip = f.vmk_ipv4(vmk.name) or vmk.ip  # as the vmk has it now
        rows.append(
            {
                "Name": vmk.name,
                "IPv4 Address": str(ip.ip),
                "IPv4 Netmask": str(ip.netmask),
                "Netstack": NETSTACK[vmk.stack],
                "Portgroup": vmk.port_group,
                "MAC Address": next(p.mac for p in f.ports() if p.name == vmk.name),
                "MTU": f.mtu(vmk.name, b.switch.mtu),
            }
        )
    return rows


def nsx_tables(ctl) -> dict:
    """The NSX controller's tables as the controller last wrote them."""
    if ctl.lab.nsx is None:
        raise OperationError(f"lab {ctl.lab.name} has no nsx section (no logical switches)")
    return control.read_json(ctl.dir / control.NSX_TABLES) or {}


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
    ESXi port number, MAC, IP and uplink in use, uplinks down, guests' NIC
    state, VTEPs."""
    applied = ctl.applied()
    ips = {
        naming.vnic_port(vm.name, nic.name): str(nic.ip) if nic.ip else None
        for vm in ctl.lab.vms
        for nic in vm.vnics
    }
    hosts = {}
    for esx in ctl.lab.esxi_hosts:
        f = HostFacts(ctl, esx.name)
        # vmk names repeat on every host (each has its vmk0).
        here = {**ips, **{vmk.name: str(vmk.ip) for vmk in esx.vmkernel}}
        hosts[esx.name] = {
            "vswitches": [
                {
                    "name": b.bridge,
                    "dpid": f"{b.dpid:016x}",
                    "ports": [
                        {
                            "name": p.name,
                            "port_id": p.ofport,
                            "port_num": b.port_num(p),
                            "kind": p.kind,
                            "owner": p.owner,
                            "port_group": p.port_group,
                            "logical_switch": p.logical_switch,
                            "vlan": b.switch.port_group(p.port_group).vlan if p.port_group else None,
                            "mac": f.mac(b, p) or None,
                            "ip": here.get(p.name),
                            "team_pnic": p.name if p.kind == "uplink" else f.pinned(p.name),
                            "shaping": _shaping(b, p),
                        }
                        for p in b.ports
                    ],
                }
                for b in f.bindings
            ],
            "vmkernel": _vmkernel(f),
            "uplinks_down": sorted(f.uplinks_down()),
            "site": esx.site,
        }
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

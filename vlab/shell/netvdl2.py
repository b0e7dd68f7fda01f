"""``net-vdl2`` on an emulated ESXi host: NSX for vSphere's own view of the
host's VXLAN state (VDL2 is the ESXi module that carries logical switches),
in its nested ``Key: value`` layout.

    net-vdl2 -l                                      the VXLAN VDS, its VTEP vmknic, its networks
    net-vdl2 -M vtep|mac|arp -s VDS -n VNI           one network's table on this host

The facts are ``esxcli network vswitch dvs vmware vxlan``'s
(``esxcli_vxlan``): one implementation, two layouts. What ESXi prints and the
testbed has no counterpart for (the VDS's UUID, IP acquire timeout, the
entries' internal flags) is left out; the UDP port is the one the host's
VTEP really uses (OVS's 4789, NSX-V's default since 6.2.3).
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from vlab.operations import OperationError
from vlab.protocols import VXLAN_PORT

from . import esxcli_vxlan
from .esxcli_output import EsxcliError, value
from .hostfacts import HostFacts

USAGE = """Usage: net-vdl2 -l
       net-vdl2 -M vtep|mac|arp -s VDS -n VNI
    -l    the VXLAN-prepared VDS, its VTEP vmknic and its VXLAN networks
    -M    one VXLAN network's VTEP, MAC or ARP table on this host"""
TABLES = {
    "vtep": ("VTEP", esxcli_vxlan.vtep_list),
    "mac": ("MAC", esxcli_vxlan.mac_list),
    "arp": ("ARP", esxcli_vxlan.arp_list),
}


def _lines(indent: int, fields: list[tuple[str, object]]) -> list[str]:
    return [("\t" * indent + f"{k}:\t{value(v)}").rstrip() for k, v in fields]


def listing(f: HostFacts) -> str:
    """``net-vdl2 -l``."""
    vmk, b = esxcli_vxlan.vtep_vmk(f)
    (vds,) = esxcli_vxlan.vxlan_list(f, None).rows
    port = next(p for p in b.ports if p.name == vmk.name)
    lines = [
        "VXLAN Global States:",
        *_lines(1, [("Control plane Out-Of-Sync", "No"), ("UDP port", VXLAN_PORT)]),
    ]
    lines.append(f"VXLAN VDS:\t{vds['VDS Name']}")
    lines += _lines(1, [(k, vds[k]) for k in ("VDS ID", "MTU", "Segment ID", "Gateway IP", "Gateway MAC")])
    lines += _lines(1, [("Vmknic count", vds["Vmknic Count"])])
    lines += _lines(2, [("VXLAN vmknic", vmk.name)])
    lines += _lines(
        3,
        [
            ("VDS port ID", port.ofport),
            ("Switch port ID", b.port_num(port)),
            ("Endpoint ID", 0),
            ("VLAN ID", b.switch.port_group(vmk.port_group).vlan or 0),
            ("IP", vmk.ip.ip),
            ("Netmask", vmk.ip.netmask),
            ("Segment ID", vmk.ip.network.network_address),
            ("Multicast group count", 0),
        ],
    )
    networks = esxcli_vxlan.network_list(f, argparse.Namespace(vds_name=b.bridge)).rows
    lines += _lines(1, [("Network count", len(networks))])
    for n in networks:
        lines += _lines(2, [("VXLAN network", n["VXLAN ID"])])
        lines += _lines(
            3,
            [
                ("Multicast IP", n["Multicast IP"]),
                ("Control plane", n["Control Plane"]),
                ("Controller", n["Controller Connection"]),
                ("MAC entry count", n["MAC Entry Count"]),
                ("ARP entry count", n["ARP Entry Count"]),
                ("Port count", n["Port Count"]),
            ],
        )
    return "\n".join(lines)


def table(f: HostFacts, which: str, vds: str, vni: int) -> str:
    """``net-vdl2 -M which -s vds -n vni``: the entry count, then each entry."""
    title, view = TABLES[which]
    rows = view(f, argparse.Namespace(vds_name=vds, vxlan_id=vni)).rows
    lines = _lines(1, [(f"{title} entry count", len(rows))])
    for r in rows:
        lines += _lines(2, list(r.items()))
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="net-vdl2", add_help=False, exit_on_error=False)
    p.add_argument("-l", action="store_true")
    p.add_argument("-M", choices=sorted(TABLES))
    p.add_argument("-s")
    p.add_argument("-n", type=int)
    p.add_argument("-h", "--help", action="store_true")
    return p


def run(ctl, host: str, argv: list[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    try:
        a = _parser().parse_args(argv)
    except (argparse.ArgumentError, SystemExit):
        print(USAGE, file=err)
        return 1
    if a.help:
        print(USAGE, file=out)
        return 0
    if a.l == bool(a.M) or (a.M and (a.s is None or a.n is None)):
        print(USAGE, file=err)
        return 1
    try:
        f = HostFacts(ctl, host)
        print(listing(f) if a.l else table(f, a.M, a.s, a.n), file=out)
    except (EsxcliError, OperationError) as exc:
        print(f"net-vdl2: {exc}", file=err)
        return 1
    return 0

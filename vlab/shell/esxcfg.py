"""The esxcfg-* listings of an emulated ESXi host (``esxcfg-nics -l``,
``esxcfg-vmknic -l``, ``esxcfg-vswitch -l``): ESXi's older commands, the
same facts as esxcli in their own fixed-width layouts.

ESXi's capacity columns (Num Ports, Configured Ports) and the vmknic's TSO
MSS are left out: an OVS bridge has no port limit and the testbed turns
TSO off on every vmk, so those columns would state limits nothing here
enforces."""

from __future__ import annotations

import sys
from ipaddress import IPv4Interface
from typing import TextIO

from vlab.operations import OperationError

from .hostfacts import NETSTACK, HostFacts


def nics(f: HostFacts) -> str:
    head = f"{'Name':<8}{'PCI':<13}{'Driver':<12}{'Link':<5}{'Speed':<11}{'Duplex':<7}"
    lines = [f"{head}{'MAC Address':<18}{'MTU':<7}Description"]
    for n in f.nics():
        speed = f"{n['Speed']}Mbps"
        lines.append(
            f"{n['Name']:<8}{n['PCI Device']:<13}{n['Driver']:<12}{n['Link Status']:<5}{speed:<11}"
            f"{n['Duplex']:<7}{n['MAC Address']:<18}{n['MTU']:<7}{n['Description']}"
        )
    return "\n".join(lines)


def vmknics(f: HostFacts) -> str:
    ports = {p.name: p for p in f.ports()}
    head = (
        f"{'Interface':<11}{'Port Group/DVPort/Opaque Network':<40}{'IP Family':<10}{'IP Address':<16}"
        f"{'Netmask':<16}{'Broadcast':<16}{'MAC Address':<18}{'MTU':<8}{'Enabled':<8}{'Type':<8}NetStack"
    )
    lines = [head]
    for v in f.esx.vmkernel:
        b = f.switch_of(v.name)
        link = f.links().get(v.name, {})
        where = v.port_group if b.switch.kind == "standard" else str(ports[v.name].binding.ofport)
        enabled = "true" if "UP" in link.get("flags", []) else "false"
        mtu = f.mtu(v.name, b.switch.mtu)
        ip = f.vmk_ipv4(v.name) or IPv4Interface("0.0.0.0/0")
        lines.append(
            f"{v.name:<11}{where:<40}{'IPv4':<10}{str(ip.ip):<16}{str(ip.netmask):<16}"
            f"{str(ip.network.broadcast_address):<16}{ports[v.name].mac:<18}{mtu:<8}"
            f"{enabled:<8}{'STATIC':<8}{NETSTACK[v.stack]}"
        )
    return "\n".join(lines)


def vswitches(f: HostFacts) -> str:
    blocks = []
    for b in f.bindings:
        used = f.used_ports(b)
        label = "Switch Name" if b.switch.kind == "standard" else "DVS Name"
        lines = [
            f"{label:<17}{'Used Ports':<12}{'MTU':<8}Uplinks",
            f"{b.bridge:<17}{used:<12}{b.switch.mtu:<8}{','.join(b.switch.uplinks)}",
            "",
        ]
        if b.switch.kind == "standard":
            lines.append(f"  {'PortGroup Name':<32}{'VLAN ID':<9}{'Used Ports':<12}Uplinks")
            for pg in b.switch.port_groups:
                n = sum(1 for p in b.ports if p.port_group == pg.name)
                team = ",".join(pg.teaming.active + pg.teaming.standby)
                lines.append(f"  {pg.name:<32}{pg.vlan:<9}{n:<12}{team}")
        else:
            lines.append(f"  {'DVPort ID':<20}{'In Use':<12}Client")
            for p in (p for p in f.ports() if p.switch == b.bridge):
                lines.append(f"  {p.binding.ofport:<20}{1:<12}{p.client}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


LISTINGS = {"esxcfg-nics": nics, "esxcfg-vmknic": vmknics, "esxcfg-vswitch": vswitches}


def command(name: str):
    """The entry point of ``esxcfg-<name>``: only its ``-l`` listing."""

    def run(ctl, host: str, argv: list[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
        if argv != ["-l"]:
            print(f"Usage: {name} -l   (list; the testbed changes configuration with esxcli)", file=err)
            return 1
        try:
            print(LISTINGS[name](HostFacts(ctl, host)), file=out)
        except OperationError as exc:
            print(f"{name}: {exc}", file=err)
            return 1
        return 0

    return run

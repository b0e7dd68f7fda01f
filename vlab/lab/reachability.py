"""Who should reach whom, derived from the lab alone (no network needed).

An endpoint is an addressed vNIC, VMkernel adapter or host interface. It sits
in an L2 segment: (physical island, VLAN), where an island is a set of
physical switches joined by links, and VLAN 0 means untagged. Two endpoints
reach each other when they share a segment and a subnet, or when each one's
gateway is an interface of the same router in its own segment. A logical
switch is one segment across all hosts, and a distributed router has an
interface in each of its logical switches.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from typing import Optional

from .lacp import why_never_forms
from .model import Lab
from .resolve import find, switch_of_port_group

Segment = tuple


@dataclass(frozen=True)
class Endpoint:
    """Something that answers ping: ``node`` is the Mininet node it lives in."""

    name: str  # e.g. "vm1a", "esx1/vmk0", "router/eth1"
    node: str
    ip: IPv4Interface
    gateway: Optional[IPv4Address]
    segment: Segment


def _islands(lab: Lab) -> dict[str, str]:
    """Physical switch -> representative of its island (union-find on links)."""
    parent = {sw.name: sw.name for sw in lab.physical_switches}

    def root(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for link in lab.dci_links:
        parent[root(link.a.switch)] = root(link.b.switch)
    return {name: root(name) for name in parent}


def endpoints(lab: Lab) -> list[Endpoint]:
    island = _islands(lab)
    out: list[Endpoint] = []

    lacp_ports = {
        (sw.name, p) for sw in lab.physical_switches for g in sw.lags if g.lacp != "off" for p in g.ports
    }

    def host_segment(host, pg_name) -> Segment:
        sw, pg = switch_of_port_group(lab, host, pg_name)
        plugs = {u.name: (u.switch, u.port) for u in host.uplinks}
        internal = (host.name, sw.name, pg.vlan)
        team = pg.teaming
        lag = next((g for g in sw.lags if g.name == team.lag), None)
        if lag is not None:
            if why_never_forms(lab, host, lag) is not None:
                return internal  # its only way out never forms
            usable = list(lag.members)
        else:
            # An uplink in an LACP port channel carries nothing for a team
            # that speaks no LACP (the channel never bundles it).
            usable = [u for u in team.active + team.standby if plugs[u] not in lacp_ports]
        if not usable:
            return internal  # no uplink: internal-only
        return (island[plugs[usable[0]][0]], pg.vlan)

    for host in lab.esxi_hosts:
        for vmk in host.vmkernel:
            out.append(
                Endpoint(
                    f"{host.name}/{vmk.name}",
                    host.name,
                    vmk.ip,
                    vmk.gateway,
                    host_segment(host, vmk.port_group),
                )
            )
    for vm in lab.vms:
        host = find(lab.esxi_hosts, vm.host)
        for nic in vm.vnics:
            if nic.ip is None:
                continue
            name = vm.name if len(vm.vnics) == 1 else f"{vm.name}/{nic.name}"
            # A logical switch is one segment wherever its VMs run.
            segment = (
                ("nsx", nic.logical_switch)
                if nic.logical_switch is not None
                else host_segment(host, nic.port_group)
            )
            out.append(Endpoint(name, vm.name, nic.ip, nic.gateway, segment))
    port_cfg = {(sw.name, p.port): p for sw in lab.physical_switches for p in sw.ports}
    for h in lab.hosts:
        for intf in h.interfaces:
            if intf.ip is None:
                continue
            cfg = port_cfg.get((intf.switch, intf.port))
            vlan = intf.vlan or (cfg.vlan if cfg is not None and cfg.mode == "access" else 0)
            out.append(
                Endpoint(f"{h.name}/{intf.name}", h.name, intf.ip, h.gateway, (island[intf.switch], vlan))
            )
    return out


def _same_l2(a: Endpoint, b: Endpoint) -> bool:
    return a.segment == b.segment and a.ip.network == b.ip.network


def expected_reachability(lab: Lab) -> dict[tuple[str, str], bool]:
    """(source endpoint, destination endpoint) -> should ping succeed."""
    eps = endpoints(lab)
    routers = {h.name for h in lab.hosts if h.kind == "router"}
    router_ifs = [e for e in eps if e.node in routers]

    def router_for(e: Endpoint) -> Optional[str]:
        for r in router_ifs:
            if e.gateway == r.ip.ip and _same_l2(e, r):
                return r.node
        return None

    # Distributed routers: their interfaces answer on every host, so they
    # are router interfaces in their logical switch's segment.
    for dlr in lab.nsx.distributed_routers if lab.nsx else ():
        for lif in dlr.interfaces:
            router_ifs.append(
                Endpoint(
                    f"{dlr.name}/{lif.logical_switch}",
                    f"nsx:{dlr.name}",
                    lif.ip,
                    None,
                    ("nsx", lif.logical_switch),
                )
            )

    def routed(a: Endpoint, b: Endpoint) -> bool:
        ra, rb = router_for(a), router_for(b)
        return ra is not None and ra == rb and any(r.node == ra and _same_l2(r, b) for r in router_ifs)

    return {
        (a.name, b.name): _same_l2(a, b) or routed(a, b)
        for a in eps
        for b in eps
        if a is not b and a.node != b.node
    }

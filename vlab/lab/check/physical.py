"""Checks of the physical side: physical switches (ports, LAGs, SPAN),
routers, firewalls and plain hosts, and DCI links."""

from __future__ import annotations

from typing import Iterator

from ... import naming
from ..model import Lab
from .common import Problem, Seen, dupes, ifname, shapeable
from .firewalls import rules


def physical_switches(lab: Lab, seen: Seen) -> Iterator[Problem]:
    yield from dupes(lab.physical_switches, "physical switch", "physical_switches")
    for i, sw in enumerate(lab.physical_switches):
        base = f"physical_switches[{i}]"
        yield from seen.site(sw.site, f"{base}.site")
        yield from dupes(sw.ports, "port", f"{base}.ports", key=lambda p: p.port)
        lag_of = {port: lag.name for lag in sw.lags for port in lag.ports}
        for j, p in enumerate(sw.ports):
            if p.port in lag_of:
                yield (
                    f"{base}.ports[{j}]",
                    f"port {p.port} is in LAG {lag_of[p.port]!r}: a port channel's members carry every VLAN "
                    "here (the testbed configures no VLANs on a LAG)",
                )
            if p.mode == "access" and p.vlan is None:
                yield f"{base}.ports[{j}].vlan", "an access port needs a vlan"
            if p.mode == "trunk" and p.vlan is not None:
                yield f"{base}.ports[{j}].vlan", "vlan is for access ports; trunks use allowed_vlans"
            if p.mode == "access" and p.allowed_vlans is not None:
                yield (
                    f"{base}.ports[{j}].allowed_vlans",
                    "allowed_vlans is for trunk ports; an access port carries only its vlan",
                )
            yield from ifname(naming.fabric_port(sw.name, p.port), f"{base}.ports[{j}].port", "switch port")
        yield from dupes(sw.lags, "LAG", f"{base}.lags")
        in_lag: dict[int, str] = {}
        for j, lag in enumerate(sw.lags):
            for k, port in enumerate(lag.ports):
                if port in in_lag:
                    yield (f"{base}.lags[{j}].ports[{k}]", f"port {port} is already in LAG {in_lag[port]!r}")
                in_lag[port] = lag.name
            if lag.lacp == "off" and lag.lacp_rate is not None:
                yield (
                    f"{base}.lags[{j}].lacp_rate",
                    "lacp_rate is the rate of LACPDUs; a static LAG (lacp: off) sends none",
                )
        yield from dupes(sw.spans, "SPAN session", f"{base}.spans")
        for j, span in enumerate(sw.spans):
            if span.destination in span.source_ports:
                yield (
                    f"{base}.spans[{j}].destination",
                    f"port {span.destination} is also a source of the session",
                )
            if span.destination in in_lag:
                yield (
                    f"{base}.spans[{j}].destination",
                    f"port {span.destination} is in LAG {in_lag[span.destination]!r}",
                )
            for k, port in enumerate(span.source_ports):
                if port in in_lag:
                    yield (
                        f"{base}.spans[{j}].source_ports[{k}]",
                        f"port {port} is in LAG {in_lag[port]!r}: mirror a port that is not in a LAG",
                    )
        seen.switch_ports[sw.name] = set()


def cabling(lab: Lab, seen: Seen) -> Iterator[Problem]:
    """After every cable is known: each LAG member and SPAN port is cabled
    (an uncabled member would leave a one-port channel that never forms,
    and a SPAN session without its ports would silently not exist)."""
    for i, sw in enumerate(lab.physical_switches):
        base = f"physical_switches[{i}]"
        for j, lag in enumerate(sw.lags):
            for k, port in enumerate(lag.ports):
                if (sw.name, port) not in seen.used_ports:
                    yield f"{base}.lags[{j}].ports[{k}]", f"port {port} of LAG {lag.name!r} has no cable"
        for j, span in enumerate(sw.spans):
            ends = [("destination", span.destination)]
            ends += [(f"source_ports[{k}]", p) for k, p in enumerate(span.source_ports)]
            for where, port in ends:
                if (sw.name, port) not in seen.used_ports:
                    yield f"{base}.spans[{j}].{where}", f"port {port} has no cable"


def hosts(lab: Lab, seen: Seen) -> Iterator[Problem]:
    """Routers, firewalls and plain hosts."""
    sw_cfg = {sw.name: {p.port: p for p in sw.ports} for sw in lab.physical_switches}
    lag_ports = {(sw.name, p) for sw in lab.physical_switches for lag in sw.lags for p in lag.ports}
    for i, h in enumerate(lab.hosts):
        base = f"hosts[{i}]"
        yield from seen.site(h.site, f"{base}.site")
        yield from dupes(h.interfaces, "interface", f"{base}.interfaces")
        for j, intf in enumerate(h.interfaces):
            ibase = f"{base}.interfaces[{j}]"
            yield from seen.plug(intf.switch, intf.port, ibase, f"{h.name}/{intf.name}")
            cfg = sw_cfg.get(intf.switch, {}).get(intf.port)
            if intf.vlan is not None and (intf.switch, intf.port) in lag_ports:
                yield (
                    f"{ibase}.vlan",
                    f"{intf.switch} port {intf.port} is in a LAG: its members carry every VLAN here",
                )
            if intf.vlan is not None and cfg is not None:
                yield (
                    f"{ibase}.vlan",
                    (
                        f"{intf.switch} port {intf.port} is configured under "
                        "physical_switches; set the VLAN in one place"
                    ),
                )
            yield from seen.unique_addr(intf.mac, intf.ip, ibase)
            if intf.vip is not None:
                yield from ifname(naming.virtual_gateway(intf.name), f"{ibase}.name", "virtual gateway (vip)")
            if intf.vip is not None and (
                intf.ip is None or intf.vip.ip not in intf.ip.network or intf.vip.ip == intf.ip.ip
            ):
                yield (
                    f"{ibase}.vip.ip",
                    f"the virtual gateway {intf.vip.ip} must be another address in the interface's subnet",
                )
        if h.gateway is not None and not any(
            x.ip is not None and h.gateway in x.ip.network for x in h.interfaces
        ):
            yield f"{base}.gateway", f"gateway {h.gateway} is in none of {h.name}'s subnets"
        for j, r in enumerate(h.routes):
            if not any(x.ip is not None and r.via in x.ip.network for x in h.interfaces):
                yield f"{base}.routes[{j}].via", f"next hop {r.via} is in none of {h.name}'s subnets"
        if h.kind == "host" and any(x.vip is not None for x in h.interfaces):
            j = next(j for j, x in enumerate(h.interfaces) if x.vip is not None)
            yield f"{base}.interfaces[{j}].vip", "a virtual gateway is a router's (kind: router or firewall)"
        if h.kind == "firewall" and h.firewall is None:
            yield f"{base}.firewall", "a host of kind firewall needs a firewall section (rules)"
        elif h.kind != "firewall" and h.firewall is not None:
            yield f"{base}.firewall", f"only a host of kind firewall filters (this one is {h.kind})"
        elif h.firewall is not None:
            yield from rules(lab, h.firewall.rules, f"{base}.firewall.rules", groups=False)


def dci_links(lab: Lab, seen: Seen) -> Iterator[Problem]:
    yield from dupes(lab.dci_links, "DCI link", "dci_links")
    for i, link in enumerate(lab.dci_links):
        for end in ("a", "b"):
            ref = getattr(link, end)
            yield from seen.plug(ref.switch, ref.port, f"dci_links[{i}].{end}", f"DCI {link.name}")
        yield from shapeable(lab, link.speed, f"dci_links[{i}].speed")

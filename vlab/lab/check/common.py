"""What the cross-reference checks share: the problem type, small checks
used everywhere, and ``Seen``: what the checks met so far (sites, plugged
switch ports, addresses, port groups, VTEPs), since a problem is reported
where a reader meets it, in the file's order."""

from __future__ import annotations

from ipaddress import IPv4Interface
from typing import Iterator, Optional

from ... import naming
from ..model import Lab

Problem = tuple[str, str]  # (path in the file, what is wrong)


def dupes(items, what: str, base: str, key=lambda x: x.name) -> Iterator[Problem]:
    seen: dict = {}
    for i, item in enumerate(items):
        k = key(item)
        if k in seen:
            yield f"{base}[{i}]", f"duplicate {what} {k!r} (first at {base}[{seen[k]}])"
        seen.setdefault(k, i)


def ifname(name: str, path: str, role: str) -> Iterator[Problem]:
    if len(name) > naming.IFNAMSIZ:
        yield (
            path,
            (
                f"{role} interface name {name!r} is {len(name)} characters; "
                f"Linux allows at most {naming.IFNAMSIZ}"
            ),
        )


def gateway(ip: Optional[IPv4Interface], gw, path: str) -> Iterator[Problem]:
    if gw is None:
        return
    if ip is None:
        yield path, "gateway given without an ip"
    elif gw not in ip.network:
        yield path, f"gateway {gw} is not in the subnet {ip.network}"
    elif gw == ip.ip:
        yield path, f"gateway {gw} is the interface's own address"


# Mininet's htb shaping refuses rates above 1000 Mbit/s (it logs and leaves
# the link unshaped), and a userspace OVS datapath carries < 1 Gbit/s per
# flow here anyway: a lab asking for more would silently measure the CPU.
MAX_LINK_MBPS = 1000


def shapeable(lab: Lab, gbps: float, path: str) -> Iterator[Problem]:
    mbps = gbps * 1000 * lab.link_scale
    if mbps > MAX_LINK_MBPS:
        yield (
            path,
            (
                f"{gbps:g} Gbit/s x link_scale {lab.link_scale:g} = {mbps:g} Mbit/s; "
                f"emulated links must stay at or below {MAX_LINK_MBPS} Mbit/s "
                "(lower link_scale)"
            ),
        )


class Seen:
    """What the checks have met so far in the file."""

    def __init__(self, lab: Lab):
        self.sites = {s.name for s in lab.sites}
        self.switch_ports: dict[str, set[int]] = {}  # physical switch -> (declared)
        self.used_ports: dict[tuple[str, int], str] = {}  # (switch, port) -> who is plugged in
        self.macs: dict[str, str] = {}
        self.ips: dict[object, str] = {}
        self.host_pgs: dict[str, dict[str, int]] = {}  # ESXi host -> port group -> VLAN
        self.vteps: dict[str, str] = {}  # ESXi host -> its VTEP vmk

    def site(self, site: Optional[str], path: str) -> Iterator[Problem]:
        if site is not None and site not in self.sites:
            yield path, f"unknown site {site!r}"

    def plug(self, switch: str, port: int, path: str, who: str) -> Iterator[Problem]:
        """A cable from ``who`` into ``switch`` port ``port``."""
        if switch not in self.switch_ports:
            yield f"{path}.switch", f"unknown physical switch {switch!r}"
            return
        if (switch, port) in self.used_ports:
            yield (
                f"{path}.port",
                (f"{switch} port {port} is already used by {self.used_ports[(switch, port)]}"),
            )
            return
        self.used_ports[(switch, port)] = who
        yield from ifname(naming.fabric_port(switch, port), f"{path}.port", "switch port")

    def unique_addr(self, mac, ip, path: str) -> Iterator[Problem]:
        """MACs and IPs are unique across the lab."""
        if mac is not None:
            if mac in self.macs:
                yield f"{path}.mac", f"duplicate MAC {mac} (first at {self.macs[mac]})"
            self.macs.setdefault(mac, f"{path}.mac")
        if ip is not None:
            if ip.ip in self.ips:
                yield f"{path}.ip", f"duplicate IP {ip.ip} (first at {self.ips[ip.ip]})"
            self.ips.setdefault(ip.ip, f"{path}.ip")

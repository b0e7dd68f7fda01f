"""The NSX controller's tables, built from what the hosts report.

NSX-v controllers keep, per logical switch (VNI):

* the **VTEP table**: which hosts' VTEPs have joined the VNI (a host joins
  when a VM port on that logical switch connects there, and leaves when the
  last one disconnects or vMotions away);
* the **MAC table**: VM MAC -> the VTEP of the host its port is on;
* the **ARP table**: VM IP -> MAC, from the IPs the hosts discover by the
  logical switch's ``ip_discovery`` methods: the addresses the guest has
  configured (VMware Tools), the sender of the VM's own ARP frames (ARP
  snooping) and the address a DHCP ACK gives it (DHCP snooping); each
  entry says which method(s) found it.

Hosts replicate BUM frames in unicast mode from these tables: a copy to each
VTEP of the VNI in their own transport subnet, and one copy to a proxy VTEP
(UTEP) in every other subnet, which replicates it to the VTEPs of its own
subnet. The UTEP of (VNI, subnet) is chosen here, so every host agrees.

Pure: built from the lab and the current bindings; no sockets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Iterable, Optional

from vlab.bindings import GuestNic, SwitchBinding, vmk_mac
from vlab.lab.model import Lab, LogicalSwitch
from vlab.lab.resolve import vtep_of

from .portsecurity import PortSecurity


@dataclass(frozen=True)
class Vtep:
    """A host's VXLAN tunnel endpoint (its VMkernel adapter on the vxlan stack)."""

    host: str
    ip: IPv4Interface
    mac: str

    @property
    def subnet(self) -> IPv4Network:
        return self.ip.network


@dataclass(frozen=True)
class RouterPort:
    """A distributed router's interface (LIF) on one logical switch."""

    router: str
    mac: str  # the vMAC, the same on every host
    ip: IPv4Interface


@dataclass(frozen=True)
class NsxTables:
    """The controller's tables plus the intent they are read with."""

    vteps: dict[str, Vtep]  # host -> VTEP
    switches: dict[int, LogicalSwitch]  # VNI -> logical switch
    router_ports: dict[int, RouterPort]  # VNI -> the LIF on it
    vtep_table: dict[int, tuple[str, ...]]  # VNI -> hosts (sorted)
    mac_table: dict[tuple[int, str], str]  # (VNI, MAC) -> host
    arp_table: dict[tuple[int, str], str]  # (VNI, IP) -> MAC
    arp_sources: dict[tuple[int, str], tuple[str, ...]] = field(default_factory=dict)
    # Ports that already hold their one ARP-snooped binding (first one wins).
    arp_snooped: frozenset[str] = frozenset()

    def known_ips(self, vni: int, mac: str) -> list[str]:
        """The IPs the ARP table binds to ``mac`` on ``vni``."""
        return sorted((ip for (v, ip), m in self.arp_table.items() if v == vni and m == mac), key=IPv4Address)

    def vni(self, logical_switch: str) -> int:
        return next(v for v, ls in self.switches.items() if ls.name == logical_switch)

    def utep(self, vni: int, subnet: IPv4Network) -> Optional[str]:
        """The proxy VTEP that replicates ``vni``'s BUM frames inside ``subnet``."""
        members = [h for h in self.vtep_table.get(vni, ()) if self.vteps[h].subnet == subnet]
        return members[0] if members else None

    def replication(self, host: str, vni: int) -> list[str]:
        """Hosts ``host`` sends a copy of a BUM frame of ``vni`` to: every
        other member in its own transport subnet, one UTEP per other subnet."""
        mine = self.vteps[host].subnet
        out = [h for h in self.vtep_table.get(vni, ()) if h != host and self.vteps[h].subnet == mine]
        others = sorted({self.vteps[h].subnet for h in self.vtep_table.get(vni, ())} - {mine})
        out += [self.utep(vni, s) for s in others]
        return out

    def local_replication(self, host: str, vni: int) -> list[str]:
        """As the UTEP of its subnet for ``vni``: the other members of that
        subnet, which get a copy of a BUM frame that came from another subnet."""
        mine = self.vteps[host].subnet
        if self.utep(vni, mine) != host:
            return []
        return [h for h in self.vtep_table.get(vni, ()) if h != host and self.vteps[h].subnet == mine]

    def routed_vnis(self, vnis) -> set[int]:
        """VNIs a frame from ``vnis`` can be routed into by a distributed router."""
        routers = {self.router_ports[v].router for v in vnis if v in self.router_ports}
        return {v for v, lif in self.router_ports.items() if lif.router in routers} - set(vnis)

    def to_json(self) -> dict:
        """The tables as NSX Manager's CLI would list them, by logical switch."""
        out = {}
        for vni, ls in sorted(self.switches.items()):
            out[ls.name] = {
                "vni": vni,
                "arp_suppression": ls.arp_suppression,
                "vtep_table": [
                    {
                        "host": h,
                        "vtep_ip": str(self.vteps[h].ip.ip),
                        "vtep_mac": self.vteps[h].mac,
                        "segment": str(self.vteps[h].subnet),
                        "utep": self.utep(vni, self.vteps[h].subnet) == h,
                    }
                    for h in self.vtep_table.get(vni, ())
                ],
                "mac_table": [
                    {"mac": mac, "vtep_ip": str(self.vteps[h].ip.ip), "host": h}
                    for (v, mac), h in sorted(self.mac_table.items())
                    if v == vni
                ],
                "arp_table": [
                    {"ip": ip, "mac": mac, "sources": list(self.arp_sources.get((v, ip), ()))}
                    for (v, ip), mac in sorted(self.arp_table.items(), key=lambda kv: IPv4Address(kv[0][1]))
                    if v == vni
                ],
            }
        return out


def vteps(lab: Lab) -> dict[str, Vtep]:
    out = {}
    for host in lab.esxi_hosts:
        vmk = vtep_of(host)
        if vmk is not None:
            out[host.name] = Vtep(host.name, vmk.ip, (vmk.mac or vmk_mac(host.name, vmk.name)).lower())
    return out


# Snooped bindings per vNIC port: {port: {method: IPs}}.
Snooped = dict[str, dict[str, frozenset[str]]]


def build_tables(
    lab: Lab,
    bindings: Iterable[SwitchBinding],
    guests: Optional[dict[str, GuestNic]] = None,
    snooped: Optional[Snooped] = None,
) -> NsxTables:
    """The tables for the current bindings (where each VM port is) and what
    the hosts discovered about the guests: their configured IPs
    (``guests``) and what ARP and DHCP snooping saw (``snooped``), each used
    only where the port's logical switch enables that method."""
    guests, snooped = guests or {}, snooped or {}
    switches = {ls.vni: ls for ls in lab.nsx.logical_switches} if lab.nsx else {}
    by_name = {ls.name: ls.vni for ls in switches.values()}
    router_ports = {}
    for dlr in lab.nsx.distributed_routers if lab.nsx else ():
        for lif in dlr.interfaces:
            router_ports[by_name[lif.logical_switch]] = RouterPort(dlr.name, dlr.mac.lower(), lif.ip)
    members: dict[int, set[str]] = {}
    mac_table, arp_table, sources = {}, {}, {}
    arp_snooped = set()
    for b in bindings:
        for p in b.logical_ports():
            vni = by_name[p.logical_switch]
            members.setdefault(vni, set()).add(b.host)
            mac = PortSecurity.of(b, p).effective_mac
            mac_table[(vni, mac)] = b.host
            guest = guests.get(p.name)
            found = {"vmtools": guest.ipv4 if guest is not None else frozenset(), **snooped.get(p.name, {})}
            if found.get("arp_snooping"):
                arp_snooped.add(p.name)
            for method in switches[vni].ip_discovery:
                for ip in found.get(method, ()):
                    # Two vNICs claiming one IP: the later port wins, alone.
                    same = arp_table.get((vni, ip)) == mac
                    arp_table[(vni, ip)] = mac
                    sources[(vni, ip)] = (sources[(vni, ip)] if same else ()) + (method,)
    return NsxTables(
        vteps=vteps(lab),
        switches=switches,
        router_ports=router_ports,
        vtep_table={v: tuple(sorted(h)) for v, h in members.items()},
        mac_table=mac_table,
        arp_table=arp_table,
        arp_sources=sources,
        arp_snooped=frozenset(arp_snooped),
    )

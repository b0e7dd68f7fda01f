"""What a firewall rule's words mean: endpoints, services, scope.

A rule names its sources and destinations as ``any``, a VM, a security group
(distributed firewall only) or an IPv4 network/address, and its services as
``any``, ``icmp`` or ``tcp/80``-style strings. Both firewalls (the perimeter
one on a Linux host, the distributed one in the vSwitch) and the lab
validation read them through this module, so a word means the same thing
everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import Optional

from vlab.protocols import IP_PROTOCOLS, PROTOCOL_NAMES

from .model import Lab

ANY = "any"


class UnknownName(ValueError):
    """A rule word that is neither any, a VM, a group nor an address."""


@dataclass(frozen=True)
class Endpoints:
    """A resolved source or destination list: ``any``, or VMs plus networks."""

    any: bool = False
    vms: frozenset[str] = frozenset()
    networks: tuple[IPv4Network, ...] = ()

    def networks_of(self, lab: Lab) -> tuple[IPv4Network, ...]:
        """Every network this stands for, VMs as /32 host routes of their vNIC IPs."""
        if self.any:
            return (IPv4Network("0.0.0.0/0"),)
        hosts = sorted(
            {
                IPv4Network(f"{nic.ip.ip}/32")
                for vm in lab.vms
                if vm.name in self.vms
                for nic in vm.vnics
                if nic.ip is not None
            }
        )
        return tuple(sorted(set(hosts) | set(self.networks)))

    def holds_vm(self, vm: str) -> bool:
        return self.any or vm in self.vms


@dataclass(frozen=True)
class Service:
    """An IP protocol and an optional destination port range."""

    proto: Optional[int] = None  # None = any protocol
    ports: Optional[tuple[int, int]] = None

    @staticmethod
    def parse(text: str) -> "Service":
        if text == ANY:
            return Service()
        if text == "icmp":
            return Service(IP_PROTOCOLS["icmp"])
        proto, _, ports = text.partition("/")
        low, _, high = ports.partition("-")
        return Service(IP_PROTOCOLS[proto], (int(low), int(high or low)))

    @property
    def name(self) -> Optional[str]:
        return PROTOCOL_NAMES.get(self.proto)


def resolve(lab: Lab, words: tuple[str, ...], groups: bool = True) -> Endpoints:
    """Resolve rule words; raise ``UnknownName`` naming the first bad one."""
    dfw = lab.distributed_firewall if groups else None
    by_group = {g.name: g for g in dfw.groups} if dfw else {}
    vms = {vm.name for vm in lab.vms}
    found_vms: set[str] = set()
    networks: list[IPv4Network] = []
    for word in words:
        if word == ANY:
            return Endpoints(any=True)
        if word in vms:
            found_vms.add(word)
        elif word in by_group:
            found_vms |= set(by_group[word].vms)
            networks += by_group[word].ips
        else:
            try:
                networks.append(IPv4Network(word))
            except ValueError:
                kinds = "a VM, a security group" if groups else "a VM"
                raise UnknownName(f"{word!r} is not 'any', {kinds} or an IPv4 network") from None
    return Endpoints(False, frozenset(found_vms), tuple(networks))


def scope(lab: Lab, applied_to: tuple[str, ...]) -> frozenset[str]:
    """VMs an ``applied_to`` list names (empty or ``any`` = every VM); IP sets
    in groups do not count: a firewall is applied to vNICs."""
    target = resolve(lab, applied_to) if applied_to else Endpoints(any=True)
    return frozenset(vm.name for vm in lab.vms if target.holds_vm(vm.name))

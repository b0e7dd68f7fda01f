"""Firewall rules: the perimeter firewall of a router, and the NSX
distributed firewall with its security groups."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    StrictBool,
    StrictStr,
)

from .types import (
    MAX_FIREWALL_RULES,
    IPv4Net,
    LabModel,
    Name,
    _text,
)


def _service(value: object) -> str:
    """'any', 'icmp', 'tcp/80', 'udp/53' or a port range 'tcp/8000-8080'."""
    value = _text(value).lower()
    if value in ("any", "icmp"):
        return value
    proto, _, ports = value.partition("/")
    if proto not in ("tcp", "udp") or not ports:
        raise ValueError("must be 'any', 'icmp' or protocol/port like 'tcp/80', 'udp/53', 'tcp/8000-8080'")
    low, _, high = ports.partition("-")
    try:
        lo, hi = int(low), int(high or low)
    except ValueError:
        raise ValueError(f"port {ports!r} is not a number or range") from None
    if not 1 <= lo <= hi <= 65535:
        raise ValueError(f"port range {ports!r} must be within 1-65535, low to high")
    return value


Service = Annotated[StrictStr, BeforeValidator(_service)]
Verdict = Literal["allow", "drop"]


class FirewallRule(LabModel):
    """One stateful rule; the first rule matching a new connection decides,
    replies and related packets of an allowed connection always pass.
    ``sources``/``destinations`` name VMs, security groups (distributed
    firewall only) or IPv4 networks; ``any`` matches everything.
    ``applied_to`` (distributed firewall only) limits the vNICs enforcing the
    rule to these VMs or groups; empty = every vNIC in the firewall's scope."""

    name: Name
    sources: tuple[StrictStr, ...] = ("any",)
    destinations: tuple[StrictStr, ...] = ("any",)
    services: tuple[Service, ...] = ("any",)
    action: Verdict
    applied_to: tuple[StrictStr, ...] = ()


class PerimeterFirewall(LabModel):
    """A stateful perimeter firewall (Linux conntrack with nftables on a
    ``kind: firewall`` host). Like a commercial firewall it keeps state per
    connection and drops what does not fit it: a TCP segment of a connection
    it has not seen open (mid-stream, a SYN-ACK without the SYN) is invalid,
    unless ``tcp_loose`` lets it pick such connections up."""

    rules: tuple[FirewallRule, ...] = ()
    default_action: Verdict = "drop"
    tcp_loose: StrictBool = False


class SecurityGroup(LabModel):
    """An NSX security group: VMs by name and IP sets."""

    name: Name
    vms: tuple[Name, ...] = ()
    ips: tuple[IPv4Net, ...] = ()


class DistributedFirewall(LabModel):
    """The NSX distributed firewall: stateful rules enforced at each vNIC in
    its scope (``applied_to``: VMs or groups; empty = every VM), on what the
    VM sends and what it receives, with connection tracking in the vSwitch.
    A connection's state moves with its VM on vMotion. ``default_action`` is
    the last rule."""

    groups: tuple[SecurityGroup, ...] = ()
    rules: tuple[FirewallRule, ...] = Field(default=(), max_length=MAX_FIREWALL_RULES)
    default_action: Verdict = "allow"
    applied_to: tuple[StrictStr, ...] = ()

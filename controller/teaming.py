"""NIC teaming: which uplink a vSwitch port transmits on.

ESXi pins each virtual port to one uplink (no per-packet spreading) for the
port-ID and MAC-hash policies; explicit failover takes the first healthy uplink
in order. Standby uplinks are used only when no active uplink is up.
"""
from __future__ import annotations

import zlib
from typing import Optional

from vlab.bindings import PortBinding
from vlab.lab.resolve import EffectiveTeaming


def healthy_candidates(teaming: EffectiveTeaming, down: frozenset[str]) -> tuple[str, ...]:
    """Active uplinks that are up; failing that, the first standby uplink that is up."""
    active = tuple(u for u in teaming.active if u not in down)
    if active:
        return active
    standby = tuple(u for u in teaming.standby if u not in down)
    return standby[:1]


def pinned_uplink(port: PortBinding, teaming: EffectiveTeaming,
                  down: frozenset[str] = frozenset()) -> Optional[str]:
    """The uplink ``port`` transmits on, or None when no uplink can carry it."""
    candidates = healthy_candidates(teaming, down)
    if not candidates:
        return None
    if teaming.policy == "explicit_failover":
        return candidates[0]
    if teaming.policy == "source_mac_hash":
        return candidates[zlib.crc32(bytes.fromhex(port.mac.replace(":", ""))) % len(candidates)]
    # originating_port (and, until per-flow hashing lands, ip_hash): the
    # virtual port ID modulo the number of healthy active uplinks.
    return candidates[port.ofport % len(candidates)]

"""Beacon probing: failure detection beyond the first physical switch.

What ESXi does (VMware KB 1005577, vSphere Networking "Teaming and Failover
Policy"): every second, out of every active and standby uplink of a team with
beacon probing, it broadcasts a beacon (ethertype 0x8922) in each VLAN its
port groups use; the physical network floods it, so every other uplink of the
team should hear it. An uplink that has heard no other uplink's beacon for
three beacon intervals is failed over like a dead link, and restored when it
hears them again; link status still counts too. With two uplinks and a
failure beyond the switch neither hears the other, so ESXi cannot tell which
one is broken: it sends on both ("shotgun"), and VMware recommends three or
more uplinks.

This module is pure: the frames, which uplinks beacon, and a monitor that
turns received beacons into failed uplinks. The driver (``controller.app``)
sends and receives them; ``failover.beacon_changed`` re-pins ports.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from typing import Optional

from vlab.bindings import SwitchBinding
from vlab.lab.model import VGT_VLAN
from vlab.protocols import ETH_VLAN

ETH_BEACON = 0x8922
BEACON_INTERVAL_S = 1.0
MISSED_BEACONS = 3  # an uplink that heard nothing for this many intervals is failed
MAGIC = b"vlab-beacon\0"
BROADCAST = b"\xff" * 6


def beaconing(binding: SwitchBinding) -> dict[str, tuple[int, ...]]:
    """Uplink -> the VLANs it beacons in (0: untagged), for every active or
    standby uplink of a port group with beacon probing (unused uplinks do not
    take part). VGT port groups add no VLAN: the guest picks its own."""
    out: dict[str, set[int]] = {}
    for pg in binding.switch.port_groups:
        team = binding.teaming(pg.name)
        if team.failure_detection != "beacon_probing":
            continue
        for uplink in team.active + team.standby:
            vlans = out.setdefault(uplink, set())
            if pg.vlan != VGT_VLAN:
                vlans.add(pg.vlan)
    return {u: tuple(sorted(v)) for u, v in sorted(out.items())}


def uplink_mac(host: str, uplink: str) -> str:
    """The physical NIC's MAC a beacon is sent from (stable per host/vmnic)."""
    d = hashlib.sha256(f"beacon/{host}/{uplink}".encode()).digest()
    return "00:50:56:%02x:%02x:%02x" % (0x80 | (d[0] & 0x3F), d[1], d[2])


def beacon_frame(host: str, bridge: str, uplink: str, vlan: int, seq: int) -> bytes:
    """One beacon: broadcast from the uplink's MAC, tagged in ``vlan`` (1-4094),
    naming who sent it, as ESXi's beacons carry the NIC's name."""
    src = bytes.fromhex(uplink_mac(host, uplink).replace(":", ""))
    tag = struct.pack("!HH", ETH_VLAN, vlan) if vlan else b""
    body = MAGIC + f"{host}\0{bridge}\0{uplink}\0{seq}".encode()
    return (BROADCAST + src + tag + struct.pack("!H", ETH_BEACON) + body).ljust(64, b"\0")


@dataclass(frozen=True)
class Beacon:
    """A received beacon: who sent it."""

    host: str
    bridge: str
    uplink: str


def parse_beacon(data: bytes) -> Optional[Beacon]:
    """The sender of a beacon frame, or None for any other frame."""
    at = 12
    if data[at : at + 2] == struct.pack("!H", ETH_VLAN):
        at += 4
    if data[at : at + 2] != struct.pack("!H", ETH_BEACON) or not data[at + 2 :].startswith(MAGIC):
        return None
    fields = data[at + 2 + len(MAGIC) :].rstrip(b"\0").split(b"\0")
    if len(fields) < 3:
        return None
    host, bridge, uplink = (f.decode(errors="replace") for f in fields[:3])
    return Beacon(host, bridge, uplink)


@dataclass
class BeaconMonitor:
    """Which beaconing uplinks of one vSwitch hear the others' beacons.

    ``heard(receiver, beacon, now)`` records a beacon of this vSwitch that
    arrived on ``receiver`` from another uplink; ``verdict(uplinks, now)``
    says which uplinks are failed and whether the vSwitch cannot tell
    (shotgun). An uplink gets ``MISSED_BEACONS`` intervals from when it was
    first watched (or last heard) before it is failed; one a restarted
    controller seeds as never heard (``last = -inf``) stays failed until heard."""

    host: str
    bridge: str
    last: dict[str, float] = field(default_factory=dict)

    def heard(self, receiver: str, beacon: Beacon, now: float) -> bool:
        """Record ``beacon``; False when it is not this vSwitch's own."""
        if (beacon.host, beacon.bridge) != (self.host, self.bridge) or beacon.uplink == receiver:
            return False
        self.last[receiver] = now
        return True

    def verdict(self, uplinks: list[str], now: float) -> tuple[frozenset[str], bool]:
        """(failed uplinks, shotgun) among ``uplinks`` (the beaconing ones
        whose link is up). When none of them hears another, nothing can be
        blamed (with two uplinks that is one failure; with more, several):
        none is failed and the vSwitch sends on all of them (shotgun)."""
        for u in uplinks:
            self.last.setdefault(u, now)
        for u in list(self.last):
            if u not in uplinks:
                del self.last[u]  # link down: link status handles it; start afresh
        if len(uplinks) < 2:
            return frozenset(), False  # a lone uplink has nobody to hear
        limit = MISSED_BEACONS * BEACON_INTERVAL_S
        silent = frozenset(u for u in uplinks if now - self.last[u] > limit)
        if silent == frozenset(uplinks):
            return frozenset(), True
        return silent, False

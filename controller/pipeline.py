"""The vSwitch OpenFlow pipeline, declared once by name.

Inside the pipeline a frame carries its VLAN as an 802.1Q tag (pushed at
ingress for VST port groups, kept for VGT and uplinks, absent for VLAN 0/EST),
so forwarding matches one field and trunk outputs need no rewriting.

    table 0  INGRESS   classify by input port; tag VST frames; drop the rest
    table 1  FORWARD   deliver to vNICs/vmks or the pinned uplink

Cookies say which concern (manager) installed a flow: the top byte is the
concern id, so a resync can tell our flows from anything else.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

OFPVID_PRESENT = 0x1000
OFPVID_NONE = 0x0000


class Table:
    INGRESS = 0
    FORWARD = 1


class Priority:
    """Higher wins. Named by what the flow does."""
    UPLINK_TO_PINNED_PORT = 300    # unicast from an uplink to a local port pinned to it
    UPLINK_TO_OTHER_PORT = 290     # same MAC, other uplink: reverse-teaming drop
    LOCAL_UNICAST = 280            # known unicast between local ports
    FLOOD = 200                    # broadcast / multicast
    PORT_DEFAULT = 100             # unknown unicast from a local port -> its uplink
    INGRESS_CLASSIFY = 100
    INGRESS_DROP = 0


class Concern:
    """Cookie top byte per manager."""
    VSWITCH = 0x01


def cookie(concern: int, detail: int = 0) -> int:
    return (concern << 56) | (detail & ((1 << 56) - 1))


COOKIE_MASK_CONCERN = 0xFF << 56

Match = tuple[tuple[str, object], ...]
Action = tuple


@dataclass(frozen=True, order=True)
class FlowSpec:
    """One flow entry, independent of any OpenFlow library.

    ``match`` is a sorted tuple of (OXM field name, value) where value is an int,
    a MAC string, or a (value, mask) pair. ``actions`` are tuples:
    ("output", port), ("push_vlan", ethertype), ("pop_vlan",),
    ("set_field", field, value). ``goto`` continues in another table."""
    table: int
    priority: int
    match: Match
    actions: tuple[Action, ...] = ()
    goto: Optional[int] = None
    cookie: int = 0

    @staticmethod
    def make(table: int, priority: int, match: dict, actions=(), goto=None, cookie=0) -> "FlowSpec":
        return FlowSpec(table, priority, tuple(sorted(match.items())), tuple(actions), goto, cookie)

    @property
    def key(self) -> tuple:
        """What identifies a flow in a switch (table, priority, match)."""
        return (self.table, self.priority, self.match)

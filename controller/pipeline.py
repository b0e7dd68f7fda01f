"""The vSwitch OpenFlow pipeline, declared once by name.

Inside the pipeline a frame carries its VLAN as an 802.1Q tag (pushed at
ingress for VST port groups, kept for VGT and uplinks, absent for VLAN 0/EST),
so forwarding matches one field and trunk outputs need no rewriting.

    table 0  INGRESS   classify by input port; tag VST frames; drop the rest
    table 1  FORWARD   deliver to vNICs/vmks or the pinned uplink; each flow
                       carries the PortOutput captures and VnicRx filters of
                       the ports it delivers to (see controller.vswitch)

NSX logical switches (on the vSwitch carrying the host's VTEP) use tables
2-5. A frame's logical switch travels as its VNI in ``tun_id``: set at
ingress for a local VM's frame, set by decapsulation for one from the
tunnel port. Encapsulated frames leave through the VTEP vmk, so on the
underlay they are ordinary VTEP traffic in tables 0-1.

    table 2  DISCOVERY IP discovery: copies of a VM's ARP frames and of DHCP
                       ACKs to the controller while they can teach its ARP
                       table something (controller.ipdiscovery)
    table 3  ARP       ARP suppression and the router's own ARP answers
                       (controller.arpsuppress)
    table 4  ROUTE     the distributed router, on the source host
                       (controller.dlr)
    table 5  L2        logical switching: local ports, remote MACs by VTEP,
                       BUM by unicast replication (controller.overlay)

The distributed firewall (controller.dfw) sits between a vNIC and its port,
as ESXi's dvfilter does: a protected vNIC's frames are sent through
connection tracking in the vNIC's own zone before table 1 (or 2), and every
output to a protected vNIC becomes a detour through tables 7-8.

    table 6  DFW_FROM_VM   verdict on a VM's tracked IP frames (rules, state)
    table 7  DFW_TO_VM     frames for a protected vNIC enter its ct zone
    table 8  DFW_TO_VM_CT  verdict on them; output to the vNIC when allowed

Port mirroring (controller.mirror) adds copies to the actions of the flows
that receive from or deliver to a mirrored port; it owns no table.

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
    DISCOVERY = 2
    ARP = 3
    ROUTE = 4
    L2 = 5
    DFW_FROM_VM = 6
    DFW_TO_VM = 7
    DFW_TO_VM_CT = 8


class Priority:
    """Higher wins. Named by what the flow matches."""
    EXACT = 300                    # one destination MAC in one VLAN
    EXACT_ANY_VLAN = 250           # a VGT port's MAC in a VLAN no port group uses
    MULTICAST = 200                # any other multicast in one VLAN
    MULTICAST_ANY_VLAN = 150
    DEFAULT = 100                  # unknown unicast in one VLAN
    DEFAULT_ANY_VLAN = 50
    INGRESS_CLASSIFY = 100
    # Added to every L2 flow for frames from the tunnel port, so they never
    # fall into a flow meant for a local VM's frames (which would send a
    # frame for a MAC elsewhere back into the tunnel).
    FROM_TUNNEL = 1000
    MISS = 1                       # continue with the next table


class Concern:
    """Cookie top byte per manager."""
    VSWITCH = 0x01
    OVERLAY = 0x02
    ARP_SUPPRESSION = 0x03
    ROUTER = 0x04
    IP_DISCOVERY = 0x05
    DFW = 0x06
    MIRROR = 0x07


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
    ("output", port) (port "in_port" sends back where the frame came from,
    "controller" sends a whole copy to the controller as a packet-in),
    ("push_vlan", ethertype), ("pop_vlan",), ("set_field", field, value),
    ("move", src_field, dst_field, bits), ("dec_ttl",),
    ("output_trunc", port, max_len) (an output cut to max_len bytes),
    ("clone", actions) (actions on a copy; their changes stay inside).
    ``goto`` continues in another table."""
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

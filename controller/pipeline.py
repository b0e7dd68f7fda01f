"""The vSwitch OpenFlow pipeline, declared once, as data.

``PIPELINE`` is the single description of every table a bridge has: its
stage name (OVN style: ``vs_`` vSwitch, ``ls_`` logical switch, ``lr_``
logical router, ``dfw_`` distributed firewall), what it does, the match
fields its flows may use, the fields they may set, the tables they may go to
(``goto_table``, which OpenFlow 1.3 allows only forwards) or recirculate to
(``resubmit``, ``ct(table=)``), the concerns (cookie owners) that write in it
and its priority bands by name. ``pipeline_check.check(flows)`` holds every
compiled flow against it, so a wrong goto, match or priority fails a unit
test instead of becoming a silent flow; ``pipeline_doc.markdown()`` renders
it for docs/pipeline.md, and a trace names the band a flow came from
(``band_label``).

Inside the pipeline a frame carries its VLAN as an 802.1Q tag (pushed at
ingress for VST port groups, kept for VGT and uplinks, absent for VLAN 0/EST),
so forwarding matches one field and trunk outputs need no rewriting. A frame
of an NSX logical switch carries its VNI in ``tunnel_id``: set at ingress for
a local VM's frame, set by decapsulation for one from the tunnel port;
encapsulated frames leave through the VTEP vmk, so on the underlay they are
ordinary VTEP traffic in the vSwitch stages.

The distributed firewall (controller.dfw) sits between a vNIC and its port,
as ESXi's dvfilter does; port mirroring (controller.mirror) adds copies to
the actions of other concerns' flows and owns only one kind of flow of its
own. Cookies say which concern installed a flow: the top byte is the
concern id, so a resync can tell our flows from anything else.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from vlab.lab.model import MAX_FIREWALL_RULES

OFPVID_PRESENT = 0x1000
OFPVID_NONE = 0x0000


class Table:
    """Table numbers, by the stage names below."""

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
    """Every priority a compiler uses, by what the flow matches (higher wins).
    Each belongs to a band of the stages that use it (``PIPELINE``)."""

    # Forwarding (vs_forward, and the logical-switch stages).
    EXACT = 300  # one destination (MAC, IP) in one domain
    EXACT_ANY_VLAN = 250  # a VGT port's MAC in a VLAN no port group uses
    MULTICAST = 200  # any other multicast in one VLAN / VNI
    MULTICAST_ANY_VLAN = 150
    DEFAULT = 100  # unknown unicast in one VLAN / VNI
    DEFAULT_ANY_VLAN = 50
    MISS = 1  # continue with the next table
    # ls_l2: frames from the tunnel port sit above every flow for a local
    # VM's frames, so they never fall into one (which would send a frame
    # for a MAC elsewhere back into the tunnel).
    TUNNEL_EXACT = 1300
    TUNNEL_MULTICAST_OWN_SUBNET = 1210  # the UTEP does not relay these
    TUNNEL_MULTICAST = 1200
    TUNNEL_DEFAULT = 1100
    # vs_in_port.
    MIRROR_DESTINATION_ONLY = 4000  # a receive-only mirror destination sends nothing
    BEACON = 2000  # one of this vSwitch's beacons, back from the network: to the controller
    BEACON_OTHER = 1990  # any other beacon on a beaconing uplink: dropped
    DFW_DETOUR = 300  # a protected vNIC's IPv4, above its classify flow
    TUNNEL_SNOOP = 110  # DHCP ACKs from the tunnel, copied to the controller
    INGRESS_IP_HASH = 105  # an IP-hash port's IPv4, above its classify flow
    INGRESS_CLASSIFY = 100
    # What a vNIC or vmk sends that no classify flow takes (a forged source
    # MAC, a tag on an EST/VST port): dropped by a flow of its own port, so
    # the drop is counted by port (esxtop's %DRPTX), not a table miss.
    INGRESS_REFUSED = 1
    # vs_forward: what no forwarding flow takes (a VLAN no port group
    # carries, unknown unicast from an uplink), dropped by a flow of the
    # port it came in by, for the same reason.
    FORWARD_REFUSED = 1
    # dfw_from_vm and dfw_to_vm_ct: the distributed firewall's verdicts.
    DFW_STATE = 3000  # established / related: pass
    DFW_INVALID = 2900  # not part of any connection we know: drop
    DFW_IMPORTED = 2500  # connections carried over by vMotion
    DFW_RULES = 2000  # rule i gets DFW_RULES - i
    DFW_DEFAULT = 10  # the default rule
    # Every stage whose table miss drops: while a Drop capture runs, below
    # every other flow, a copy of what no flow takes to the controller.
    DROP_CAPTURE_MISS = 0
    # dfw_to_vm.
    DFW_TO_CT = 200  # IPv4 for a protected vNIC enters its zone
    DFW_NON_IP = 1  # ARP and friends go straight out


# The most rules the distributed firewall's band holds (the lab refuses more).
MAX_DFW_RULES = MAX_FIREWALL_RULES


class Concern:
    """Cookie top byte per manager."""

    VSWITCH = 0x01
    OVERLAY = 0x02
    ARP_SUPPRESSION = 0x03
    ROUTER = 0x04
    IP_DISCOVERY = 0x05
    DFW = 0x06
    MIRROR = 0x07
    DROP_CAPTURE = 0x08


CONCERN_NAMES = {
    Concern.VSWITCH: "vswitch",
    Concern.OVERLAY: "overlay",
    Concern.ARP_SUPPRESSION: "arp-suppression",
    Concern.ROUTER: "router",
    Concern.IP_DISCOVERY: "ip-discovery",
    Concern.DFW: "dfw",
    Concern.MIRROR: "mirror",
    Concern.DROP_CAPTURE: "drop-capture",
}
COOKIE_MASK_CONCERN = 0xFF << 56


def cookie(concern: int, detail: int = 0) -> int:
    return (concern << 56) | (detail & ((1 << 56) - 1))


def concern_of(cookie_value: int) -> int:
    return (cookie_value & COOKIE_MASK_CONCERN) >> 56


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
    ("bundle", fields, basis, members) (out of one live member, by a hash
    of ``fields``: a LAG),
    ("clone", actions) (actions on a copy; their changes stay inside),
    ("resubmit", table) (look the frame up in another table, then go on),
    ("ct", commit, zone, table) (connection tracking in ``zone``; with a
    table a tracked copy continues there, while this action list goes on
    with the untracked original).
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


# -- the declaration ----------------------------------------------------------
@dataclass(frozen=True)
class Band:
    """A named priority range of one stage (``low`` to ``high``, inclusive)."""

    name: str
    low: int
    high: int
    meaning: str

    def holds(self, priority: int) -> bool:
        return self.low <= priority <= self.high


def _band(name: str, priority: int, meaning: str) -> Band:
    return Band(name, priority, priority, meaning)


@dataclass(frozen=True)
class Stage:
    """One table: what it is for and what its flows may do."""

    table: int
    name: str
    purpose: str
    matches: frozenset[str]
    sets: frozenset[str]
    goto: frozenset[int]
    recirculate: frozenset[int]
    concerns: frozenset[int]
    bands: tuple[Band, ...]
    miss: str = "drop"  # what a frame no flow matches meets (OpenFlow 1.3)

    def band_of(self, priority: int) -> Optional[Band]:
        return next((b for b in self.bands if b.holds(priority)), None)


# What a mirror copy may set in any stage that outputs to a mirrored port
# (in_port: an RSPAN copy forgets it, so it may leave by the uplink its
# frame came in by).
_MIRROR_SETS = {"tun_ipv4_dst", "tunnel_id", "vlan_vid", "in_port"}
_FORWARDING = (
    _band("exact", Priority.EXACT, "one known destination MAC in one VLAN"),
    _band("exact-any-vlan", Priority.EXACT_ANY_VLAN, "a VGT port's MAC in a VLAN no port group uses"),
    _band("multicast", Priority.MULTICAST, "any other multicast in one VLAN"),
    _band("multicast-any-vlan", Priority.MULTICAST_ANY_VLAN, "multicast in a VLAN only VGT ports carry"),
    _band("unknown-unicast", Priority.DEFAULT, "unknown unicast in one VLAN"),
    _band("unknown-any-vlan", Priority.DEFAULT_ANY_VLAN, "unknown unicast in a VLAN only VGT ports carry"),
)
_DFW_VERDICT = (
    _band("state", Priority.DFW_STATE, "established or related: pass"),
    _band("invalid", Priority.DFW_INVALID, "part of no known connection: drop"),
    _band("imported", Priority.DFW_IMPORTED, "a connection carried over by vMotion: commit"),
    Band(
        "rules",
        Priority.DFW_RULES - MAX_DFW_RULES + 1,
        Priority.DFW_RULES,
        "rule i of the policy (priority DFW_RULES - i), first match wins",
    ),
    _band("default", Priority.DFW_DEFAULT, "the policy's default action"),
)
_DFW_MATCHES = {
    "in_port",
    "reg0",
    "eth_type",
    "ct_state",
    "ip_proto",
    "ipv4_src",
    "ipv4_dst",
    "tcp_src",
    "tcp_dst",
    "udp_src",
    "udp_dst",
}

PIPELINE: tuple[Stage, ...] = (
    Stage(
        Table.INGRESS,
        "vs_in_port",
        "classify by input port: forged transmits, VLAN tagging (EST/VST/VGT), "
        "the logical switch's VNI; a protected vNIC's IPv4 into its DFW zone; "
        "mirror copies of what a source vNIC sends",
        matches=frozenset(
            {
                "in_port",
                "vlan_vid",
                "eth_src",
                "eth_type",
                "ipv4_src",
                "ipv4_dst",
                "tunnel_id",
                "ip_proto",
                "udp_src",
                "udp_dst",
            }
        ),
        sets=frozenset({"reg1"} | _MIRROR_SETS),
        goto=frozenset({Table.FORWARD, Table.DISCOVERY, Table.L2}),
        recirculate=frozenset({Table.DFW_FROM_VM}),
        concerns=frozenset(
            {Concern.VSWITCH, Concern.OVERLAY, Concern.IP_DISCOVERY, Concern.DFW, Concern.MIRROR}
        ),
        bands=(
            _band(
                "mirror-destination-only",
                Priority.MIRROR_DESTINATION_ONLY,
                "a receive-only mirror destination's frames: drop",
            ),
            Band(
                "dfw-detour",
                Priority.DFW_DETOUR,
                Priority.DFW_DETOUR + Priority.INGRESS_IP_HASH - Priority.INGRESS_CLASSIFY,
                "a protected vNIC's IPv4: through its connection-tracking zone "
                "(above each classify or ip-hash flow it copies)",
            ),
            _band(
                "beacon",
                Priority.BEACON,
                "this vSwitch's beacon, from another of its uplinks: to the controller (beacon probing)",
            ),
            _band("beacon-other", Priority.BEACON_OTHER, "any other beacon on a beaconing uplink: drop"),
            _band(
                "tunnel-snoop", Priority.TUNNEL_SNOOP, "DHCP ACKs from the tunnel: a copy to the controller"
            ),
            _band(
                "ip-hash",
                Priority.INGRESS_IP_HASH,
                "an IP-hash port's IPv4: its hash bucket (src ^ dst) mod N into reg1",
            ),
            _band("classify", Priority.INGRESS_CLASSIFY, "what each port may send, and where it goes next"),
            _band(
                "refused",
                Priority.INGRESS_REFUSED,
                "what a vNIC or vmk sends that no classify flow takes (forged source, a tag it may not "
                "send): drop, counted by its port",
            ),
        ),
    ),
    Stage(
        Table.FORWARD,
        "vs_forward",
        "deliver to vNICs and vmks (PortOutput, then each port's VnicRx "
        "filters) or the pinned uplink (an IP-hash port: its bucket's uplink, "
        "by reg1); never uplink to uplink",
        matches=frozenset({"in_port", "vlan_vid", "eth_dst", "reg1"}),
        sets=frozenset({"vlan_vid", "reg0"} | _MIRROR_SETS),
        goto=frozenset(),
        recirculate=frozenset({Table.DFW_TO_VM}),
        concerns=frozenset({Concern.VSWITCH}),
        bands=(
            *_FORWARDING,
            _band(
                "refused",
                Priority.FORWARD_REFUSED,
                "what no flow above delivers (a VLAN no port group carries, unknown unicast from an "
                "uplink): drop, counted by the port it came in by",
            ),
        ),
    ),
    Stage(
        Table.DISCOVERY,
        "ls_ip_discovery",
        "copies of a VM's ARP frames and of DHCP ACKs to the controller while "
        "they can teach its ARP table something",
        matches=frozenset(
            {"in_port", "tunnel_id", "eth_type", "arp_sha", "arp_spa", "ip_proto", "udp_src", "udp_dst"}
        ),
        sets=frozenset(),
        goto=frozenset({Table.ARP}),
        recirculate=frozenset(),
        concerns=frozenset({Concern.IP_DISCOVERY}),
        bands=(
            _band("known", Priority.EXACT, "nothing to learn, or a DHCP ACK to copy"),
            _band("learn", Priority.DEFAULT, "an ARP frame that teaches: copy it"),
            _band("continue", Priority.MISS, "go on to ARP suppression"),
        ),
    ),
    Stage(
        Table.ARP,
        "ls_arp_responder",
        "ARP suppression and the distributed router's own ARP answers",
        matches=frozenset({"tunnel_id", "eth_type", "arp_op", "arp_tpa"}),
        sets=frozenset({"eth_src", "arp_op", "arp_sha", "arp_spa"}),
        goto=frozenset({Table.ROUTE}),
        recirculate=frozenset(),
        concerns=frozenset({Concern.ARP_SUPPRESSION}),
        bands=(
            _band("answer", Priority.EXACT, "a request the host answers itself"),
            _band("continue", Priority.MISS, "go on to the router"),
        ),
    ),
    Stage(
        Table.ROUTE,
        "lr_route",
        "the distributed router, on the source host",
        matches=frozenset({"tunnel_id", "eth_dst", "eth_type", "ipv4_dst"}),
        sets=frozenset({"eth_src", "eth_dst", "tunnel_id"}),
        goto=frozenset({Table.L2}),
        recirculate=frozenset(),
        concerns=frozenset({Concern.ROUTER}),
        bands=(
            _band("route", Priority.EXACT, "a destination the ARP table knows: route it"),
            _band("no-route", Priority.DEFAULT, "for the router's vMAC, no known destination: drop"),
            _band("continue", Priority.MISS, "not for the router: switch it"),
        ),
    ),
    Stage(
        Table.L2,
        "ls_l2",
        "logical switching: local ports, remote MACs by VTEP, BUM by unicast replication",
        matches=frozenset({"in_port", "tunnel_id", "eth_dst", "tun_ipv4_src"}),
        sets=frozenset({"tun_ipv4_dst", "reg0"} | _MIRROR_SETS),
        goto=frozenset(),
        recirculate=frozenset({Table.DFW_TO_VM}),
        concerns=frozenset({Concern.OVERLAY}),
        bands=(
            _band("tunnel-exact", Priority.TUNNEL_EXACT, "from the tunnel, to a local VM's MAC"),
            _band(
                "tunnel-bum-own-subnet",
                Priority.TUNNEL_MULTICAST_OWN_SUBNET,
                "from the tunnel, BUM from this transport subnet: local ports only",
            ),
            _band(
                "tunnel-bum", Priority.TUNNEL_MULTICAST, "from the tunnel, BUM: local ports (the UTEP relays)"
            ),
            _band(
                "tunnel-unknown",
                Priority.TUNNEL_DEFAULT,
                "from the tunnel, unknown unicast: no VM has it, drop",
            ),
            _band("exact", Priority.EXACT, "a known MAC: its port or its VTEP"),
            _band("bum", Priority.MULTICAST, "BUM from a local VM: flood and replicate"),
            _band("unknown", Priority.DEFAULT, "unknown unicast from a local VM: replicate only"),
        ),
    ),
    Stage(
        Table.DFW_FROM_VM,
        "dfw_from_vm",
        "the distributed firewall's verdict on what a protected VM sends",
        matches=frozenset(_DFW_MATCHES),
        sets=frozenset(),
        goto=frozenset(),
        recirculate=frozenset({Table.FORWARD, Table.DISCOVERY}),
        concerns=frozenset({Concern.DFW}),
        bands=_DFW_VERDICT,
    ),
    Stage(
        Table.DFW_TO_VM,
        "dfw_to_vm",
        "frames for a protected vNIC enter its connection-tracking zone",
        matches=frozenset({"reg0", "eth_type"}),
        sets=frozenset(_MIRROR_SETS),
        goto=frozenset(),
        recirculate=frozenset({Table.DFW_TO_VM_CT}),
        concerns=frozenset({Concern.DFW}),
        bands=(
            _band("to-ct", Priority.DFW_TO_CT, "IPv4: into the vNIC's zone"),
            _band("non-ip", Priority.DFW_NON_IP, "not IPv4: deliver"),
        ),
    ),
    Stage(
        Table.DFW_TO_VM_CT,
        "dfw_to_vm_ct",
        "the distributed firewall's verdict on what a protected VM receives",
        matches=frozenset(_DFW_MATCHES),
        sets=frozenset(_MIRROR_SETS),
        goto=frozenset(),
        recirculate=frozenset(),
        concerns=frozenset({Concern.DFW}),
        bands=_DFW_VERDICT,
    ),
)


def _with_drop_capture(stage: Stage) -> Stage:
    """A stage whose table miss drops also holds the Drop capture's miss flow
    (``controller.dropcapture``), so a Drop capture sees what it drops."""
    if stage.miss != "drop":
        return stage
    band = _band(
        "drop-capture",
        Priority.DROP_CAPTURE_MISS,
        "while a Drop capture runs: what no flow takes, a copy to the controller, which names the drop",
    )
    return replace(stage, concerns=stage.concerns | {Concern.DROP_CAPTURE}, bands=stage.bands + (band,))


PIPELINE = tuple(_with_drop_capture(s) for s in PIPELINE)
STAGES: dict[int, Stage] = {s.table: s for s in PIPELINE}


def band_label(table: int, priority: Optional[int]) -> str:
    """A flow's band as a trace shows it; the DFW's rules band names the rule."""
    stage = STAGES.get(table)
    band = stage.band_of(priority) if stage is not None and priority is not None else None
    if band is None:
        return "miss" if priority is None else f"priority {priority}"
    if band.name == "rules" and table in (Table.DFW_FROM_VM, Table.DFW_TO_VM_CT):
        return f"rule {Priority.DFW_RULES - priority + 1}"
    return band.name

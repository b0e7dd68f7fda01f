"""A small OpenFlow 1.3 table simulator for ``FlowSpec`` lists, with OVS's
``resubmit`` and ``ct`` (connection tracking in zones).

Unit tests ask "which ports would this frame leave by, with which VLAN tag?"
instead of comparing flow text, so they survive refactors of the compiler and
catch real forwarding mistakes (in the spirit of Faucet's fakeoftable); and
``walk`` records every table a frame went through, which flow (and so which
stage and priority band) took it, so ``controller.explain`` can say why a
frame was dropped. Only the match fields and actions the compilers emit are
supported; two matching flows of equal priority raise, because OVS would
pick one arbitrarily.

Connection tracking follows OVS's userspace tracker as the distributed
firewall uses it: a packet of a committed connection (either direction) is
established, a SYN+ACK of an unknown TCP connection is invalid, anything
else unknown is new; ``ct(commit)`` records the connection in its zone;
``ct(table=N)`` forks the frame, the tracked copy continuing in table N.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address
from typing import Optional

from vlab.protocols import ETH_ARP, ETH_IPV4, ETH_VLAN, IPPROTO_TCP, IPPROTO_UDP

from .pipeline import OFPVID_PRESENT, FlowSpec

# ct_state bits (OVS): new, established, related, reply, invalid, tracked.
CT_NEW, CT_EST, CT_REL, CT_RPL, CT_INV, CT_TRK = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
TCP_SYN, TCP_ACK = 0x02, 0x10
MAX_RESUBMITS = 64  # OVS's limit on resubmit depth


@dataclass(frozen=True)
class Frame:
    """The header fields (and metadata) the pipeline looks at."""

    in_port: int
    eth_dst: str
    eth_src: str = "00:50:56:ff:ff:fe"
    vlan: Optional[int] = None  # 802.1Q VID, None = untagged
    vlan_inner: Optional[int] = None  # the inner tag's VID when two are pushed
    eth_type: int = ETH_IPV4
    ipv4_src: Optional[str] = None
    ipv4_dst: Optional[str] = None
    ttl: int = 64
    arp_op: Optional[int] = None
    arp_sha: Optional[str] = None
    arp_spa: Optional[str] = None
    arp_tha: Optional[str] = None
    arp_tpa: Optional[str] = None
    ip_proto: Optional[int] = None
    tcp_src: Optional[int] = None
    tcp_dst: Optional[int] = None
    tcp_flags: int = TCP_SYN  # only read for TCP: a connection's first segment
    udp_src: Optional[int] = None
    udp_dst: Optional[int] = None
    tunnel_id: int = 0  # metadata: VNI (set by decapsulation or a flow)
    tun_ipv4_src: Optional[str] = None
    tun_ipv4_dst: Optional[str] = None
    reg0: int = 0  # metadata: the DFW's destination vNIC
    reg1: int = 0  # metadata: an IP-hash port's hash bucket
    ct_state: int = 0  # metadata: set by ct(table=)
    ct_zone: int = 0


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def frame_of(data: bytes, in_port: int, **metadata) -> Frame:
    """The ``Frame`` of real bytes (a packet-in's, a pcap's) entering at
    ``in_port``: Ethernet, up to two 802.1Q tags, ARP, IPv4 with TCP/UDP;
    ``metadata`` (tunnel_id, tun_ipv4_src, reg0, ...) as the switch had it."""
    f: dict = {"eth_dst": _mac_text(data[0:6]), "eth_src": _mac_text(data[6:12])}
    off, eth_type = 14, int.from_bytes(data[12:14], "big")
    tags = []
    while eth_type in (ETH_VLAN, 0x88A8) and len(data) >= off + 4 and len(tags) < 2:
        tags.append(int.from_bytes(data[off : off + 2], "big") & 0xFFF)
        eth_type, off = int.from_bytes(data[off + 2 : off + 4], "big"), off + 4
    f["vlan"] = tags[0] if tags else None
    f["vlan_inner"] = tags[1] if len(tags) > 1 else None
    f["eth_type"] = eth_type
    body = data[off:]
    if eth_type == ETH_ARP and len(body) >= 28:
        f.update(
            arp_op=int.from_bytes(body[6:8], "big"),
            arp_sha=_mac_text(body[8:14]),
            arp_spa=str(IPv4Address(body[14:18])),
            arp_tha=_mac_text(body[18:24]),
            arp_tpa=str(IPv4Address(body[24:28])),
        )
    elif eth_type == ETH_IPV4 and len(body) >= 20:
        ihl = (body[0] & 0x0F) * 4
        proto = body[9]
        f.update(
            ipv4_src=str(IPv4Address(body[12:16])),
            ipv4_dst=str(IPv4Address(body[16:20])),
            ttl=body[8],
            ip_proto=proto,
        )
        l4 = body[ihl:]
        if proto == IPPROTO_TCP and len(l4) >= 14:
            f.update(
                tcp_src=int.from_bytes(l4[0:2], "big"),
                tcp_dst=int.from_bytes(l4[2:4], "big"),
                tcp_flags=l4[13],
            )
        elif proto == IPPROTO_UDP and len(l4) >= 4:
            f.update(udp_src=int.from_bytes(l4[0:2], "big"), udp_dst=int.from_bytes(l4[2:4], "big"))
    return Frame(in_port, **f, **metadata)


@dataclass(frozen=True)
class Output:
    """A frame leaving by ``port`` (or "controller") as it is at that moment;
    ``max_len``: cut to that many bytes (a truncating output). ``among``: a
    LAG's bundle action, the frame leaves by one of these ports, which OVS's
    hash picks among those LACP has in the bundle (not simulated: ``port``
    is then the first of them)."""

    port: int | str
    frame: Frame
    max_len: Optional[int] = None
    among: tuple[int, ...] = ()


@dataclass(frozen=True)
class Step:
    """One table lookup: the frame as it entered ``table``, the flow that
    took it (None: a table miss, the frame is dropped there) and how deep in
    resubmits and recirculations it happened."""

    table: int
    frame: Frame
    flow: Optional[FlowSpec]
    depth: int = 0
    outputs: tuple[Output, ...] = ()  # what this flow's own actions sent


@dataclass
class Conntrack:
    """Committed connections per zone, as (proto, src, dst, sport, dport)."""

    zones: dict[int, set[tuple]] = field(default_factory=dict)

    @staticmethod
    def key(frame: Frame) -> tuple:
        sport = frame.tcp_src if frame.ip_proto == IPPROTO_TCP else frame.udp_src
        dport = frame.tcp_dst if frame.ip_proto == IPPROTO_TCP else frame.udp_dst
        return (frame.ip_proto, frame.ipv4_src, frame.ipv4_dst, sport, dport)

    @staticmethod
    def reverse(key: tuple) -> tuple:
        proto, src, dst, sport, dport = key
        return (proto, dst, src, dport, sport)

    def state(self, zone: int, frame: Frame) -> int:
        if frame.eth_type != ETH_IPV4:
            return CT_TRK | CT_INV
        known = self.zones.get(zone, set())
        k = self.key(frame)
        if k in known:
            return CT_TRK | CT_EST
        if self.reverse(k) in known:
            return CT_TRK | CT_EST | CT_RPL
        if frame.ip_proto == IPPROTO_TCP and frame.tcp_flags & TCP_SYN and frame.tcp_flags & TCP_ACK:
            return CT_TRK | CT_INV  # a reply to a handshake this zone never saw
        return CT_TRK | CT_NEW

    def commit(self, zone: int, frame: Frame) -> None:
        k = self.key(frame)
        if self.reverse(k) not in self.zones.get(zone, set()):
            self.zones.setdefault(zone, set()).add(k)


@dataclass
class Walk:
    """Everything one frame did in the pipeline."""

    steps: list[Step] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    # The ct_state each ct(table=) fork resumed with, in order (what
    # ofproto/trace takes as --ct-next to trace the same states).
    ct_states: list[int] = field(default_factory=list)

    def sorted_outputs(self) -> list[Output]:
        return sorted(self.outputs, key=lambda o: o.port if isinstance(o.port, int) else -1)


def _mac_int(mac: str) -> int:
    return int(mac.replace(":", ""), 16)


def _ip_int(ip: Optional[str]) -> Optional[int]:
    return None if ip is None else int(IPv4Address(ip))


_MACS = ("eth_dst", "eth_src", "arp_sha", "arp_tha")
_IPS = ("ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa", "tun_ipv4_src", "tun_ipv4_dst")
_INTS = (
    "in_port",
    "eth_type",
    "arp_op",
    "tunnel_id",
    "ip_proto",
    "tcp_src",
    "tcp_dst",
    "udp_src",
    "udp_dst",
    "reg0",
    "reg1",
)


def _field_matches(name: str, want, frame: Frame) -> bool:
    if name == "vlan_vid":
        value, mask = want if isinstance(want, tuple) else (want, 0x1FFF)
        have = 0 if frame.vlan is None else (OFPVID_PRESENT | frame.vlan)
        return (have & mask) == (value & mask)
    if name in _MACS:
        value, mask = want if isinstance(want, tuple) else (want, "ff:ff:ff:ff:ff:ff")
        have = getattr(frame, name)
        return have is not None and (_mac_int(have) & _mac_int(mask)) == (_mac_int(value) & _mac_int(mask))
    if name in _IPS:
        value, mask = want if isinstance(want, tuple) else (want, "255.255.255.255")
        have = _ip_int(getattr(frame, name))
        return have is not None and (have & _ip_int(mask)) == (_ip_int(value) & _ip_int(mask))
    if name in _INTS or name == "ct_state":
        value, mask = want if isinstance(want, tuple) else (want, None)
        have = getattr(frame, name)
        if mask is None:
            return have == value
        return have is not None and (have & mask) == (value & mask)
    raise ValueError(f"simulator does not support matching on {name}")


def lookup(flows: list[FlowSpec], table: int, frame: Frame) -> Optional[FlowSpec]:
    """The flow of ``table`` that takes ``frame`` (None: a table miss)."""
    hits = [f for f in flows if f.table == table and all(_field_matches(k, v, frame) for k, v in f.match)]
    if not hits:
        return None
    hits.sort(key=lambda f: -f.priority)
    if len(hits) > 1 and hits[0].priority == hits[1].priority:
        raise AssertionError(f"ambiguous flows at priority {hits[0].priority}: {hits[0]} and {hits[1]}")
    return hits[0]


class _Walker:
    def __init__(self, flows: list[FlowSpec], conntrack: Conntrack):
        self.flows, self.ct, self.walk = flows, conntrack, Walk()
        self.own: dict[int, list[Output]] = {}  # step index -> what its flow sent itself
        self.current: list[int] = []  # the steps whose actions are running

    def output(self, out: Output) -> None:
        self.walk.outputs.append(out)
        self.own.setdefault(self.current[-1], []).append(out)

    def table(self, table: int, frame: Frame, depth: int) -> Optional[Frame]:
        """Look ``frame`` up from ``table`` on, following goto_table; returns
        the frame as it is at the end (None once it is dropped)."""
        current: Optional[int] = table
        while current is not None and frame is not None:
            if depth > MAX_RESUBMITS:
                raise AssertionError(f"more than {MAX_RESUBMITS} resubmits: a loop")
            flow = lookup(self.flows, current, frame)
            step_at = len(self.walk.steps)
            self.walk.steps.append(Step(current, frame, flow, depth))
            if flow is None:
                # A table miss drops the frame (OpenFlow 1.3) when it is the
                # frame's own lookup; inside a resubmit it ends only that
                # lookup, and the resubmitting flow goes on with the frame.
                return frame
            self.current.append(step_at)
            frame = self.actions(flow.actions, frame, depth)
            self.current.pop()
            self.walk.steps[step_at] = Step(
                current, self.walk.steps[step_at].frame, flow, depth, tuple(self.own.get(step_at, ()))
            )
            current = flow.goto
        return frame

    def actions(self, actions, frame: Frame, depth: int) -> Optional[Frame]:
        for action in actions:
            kind = action[0]
            if kind in ("output", "output_trunc"):
                max_len = action[2] if kind == "output_trunc" else None
                if action[1] == "in_port":
                    self.output(Output(frame.in_port, frame, max_len))
                elif action[1] != frame.in_port:  # OpenFlow never echoes to in_port
                    self.output(Output(action[1], frame, max_len))
            elif kind == "bundle":
                members = tuple(m for m in action[3] if m != frame.in_port)
                if members:
                    self.output(Output(members[0], frame, among=members))
            elif kind == "clone":
                self.actions(action[1], frame, depth)  # changes inside stay inside
            elif kind == "resubmit":
                # What the resubmitted lookup changed stays changed; then this
                # action list goes on (None: a dec_ttl there ended the frame).
                frame = self.table(action[1], frame, depth + 1)
                if frame is None:
                    return None
            elif kind == "ct":
                _, commit, zone, table = action
                state = self.ct.state(zone, frame)  # as the tracker saw it, before committing
                if commit:
                    self.ct.commit(zone, frame)
                if table is not None:  # the tracked fork
                    self.walk.ct_states.append(state)
                    self.table(table, replace(frame, ct_state=state, ct_zone=zone), depth + 1)
                frame = replace(frame, ct_state=0, ct_zone=0)
            elif kind == "push_vlan":
                # A tag pushed onto a tagged frame becomes its outer tag.
                frame = replace(frame, vlan=0, vlan_inner=frame.vlan)
            elif kind == "pop_vlan":
                frame = replace(frame, vlan=frame.vlan_inner, vlan_inner=None)
            elif kind == "set_field" and action[1] == "vlan_vid":
                frame = replace(frame, vlan=action[2] & 0xFFF)
            elif kind == "set_field":
                frame = replace(frame, **{action[1]: action[2]})
            elif kind == "move":
                frame = replace(frame, **{action[2]: getattr(frame, action[1])})
            elif kind == "dec_ttl":
                if frame.ttl <= 1:
                    return None
                frame = replace(frame, ttl=frame.ttl - 1)
            else:
                raise ValueError(f"simulator does not support action {action}")
        return frame


def walk(flows: list[FlowSpec], frame: Frame, conntrack: Optional[Conntrack] = None) -> Walk:
    """``frame`` through the pipeline from table 0: every step and output.
    ``conntrack`` carries connection state between frames (a new, empty
    tracker when None)."""
    walker = _Walker(flows, conntrack if conntrack is not None else Conntrack())
    walker.table(0, frame, 0)
    return walker.walk


def trace(flows: list[FlowSpec], frame: Frame, conntrack: Optional[Conntrack] = None) -> list[Output]:
    """Every output of ``frame`` through the pipeline; [] means dropped."""
    return walk(flows, frame, conntrack).sorted_outputs()


def forward(flows: list[FlowSpec], frame: Frame) -> list[tuple[int, Optional[int]]]:
    """Output (port, VLAN tag or None) list for ``frame``; [] means dropped."""
    return [(o.port, o.frame.vlan) for o in trace(flows, frame)]

"""A tiny OpenFlow 1.3 table simulator for ``FlowSpec`` lists.

Unit tests ask "which ports would this frame leave by, with which VLAN tag?"
instead of comparing flow text, so they survive refactors of the compiler and
catch real forwarding mistakes (in the spirit of Faucet's fakeoftable). Only
the match fields and actions the compilers emit are supported; two matching
flows of equal priority raise, because OVS would pick one arbitrarily.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from typing import Optional

from .pipeline import OFPVID_PRESENT, FlowSpec


@dataclass(frozen=True)
class Frame:
    """The header fields (and metadata) the pipeline looks at."""
    in_port: int
    eth_dst: str
    eth_src: str = "00:50:56:ff:ff:fe"
    vlan: Optional[int] = None        # 802.1Q VID, None = untagged
    eth_type: int = 0x0800
    ipv4_dst: Optional[str] = None
    ttl: int = 64
    arp_op: Optional[int] = None
    arp_sha: Optional[str] = None
    arp_spa: Optional[str] = None
    arp_tha: Optional[str] = None
    arp_tpa: Optional[str] = None
    ip_proto: Optional[int] = None
    udp_src: Optional[int] = None
    udp_dst: Optional[int] = None
    tunnel_id: int = 0                # metadata: VNI (set by decapsulation or a flow)
    tun_ipv4_src: Optional[str] = None
    tun_ipv4_dst: Optional[str] = None


@dataclass(frozen=True)
class Output:
    """A frame leaving by ``port`` (or "controller") as it is at that moment;
    ``max_len``: cut to that many bytes (a truncating output)."""
    port: int | str
    frame: Frame
    max_len: Optional[int] = None


def _mac_int(mac: str) -> int:
    return int(mac.replace(":", ""), 16)


def _ip_int(ip: Optional[str]) -> Optional[int]:
    return None if ip is None else int(IPv4Address(ip))


def _field_matches(field: str, want, frame: Frame) -> bool:
    if field == "vlan_vid":
        value, mask = want if isinstance(want, tuple) else (want, 0x1FFF)
        have = 0 if frame.vlan is None else (OFPVID_PRESENT | frame.vlan)
        return (have & mask) == (value & mask)
    if field in ("eth_dst", "eth_src", "arp_sha", "arp_tha"):
        value, mask = want if isinstance(want, tuple) else (want, "ff:ff:ff:ff:ff:ff")
        have = getattr(frame, field)
        return have is not None and (_mac_int(have) & _mac_int(mask)) == (_mac_int(value) & _mac_int(mask))
    if field in ("ipv4_dst", "arp_spa", "arp_tpa", "tun_ipv4_src", "tun_ipv4_dst"):
        value, mask = want if isinstance(want, tuple) else (want, "255.255.255.255")
        have = _ip_int(getattr(frame, field))
        return have is not None and (have & _ip_int(mask)) == (_ip_int(value) & _ip_int(mask))
    if field in ("in_port", "eth_type", "arp_op", "tunnel_id", "ip_proto", "udp_src",
                 "udp_dst"):
        return getattr(frame, field) == want
    raise ValueError(f"simulator does not support matching on {field}")


def _lookup(flows: list[FlowSpec], table: int, frame: Frame) -> Optional[FlowSpec]:
    hits = [f for f in flows if f.table == table
            and all(_field_matches(k, v, frame) for k, v in f.match)]
    if not hits:
        return None
    hits.sort(key=lambda f: -f.priority)
    if len(hits) > 1 and hits[0].priority == hits[1].priority:
        raise AssertionError(f"ambiguous flows at priority {hits[0].priority}: "
                             f"{hits[0]} and {hits[1]}")
    return hits[0]


def trace(flows: list[FlowSpec], frame: Frame) -> list[Output]:
    """Every output of ``frame`` through the pipeline; [] means dropped."""
    outputs: list[Output] = []
    table: Optional[int] = 0
    while table is not None:
        flow = _lookup(flows, table, frame)
        if flow is None:
            break                      # table miss: drop (OpenFlow 1.3)
        frame = _apply(flow.actions, frame, outputs)
        if frame is None:
            break
        table = flow.goto
    return sorted(outputs, key=lambda o: o.port if isinstance(o.port, int) else -1)


def _apply(actions, frame: Frame, outputs: list[Output]) -> Optional[Frame]:
    """Run an action list; returns the frame as it is afterwards (None when
    it was dropped), appending what it sent to ``outputs``."""
    for action in actions:
        kind = action[0]
        if kind in ("output", "output_trunc"):
            max_len = action[2] if kind == "output_trunc" else None
            if action[1] == "in_port":
                outputs.append(Output(frame.in_port, frame, max_len))
            elif action[1] != frame.in_port:   # OpenFlow never echoes to in_port
                outputs.append(Output(action[1], frame, max_len))
        elif kind == "clone":
            _apply(action[1], frame, outputs)  # changes inside stay inside
        elif kind == "push_vlan":
            frame = replace(frame, vlan=0)
        elif kind == "pop_vlan":
            frame = replace(frame, vlan=None)
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


def forward(flows: list[FlowSpec], frame: Frame) -> list[tuple[int, Optional[int]]]:
    """Output (port, VLAN tag or None) list for ``frame``; [] means dropped."""
    return [(o.port, o.frame.vlan) for o in trace(flows, frame)]

"""A tiny OpenFlow 1.3 table simulator for ``FlowSpec`` lists.

Unit tests ask "which ports would this frame leave by, with which VLAN tag?"
instead of comparing flow text, so they survive refactors of the compiler and
catch real forwarding mistakes (in the spirit of Faucet's fakeoftable). Only
the match fields and actions the compilers emit are supported; two matching
flows of equal priority raise, because OVS would pick one arbitrarily.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .pipeline import OFPVID_PRESENT, FlowSpec


@dataclass(frozen=True)
class Frame:
    """The header fields the pipeline looks at."""
    in_port: int
    eth_dst: str
    eth_src: str = "00:50:56:ff:ff:fe"
    vlan: Optional[int] = None        # 802.1Q VID, None = untagged
    eth_type: int = 0x0800


def _mac_int(mac: str) -> int:
    return int(mac.replace(":", ""), 16)


def _field_matches(field: str, want, frame: Frame, vlan: Optional[int]) -> bool:
    if field == "vlan_vid":
        value, mask = want if isinstance(want, tuple) else (want, 0x1FFF)
        have = 0 if vlan is None else (OFPVID_PRESENT | vlan)
        return (have & mask) == (value & mask)
    if field in ("eth_dst", "eth_src"):
        value, mask = want if isinstance(want, tuple) else (want, "ff:ff:ff:ff:ff:ff")
        have = _mac_int(getattr(frame, field))
        return (have & _mac_int(mask)) == (_mac_int(value) & _mac_int(mask))
    if field == "in_port":
        return frame.in_port == want
    if field == "eth_type":
        return frame.eth_type == want
    raise ValueError(f"simulator does not support matching on {field}")


def _lookup(flows: list[FlowSpec], table: int, frame: Frame, vlan) -> Optional[FlowSpec]:
    hits = [f for f in flows if f.table == table
            and all(_field_matches(k, v, frame, vlan) for k, v in f.match)]
    if not hits:
        return None
    hits.sort(key=lambda f: -f.priority)
    if len(hits) > 1 and hits[0].priority == hits[1].priority:
        raise AssertionError(f"ambiguous flows at priority {hits[0].priority}: "
                             f"{hits[0]} and {hits[1]}")
    return hits[0]


def forward(flows: list[FlowSpec], frame: Frame) -> list[tuple[int, Optional[int]]]:
    """Output (port, VLAN tag or None) list for ``frame``; [] means dropped."""
    vlan = frame.vlan
    outputs: list[tuple[int, Optional[int]]] = []
    table: Optional[int] = 0
    while table is not None:
        flow = _lookup(flows, table, frame, vlan)
        if flow is None:
            break                      # table miss: drop (OpenFlow 1.3)
        for action in flow.actions:
            kind = action[0]
            if kind == "output":
                if action[1] != frame.in_port:   # OpenFlow never echoes to in_port
                    outputs.append((action[1], vlan))
            elif kind == "push_vlan":
                vlan = 0
            elif kind == "pop_vlan":
                vlan = None
            elif kind == "set_field" and action[1] == "vlan_vid":
                vlan = action[2] & 0xFFF
            else:
                raise ValueError(f"simulator does not support action {action}")
        table = flow.goto
    return sorted(outputs, key=lambda o: o[0])

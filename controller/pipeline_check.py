"""Every flow a compiler returns, checked against the pipeline declaration
(``controller.pipeline``): its table exists, it matches only the fields its
stage may match (with their OXM prerequisites), its priority is in one of
the stage's bands, its concern writes there, and it goes to, sets and
recirculates to only what the stage declares. The declaration itself is
checked on import (gotos forward, targets declared, bands disjoint)."""

from __future__ import annotations

from typing import Iterable

from vlab.protocols import ETH_ARP, ETH_IPV4, IPPROTO_TCP, IPPROTO_UDP

from .pipeline import CONCERN_NAMES, PIPELINE, STAGES, FlowSpec, concern_of

# OXM prerequisites (OpenFlow 1.3 §7.2.3.8): a match on the field needs the
# given field matched to one of the values, or OVS refuses the flow.
PREREQUISITES: dict[str, tuple[str, frozenset[int]]] = {
    **{f: ("eth_type", frozenset({ETH_IPV4})) for f in ("ipv4_src", "ipv4_dst", "ip_proto")},
    **{f: ("eth_type", frozenset({ETH_ARP})) for f in ("arp_op", "arp_spa", "arp_tpa", "arp_sha", "arp_tha")},
    **{f: ("ip_proto", frozenset({IPPROTO_TCP})) for f in ("tcp_src", "tcp_dst")},
    **{f: ("ip_proto", frozenset({IPPROTO_UDP})) for f in ("udp_src", "udp_dst")},
}


class PipelineError(AssertionError):
    """A compiled flow that does not fit the pipeline declaration."""


def _walk(actions: Iterable[tuple]) -> Iterable[tuple]:
    for action in actions:
        yield action
        if action[0] == "clone":
            yield from _walk(action[1])


def violations(flow: FlowSpec) -> list[str]:
    """What is wrong with ``flow`` by the declaration (empty: it fits)."""
    stage = STAGES.get(flow.table)
    if stage is None:
        return [f"table {flow.table} is not in the pipeline"]
    out = []
    match = dict(flow.match)
    for name in sorted(set(match) - stage.matches):
        out.append(f"{stage.name} may not match {name}")
    for name, (need, values) in PREREQUISITES.items():
        if name in match and match.get(need) not in values:
            shown = " or ".join(f"{v:#06x}" if need == "eth_type" else str(v) for v in sorted(values))
            out.append(f"a match on {name} needs {need} {shown}")
    if stage.band_of(flow.priority) is None:
        out.append(f"priority {flow.priority} is in no band of {stage.name}")
    if concern_of(flow.cookie) not in stage.concerns:
        out.append(
            f"concern {CONCERN_NAMES.get(concern_of(flow.cookie), hex(flow.cookie))} "
            f"does not write in {stage.name}"
        )
    if flow.goto is not None and flow.goto not in stage.goto:
        out.append(f"{stage.name} may not go to table {flow.goto}")
    for action in _walk(flow.actions):
        kind = action[0]
        if kind == "set_field" and action[1] not in stage.sets:
            out.append(f"{stage.name} may not set {action[1]}")
        target = action[1] if kind == "resubmit" else action[3] if kind == "ct" else None
        if target is not None and target not in stage.recirculate:
            out.append(f"{stage.name} may not {kind} to table {target}")
    return out


def check(flows: Iterable[FlowSpec]) -> None:
    """Raise ``PipelineError`` on the first flow that does not fit."""
    for flow in flows:
        wrong = violations(flow)
        if wrong:
            raise PipelineError(f"{flow}: " + "; ".join(wrong))


def _consistent() -> None:
    """The declaration itself: gotos go forward (OpenFlow 1.3 allows
    nothing else), every target exists, bands do not overlap."""
    for s in PIPELINE:
        for t in s.goto | s.recirculate:
            assert t in STAGES, f"{s.name}: table {t} is not declared"
        assert all(t > s.table for t in s.goto), f"{s.name}: goto_table must go forward"
        bands = sorted(s.bands, key=lambda b: b.low)
        for a, b in zip(bands, bands[1:]):
            assert a.high < b.low, f"{s.name}: bands {a.name} and {b.name} overlap"


_consistent()

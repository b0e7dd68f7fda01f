"""pktcap-uw's Drop capture point: every frame the vSwitch pipeline drops
while a Drop session runs on the host, each with the reason.

OpenFlow drops a frame by a flow with no actions and no goto, or by a table
miss. While a host has a Drop session open (``desired.json``
``drop_captures``), the last compiler pass (``expose``) turns every such
flow of its bridges into an output to the controller and adds a miss flow
to every stage whose miss drops (band ``drop-capture``, priority 0): the
frame is still dropped (the controller forwards nothing), and a copy, as
the pipeline had it at that table, reaches the controller as a packet-in.

An exposed flow keeps its concern's cookie, so resync by concern is
unchanged, with ``EXPOSED`` and its priority in the detail bits: the
packet-in's cookie and table say exactly which flow dropped the frame.
The reason is ``controller.explain.drop_reason``'s, the same words
``vlab trace`` uses, so the two cannot disagree.
"""

from __future__ import annotations

from vlab.bindings import SwitchBinding

from .pipeline import CONCERN_NAMES, PIPELINE, Concern, FlowSpec, Priority, concern_of, cookie

COOKIE = cookie(Concern.DROP_CAPTURE)  # its miss flows
EXPOSED = 1 << 48  # cookie detail: a drop flow turned into a copy for a Drop capture
_PRIORITY_SHIFT = 16  # cookie detail bits 16..31: the exposed flow's priority (the epoch is below)
TO_CONTROLLER = (("output", "controller"),)


def is_drop(flow: FlowSpec) -> bool:
    return not flow.actions and flow.goto is None


def expose(flows: list[FlowSpec], binding: SwitchBinding) -> list[FlowSpec]:
    """``flows`` with every drop made visible to the controller, when a Drop
    capture runs on ``binding``'s host; unchanged otherwise."""
    if not binding.drop_capture:
        return flows
    out = [
        FlowSpec(
            f.table,
            f.priority,
            f.match,
            TO_CONTROLLER,
            None,
            f.cookie | EXPOSED | (f.priority << _PRIORITY_SHIFT),
        )
        if is_drop(f)
        else f
        for f in flows
    ]
    out += [
        FlowSpec.make(s.table, Priority.DROP_CAPTURE_MISS, {}, TO_CONTROLLER, cookie=COOKIE)
        for s in PIPELINE
        if s.miss == "drop"
    ]
    return out


def dropped_by(cookie_value: int, table: int):
    """For a packet-in: None if it is no Drop capture copy; else the
    priority of the flow that dropped the frame (None inside: a table miss)."""
    concern = concern_of(cookie_value)
    if concern == Concern.DROP_CAPTURE:
        return (None,)
    # Only our concerns' cookies: a packet-in of no flow carries all ones.
    if concern in CONCERN_NAMES and cookie_value & EXPOSED:
        return ((cookie_value >> _PRIORITY_SHIFT) & 0xFFFF,)
    return None

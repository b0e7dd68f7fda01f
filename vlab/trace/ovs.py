"""``vlab trace`` on a running lab: the controller's view rebuilt from the
control files, OVS's own ``ofproto/trace`` of the frame read back by stage,
band and concern names, and the comparison with the model."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from controller.pipeline import CONCERN_NAMES, STAGES, band_label, concern_of
from controller.simulate import CT_EST, CT_INV, CT_NEW, CT_REL, CT_RPL, CT_TRK, Frame
from vlab.bindings import GuestNic, SwitchBinding
from vlab.protocols import (
    ETH_ARP,
    IPPROTO_TCP,
    IPPROTO_UDP,
)

from .frames import TraceError


def ofproto_flow(frame: Frame) -> str:
    """``frame`` as an ``ofproto/trace`` flow (ovs-fields names)."""
    parts = [f"in_port={frame.in_port}"]
    if frame.tun_ipv4_src is not None:
        # A frame from the tunnel port: the metadata decapsulation sets.
        parts += [f"tun_id={frame.tunnel_id:#x}", f"tun_src={frame.tun_ipv4_src}"]
    parts += [f"dl_src={frame.eth_src}", f"dl_dst={frame.eth_dst}"]
    if frame.vlan is not None:
        parts.append(f"dl_vlan={frame.vlan}")
    parts.append(f"dl_type={frame.eth_type:#06x}")
    if frame.eth_type == ETH_ARP:
        parts += [
            f"arp_op={frame.arp_op}",
            f"arp_spa={frame.arp_spa}",
            f"arp_tpa={frame.arp_tpa}",
            f"arp_sha={frame.arp_sha}",
            f"arp_tha={frame.arp_tha or '00:00:00:00:00:00'}",
        ]
    elif frame.ipv4_dst is not None:
        parts += [f"nw_src={frame.ipv4_src}", f"nw_dst={frame.ipv4_dst}", f"nw_ttl={frame.ttl}"]
        if frame.ip_proto is not None:
            parts.append(f"nw_proto={frame.ip_proto}")
        # A pcap's IP packet may lack its L4 header (a fragment, a cut frame).
        if frame.ip_proto == IPPROTO_TCP and frame.tcp_dst is not None:
            parts += [
                f"tp_src={frame.tcp_src}",
                f"tp_dst={frame.tcp_dst}",
                f"tcp_flags={frame.tcp_flags:#05x}",
            ]
        elif frame.ip_proto == IPPROTO_UDP and frame.udp_dst is not None:
            parts += [f"tp_src={frame.udp_src}", f"tp_dst={frame.udp_dst}"]
    return ",".join(parts)


# -- OVS's own trace, read back by the pipeline declaration --------------------
@dataclass(frozen=True)
class OvsStep:
    """One table lookup in ``ofproto/trace`` output, named."""

    table: int
    stage: str
    band: str
    concern: str
    priority: Optional[int]  # None: no match
    pass_: int  # 0, then one per recirculation (ct(table=))


@dataclass
class OvsTrace:
    steps: list[OvsStep] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)  # OpenFlow ports
    # A LAG's bundle action: its members (OVS's trace names no member).
    bundles: list[tuple[int, ...]] = field(default_factory=list)
    datapath_actions: list[str] = field(default_factory=list)  # one per pass


_TABLE_LINE = re.compile(r"^\s*(\d+)\. (.*)$")
_MATCHED = re.compile(r"priority (\d+)(?:, cookie (0x[0-9a-f]+))?")
_OUTPUT = re.compile(r"\boutput(?::|\(port=)(\d+)")
_BUNDLE = re.compile(r"\bbundle\([^)]*members:([\d,]+)\)")


def parse_ofproto_trace(text: str) -> OvsTrace:
    """Steps and OpenFlow outputs of an ``ovs-appctl ofproto/trace`` run.

    Only the traced frame's own passes are read: a second ``bridge(...)``
    section within a pass is the outer packet of a native tunnel (VXLAN,
    ERSPAN, GRE), translated again from the vmk it leaves by, and is
    skipped: its lines are indented deeper than its header, and the frame's
    own actions resume at the header's indentation (an ERSPAN copy in a
    ``clone`` is followed by the frame's forwarding) or after a blank line.
    ``clone(...)`` lines are skipped (their actions follow, expanded);
    ``IN_PORT`` is an output to the frame's own in_port."""
    trace = OvsTrace()
    passno, in_port, nested, bridges = 0, None, None, 0
    lines = text.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if not stripped:
            nested = None
            continue
        if nested is not None:
            if indent > nested or stripped.startswith("---"):
                continue
            nested = None
        if stripped.startswith("bridge("):
            bridges += 1
            nested = indent if bridges > 1 else None
            continue
        if line.startswith("recirc("):
            passno, bridges = passno + 1, 0
            continue
        if line.startswith("Flow:") and in_port is None:
            found = re.search(r"\bin_port=(\d+)", line)
            in_port = int(found.group(1)) if found else None
            continue
        if line.startswith("Datapath actions:"):
            trace.datapath_actions.append(line.split(":", 1)[1].strip())
            continue
        m = _TABLE_LINE.match(line)
        if m:
            table, rest = int(m.group(1)), m.group(2)
            stage = STAGES.get(table)
            name = stage.name if stage else f"table {table}"
            if rest.startswith("No match"):
                trace.steps.append(OvsStep(table, name, "miss", "-", None, passno))
                continue
            hit = _MATCHED.search(rest)
            prio = int(hit.group(1)) if hit else None
            ck = int(hit.group(2), 16) if hit and hit.group(2) else 0
            concern = CONCERN_NAMES.get(concern_of(ck), "?")
            trace.steps.append(OvsStep(table, name, band_label(table, prio), concern, prio, passno))
            continue
        if stripped.startswith(("->", ">>", "Final flow:", "Megaflow:", "bridge(", "clone(", "---")):
            continue
        skipped = i + 1 < len(lines) and "skipping output to input port" in lines[i + 1]
        if skipped:
            continue
        trace.outputs += [int(port) for port in _OUTPUT.findall(stripped)]
        trace.bundles += [tuple(int(n) for n in m.split(",")) for m in _BUNDLE.findall(stripped)]
        if stripped == "IN_PORT" and in_port is not None:
            trace.outputs.append(in_port)
    return trace


# -- the controller's view of a running lab -------------------------------------
def live_state(ctl):
    """A ``ControllerState`` rebuilt from a running lab's control files:
    what the controller compiled its flows from."""
    from controller.failover import link_changed
    from controller.state import ControllerState
    from vlab import control

    state = ControllerState(ctl.lab)
    applied = ctl.applied() or {}
    state.take_desired(ctl.desired())
    state.set_guests({port: GuestNic.from_json(g) for port, g in applied.get("guests", {}).items()})
    state.load_snooped(control.read_json(ctl.dir / control.SNOOPED))
    for host, uplinks in applied.get("uplinks_down", {}).items():
        for dpid in state.dpids:
            b = state.binding(dpid)
            for uplink in uplinks:
                if b.host == host and any(p.name == uplink for p in b.uplink_ports()):
                    link_changed(state, dpid, uplink, False)
    # Teaming decisions (beacon verdicts, teams after failovers without
    # failback, load-based moves), as the controller keeps them.
    state.load_teaming(control.read_json(ctl.dir / control.TEAMING))
    return state


def ct_next(state: int) -> str:
    """A simulator ct_state as ofproto/trace's ``--ct-next`` flags."""
    names = [
        (CT_TRK, "trk"),
        (CT_NEW, "new"),
        (CT_EST, "est"),
        (CT_REL, "rel"),
        (CT_RPL, "rpl"),
        (CT_INV, "inv"),
    ]
    return ",".join(name for bit, name in names if state & bit)


def compare_with_ovs(ctl, binding: SwitchBinding, frame: Frame, ex, held_to_mtu: bool = False):
    """OVS's own trace of ``frame`` on the running bridge, read back by stage
    name, and a disagreement with the model's explanation ``ex`` (None when
    both send it to the same ports). The connection states the model's
    conntrack gave each ``ct`` fork are passed as ``--ct-next``, so both
    trace the same states. Copies (mirror, capture, packet-in) are left
    out of the comparison on both sides; with ``held_to_mtu`` the outputs
    are not compared (OVS's trace does not see the MTU)."""
    from controller.explain import is_copy, lag_output_name, mirror_only_ports
    from vlab.ovs import OvsError

    argv = ["ofproto/trace", binding.bridge, ofproto_flow(frame)]
    for state in ex.ct_states:
        argv += ["--ct-next", ct_next(state)]
    try:
        text = ctl.ovs(binding.host).appctl(*argv)
    except OvsError as exc:
        raise TraceError(f"ofproto/trace failed: {exc}") from None
    ovs = parse_ofproto_trace(text)
    ports = {p.ofport: p for p in binding.ports}
    mirror_only = mirror_only_ports(binding, ctl.lab)
    outputs = sorted(
        {
            ports[n].name if n in ports else f"port {n}"
            for n in ovs.outputs
            if not is_copy(ports.get(n), n, mirror_only)
        }
        | {lag_output_name(binding, [ports[n].name for n in members]) for members in ovs.bundles}
    )
    model = sorted({d.split(" to ")[0] for d in ex.delivered})
    disagree = None
    if not held_to_mtu and outputs != model:
        disagree = (
            f"OVS sends it to {', '.join(outputs) or 'nothing'}; the lab's model to "
            f"{', '.join(model) or 'nothing'} (the controller's view may differ from "
            f"the control files)"
        )
    return {
        "steps": [vars(s) for s in ovs.steps],
        "outputs": outputs,
        "datapath_actions": ovs.datapath_actions,
    }, disagree

"""Why a frame went where it went: a simulator walk read back in ESXi and
NSX terms.

``explain(binding, flows, lab, frame, ...)`` takes the bridge the frame
enters and its compiled flows (``on_host(state, host, port)`` gives both from
a ``ControllerState``: the lab plus the controller's current view, placement,
guests' NIC state, uplinks down, imported DFW sessions), walks the frame
(``controller.simulate``), and names each step by the pipeline declaration
(stage, priority band, concern). For every port the frame did not reach
that a user could have expected it at, and for the frame itself when it
was dropped, it gives the reason with the rule that made it, asking the
compilers' own predicates (``vswitch.View.*_refusal``,
``overlay.ingress_refusal``) so the explanation cannot drift from the flows:
"forged transmits = reject: source MAC ... is not vm1-eth0's MAC ...",
"reverse teaming: came in on vmnic1, vm1-eth0 transmits on vmnic0",
"distributed firewall rule 2 'web-to-db' at db-eth0: drop".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from vlab.bindings import CAPTURE_BASE, PortBinding, SwitchBinding
from vlab.protocols import ETH_ARP, ETH_IPV4, IPPROTO_TCP, IPPROTO_UDP, PROTOCOL_NAMES

from . import mirror, overlay
from .pipeline import CONCERN_NAMES, STAGES, FlowSpec, Priority, Table, band_label, concern_of
from .portsecurity import PortSecurity
from .simulate import Conntrack, Frame, Step, lookup, walk
from .vswitch import View

# Bands whose flows drop what they take, and why (the DFW's are per rule).
_DROPPING_BANDS = {
    "mirror-destination-only": "port mirroring: {port} is the destination of a local session "
    "with normal traffic disallowed, so what it sends is dropped",
    "invalid": "distributed firewall at {port}: invalid, part of no connection its "
    "zone knows (for TCP: a SYN+ACK for a handshake it never saw)",
    "no-route": "distributed router: no route for {ipv4_dst} (no LIF holds it, or its "
    "ARP table does not know it)",
    "tunnel-unknown": "unknown unicast from the tunnel: no VM on this host has {eth_dst} on "
    "this logical switch, and a port group delivers unicast by destination MAC only",
}


@dataclass(frozen=True)
class Stage:
    """One step of the walk, named: table, stage, band, writer, what it did."""

    table: int
    stage: str
    band: str
    concern: str
    depth: int
    did: str


@dataclass
class Explanation:
    """A frame's walk through one bridge, and the reasons for what it missed."""

    host: str
    bridge: str
    frame: Frame
    in_port: str
    steps: list[Stage] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)
    copies: list[str] = field(default_factory=list)  # mirror/capture copies, packet-ins
    ct_states: list[int] = field(default_factory=list)  # each ct(table=) fork's state, in order
    refused: list[tuple[str, str]] = field(default_factory=list)  # (port or "", reason)

    @property
    def dropped(self) -> bool:
        return not self.delivered

    def reason_for(self, port: str) -> Optional[str]:
        return next((r for p, r in self.refused if p == port), None)

    def to_json(self) -> dict:
        return {
            "host": self.host,
            "bridge": self.bridge,
            "in_port": self.in_port,
            "frame": {k: v for k, v in vars(self.frame).items() if v not in (None, 0) or k in ("in_port",)},
            "steps": [vars(s) for s in self.steps],
            "delivered": self.delivered,
            "copies": self.copies,
            "refused": [{"port": p, "reason": r} for p, r in self.refused],
        }

    def render(self) -> str:
        f = self.frame
        head = (
            f"{self.host} {self.bridge}: from {self.in_port}"
            f"{f' (VNI {f.tunnel_id} from VTEP {f.tun_ipv4_src})' if f.tun_ipv4_src else ''}"
            f", {f.eth_src} > {f.eth_dst}"
            f", {'VLAN ' + str(f.vlan) if f.vlan is not None else 'untagged'}"
            f"{', ' + _l3(f) if _l3(f) else ''}"
        )
        lines = [head]
        for s in self.steps:
            lines.append(f"  {'  ' * s.depth}{s.table} {s.stage:<17} {s.band:<24} {s.did}")
        lines.append("delivered: " + (", ".join(self.delivered) if self.delivered else "nothing"))
        if self.copies:
            lines.append("copies: " + ", ".join(self.copies))
        if self.refused:
            lines.append("dropped:" if self.dropped else "not delivered:")
            lines += [f"  {p + ': ' if p else ''}{r}" for p, r in self.refused]
        return "\n".join(lines)


def _l3(f: Frame) -> str:
    if f.eth_type == ETH_ARP:
        return f"ARP {'request' if f.arp_op == 1 else 'reply'} for {f.arp_tpa}"
    if f.ipv4_dst is None:
        return ""
    proto = PROTOCOL_NAMES.get(f.ip_proto, "ip").upper()
    port = f.tcp_dst if f.ip_proto == IPPROTO_TCP else f.udp_dst if f.ip_proto == IPPROTO_UDP else None
    return f"{proto} {f.ipv4_src or '?'} > {f.ipv4_dst}{':' + str(port) if port else ''}"


def is_copy(port: Optional[PortBinding], no, mirror_only: frozenset = frozenset()) -> bool:
    """Output ``no`` (whose binding is ``port``, if any) is a copy, not a
    delivery: a PortOutput capture port, a port mirroring tunnel, the
    controller, or a local mirror session's destination vNIC that receives
    only mirrored traffic (``mirror_only``: normal traffic disallowed, as
    vSphere's default is)."""
    if no == "controller" or (isinstance(no, int) and no >= CAPTURE_BASE) or no in mirror_only:
        return True
    return port is not None and port.kind == "mirror"


def mirror_only_ports(binding: SwitchBinding, lab) -> frozenset[int]:
    """The destination vNICs of this bridge's local mirror sessions that
    disallow normal traffic: whatever reaches them is a copy."""
    return mirror.plan(binding, lab)[2]


class _Names:
    """OpenFlow port numbers of one bridge, as a user names them."""

    def __init__(self, b: SwitchBinding, mirror_only: frozenset[int] = frozenset()):
        self.binding = b
        self.by_no = {p.ofport: p for p in b.ports}
        self.mirror_only = mirror_only

    def port(self, no) -> Optional[PortBinding]:
        return self.by_no.get(no)

    def port_named(self, name: str) -> Optional[PortBinding]:
        return next((p for p in self.by_no.values() if p.name == name), None)

    def is_copy(self, no) -> bool:
        return is_copy(self.by_no.get(no), no, self.mirror_only)

    def name(self, no, frame: Optional[Frame] = None) -> str:
        if no == "controller":
            return "controller"
        p = self.by_no.get(no)
        if p is not None:
            if p.kind in ("tunnel", "mirror") and frame is not None and frame.tun_ipv4_dst:
                return f"{p.name} to {frame.tun_ipv4_dst}"
            return p.name
        if isinstance(no, int) and no >= CAPTURE_BASE and no - CAPTURE_BASE in self.by_no:
            return f"PortOutput capture of {self.by_no[no - CAPTURE_BASE].name}"
        return f"port {no}"


def lag_output_name(binding, members: list[str]) -> str:
    """How a delivery by a LAG's bundle reads: the LAG and its members (one
    of them carries the frame; the model cannot say which, OVS's hash does)."""
    lag = binding.switch.lag_of(members[0]) if members else None
    joined = " or ".join(members)
    return f"{lag.name} ({joined})" if lag is not None else joined


def _did(step: Step, names: _Names) -> str:
    flow = step.flow
    if flow is None:
        return "no flow: dropped (table miss)"
    parts = []
    for o in step.outputs:
        tag = f" VLAN {o.frame.vlan}" if o.frame.vlan is not None else ""
        cut = f" cut to {o.max_len} B" if o.max_len else ""
        if o.among:
            who = " or ".join(names.name(n, o.frame) for n in o.among)
            parts.append(f"one of {who}{tag} (a LAG: OVS's hash over the members LACP bundled)")
        else:
            parts.append(f"{names.name(o.port, o.frame)}{tag}{cut}")
    did = ("out " + ", ".join(parts)) if parts else ""
    for a in flow.actions:
        if a[0] == "ct" and a[1]:
            did += f"{'; ' if did else ''}commit to ct zone {a[2]}"
    recirc = [
        a for a in flow.actions if a[0] in ("resubmit", "ct") and (a[0] == "resubmit" or a[3] is not None)
    ]
    for a in recirc:
        target = a[1] if a[0] == "resubmit" else a[3]
        did += (
            f"{'; ' if did else ''}{'ct zone ' + str(a[2]) + ', ' if a[0] == 'ct' else ''}"
            f"to {STAGES[target].name}"
        )
    if flow.goto is not None:
        did += f"{'; ' if did else ''}goto {STAGES[flow.goto].name}"
    return did or "drop"


def _band(flow: Optional[FlowSpec]) -> str:
    return "miss" if flow is None else band_label(flow.table, flow.priority)


def _dfw_port(step: Step, names: _Names) -> str:
    no = step.frame.reg0 if step.table == Table.DFW_TO_VM_CT else step.frame.in_port
    return names.name(no)


def _step_reason(step: Step, names: _Names, lab, view: Optional[View]) -> Optional[str]:
    """Why the frame ended at ``step``, when it ended there (None: it did not)."""
    f = step.frame
    # A port's refused frames (vs_in_port, vs_forward) have a flow of their
    # own only to be counted by port; why they are refused is what a miss
    # there would say.
    refused = step.flow is not None and _band(step.flow) == "refused"
    if step.flow is None or refused:
        if step.table == Table.INGRESS:
            p = names.port(f.in_port)
            if p is None:
                return f"no port {f.in_port} on this bridge"
            if p.logical_switch is not None:
                return overlay.ingress_refusal(names.binding, p, f.eth_src, f.vlan is not None)
            if view is not None and p.port_group is not None:
                return view.ingress_refusal(p, f.eth_src, f.vlan is not None)
        if step.table == Table.FORWARD:
            vlan = f.vlan if f.vlan is not None else 0
            sender = names.port(f.in_port)
            if view is not None and view.members(vlan) and sender is not None and sender.kind == "uplink":
                return (
                    f"unknown unicast from uplink {sender.name} in VLAN {vlan}: only VGT ports carry "
                    f"that VLAN here and none has {f.eth_dst}, and frames from an uplink never go "
                    f"out of another uplink"
                )
            return f"VLAN {vlan}: no port group on this vSwitch carries it, and no VGT port"
        sender = names.port(f.in_port)
        if step.table == Table.L2 and sender is not None and sender.kind == "tunnel":
            names_of = {ls.vni: ls.name for ls in lab.nsx.logical_switches} if lab.nsx else {}
            segment = (
                f"logical switch {names_of[f.tunnel_id]}" if f.tunnel_id in names_of else "no logical switch"
            )
            return (
                f"VNI {f.tunnel_id} ({segment}) from VTEP {f.tun_ipv4_src}: no VM of it runs on this "
                f"host, and a VTEP drops what it has no port for"
            )
        return f"no flow of {STAGES[step.table].name} takes it (table miss)"
    band = _band(step.flow)
    if band == "no-route" and f.eth_type != ETH_IPV4:
        return "distributed router: a frame for the router's vMAC that is not IPv4 is dropped"
    if band in _DROPPING_BANDS:
        return _DROPPING_BANDS[band].format(
            port=_dfw_port(step, names) if band == "invalid" else names.name(f.in_port),
            ipv4_dst=f.ipv4_dst,
            eth_dst=f.eth_dst,
        )
    if step.table in (Table.DFW_FROM_VM, Table.DFW_TO_VM_CT) and not step.flow.actions:
        where = _dfw_port(step, names)
        if band == "default":
            return f"distributed firewall at {where}: no rule allows it; the default rule drops"
        if band.startswith("rule "):
            i = Priority.DFW_RULES - step.flow.priority
            rule = lab.distributed_firewall.rules[i]
            return f"distributed firewall rule {i + 1} '{rule.name}' at {where}: {rule.action}"
    if step.table == Table.L2 and not step.flow.actions and band in ("exact", "tunnel-exact"):
        # A logical-switch port that MAC address changes = reject blocks.
        for p in names.binding.logical_ports():
            port = PortSecurity.of(names.binding, p)
            if port.effective_mac == (f.eth_dst or "").lower() and port.inbound_refusal():
                return port.inbound_refusal()
    if any(a[0] == "dec_ttl" for a in step.flow.actions) and f.ttl <= 1:
        return "distributed router: TTL expired (the router decrements it)"
    return None


def _vswitch_reasons(
    step: Step, view: View, names: _Names, delivered: set[int], to: Optional[str]
) -> list[tuple[str, str]]:
    """For a frame vs_forward took: the local ports it was not delivered to
    and why (all of them for ``to``; else only those a filter refused)."""
    f = step.frame
    vlan = f.vlan if f.vlan is not None else 0
    src = names.port(f.in_port)
    from_uplink = f.in_port if src is not None and src.kind == "uplink" else None
    src = src if src is not None and src.port_group is not None else None
    dst = view.classify(vlan, f.eth_dst)
    out = []
    for p in view.locals:
        if p.ofport in delivered or (to is not None and p.name != to):
            continue
        why = view.dispatch_refusal(p, src, vlan, dst)
        if why is None:
            why = view.rx_refusal(p, from_uplink, dst)
        elif to is None:
            continue  # not expected there: not worth a line
        if why is not None:
            out.append((p.name, why))
    if dst.kind == "unknown" and from_uplink is not None and to is None and not delivered:
        out.append(
            (
                "",
                f"unknown unicast from uplink {names.name(from_uplink)}: no port on "
                f"this vSwitch has {dst.mac}, and frames from an uplink never go out "
                f"of another uplink",
            )
        )
    return out


def explain(
    binding: SwitchBinding,
    flows: list[FlowSpec],
    lab,
    frame: Frame,
    conntrack: Optional[Conntrack] = None,
    to: Optional[str] = None,
    size: Optional[int] = None,
) -> Explanation:
    """Walk ``frame`` through ``flows`` (the bridge ``binding``'s) and explain.
    ``to``: the port the user expected it at; ``size``: the IP packet's
    length in bytes, held against the vSwitch MTU at every output."""
    names = _Names(binding, mirror_only_ports(binding, lab))
    view = View(binding) if binding.local_ports() else None
    w = walk(flows, frame, conntrack)
    ex = Explanation(binding.host, binding.bridge, frame, names.name(frame.in_port))
    ex.ct_states = list(w.ct_states)
    for s in w.steps:
        concern = CONCERN_NAMES.get(concern_of(s.flow.cookie), "?") if s.flow else "-"
        ex.steps.append(Stage(s.table, STAGES[s.table].name, _band(s.flow), concern, s.depth, _did(s, names)))
    delivered = set()
    for o in w.sorted_outputs():
        name = names.name(o.port, o.frame)
        if o.among:
            # A LAG: one member, which OVS's hash and LACP pick.
            name = lag_output_name(binding, [names.name(n, o.frame) for n in o.among])
        if names.is_copy(o.port):
            # A mirror or capture copy, or a packet-in: not a delivery.
            if name not in ex.copies:
                ex.copies.append(name)
            continue
        if size is not None and size > binding.switch.mtu and o.max_len is None:
            ex.refused.append(
                (
                    name,
                    f"MTU: a {size}-byte IP packet is larger than "
                    f"{binding.bridge}'s MTU of {binding.switch.mtu}; the "
                    f"port drops it",
                )
            )
            continue
        delivered.add(o.port)
        if name not in ex.delivered:
            ex.delivered.append(name)
    ended = []  # the reasons a walk (or a fork of it) ended with
    for s in w.steps:
        why = _step_reason(s, names, lab, view)
        if why is not None:
            dfw = s.table in (Table.DFW_FROM_VM, Table.DFW_TO_VM_CT)
            port = _dfw_port(s, names) if dfw else ""
            ex.refused.append((port, why))
            ended.append(why)
        if (
            s.table == Table.FORWARD
            and s.flow is not None
            and _band(s.flow) != "refused"
            and view is not None
        ):
            ex.refused += _vswitch_reasons(s, view, names, delivered, to)
    if to is not None and to not in ex.delivered and ex.reason_for(to) is None:
        if names.port_named(to) is None:
            ex.refused.append((to, f"{binding.bridge} on {binding.host} has no port {to}"))
        else:
            why = ended[0] if ended else "the frame never reaches a flow that delivers to it"
            ex.refused.append((to, why))
    return ex


def drop_reason(
    binding: SwitchBinding, flows: list[FlowSpec], lab, table: int, frame: Frame, priority: Optional[int]
) -> str:
    """Why the pipeline dropped ``frame`` at ``table``, in the words of a
    trace: the Drop capture's reason (``controller.dropcapture``). ``flows``
    are the bridge's as compiled without the capture's copies; ``priority``
    is the dropping flow's (None: a table miss). The frame is looked up
    again to find that flow; where the copy lacks metadata the lookup
    needs, the flow's band still names the policy."""
    names = _Names(binding, mirror_only_ports(binding, lab))
    view = View(binding) if binding.local_ports() else None
    flow = lookup(flows, table, frame)
    if (flow.priority if flow else None) != priority:
        flow = None if priority is None else FlowSpec(table, priority, ())
    step = Step(table, frame, flow)
    why = _step_reason(step, names, lab, view)
    if why is None and table == Table.FORWARD and flow is not None and view is not None:
        refused = _vswitch_reasons(step, view, names, set(), None)
        why = refused[0][1] if refused else None
    return why or f"dropped by {STAGES[table].name} ({_band(flow)})"


def on_host(state, host: str, port: str) -> tuple[SwitchBinding, list[FlowSpec]]:
    """The bridge of ``host`` that has ``port``, and its flows as the
    controller (``state``, a ``ControllerState``) would compile them now."""
    for dpid in state.dpids:
        binding = state.binding(dpid)
        if binding.host == host and any(p.name == port for p in binding.ports):
            return binding, state.flows(dpid, drops_exposed=False)
    raise KeyError(f"{host} has no vSwitch port {port!r}")

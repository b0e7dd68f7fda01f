"""Port mirroring on the distributed switch, as a pure pass over one bridge's flows.

vSphere's port mirroring sessions (``distributed_switches[].mirrors``) are
configured on the distributed switch, so every member host applies them to
the source ports it has now: the vNICs of the VMs it runs (after a vMotion
the destination host mirrors) and its own VMkernel adapters. This pass runs
last (``controller.flows.compile_bridge``) and works on the finished flow
list, whatever the other concerns put in it:

* a source's **ingress** (vSphere: what the VM or vmk sends into the
  switch): every INGRESS-table flow with ``in_port`` = the port gets the
  copies as its first actions, so a copy is the frame exactly as it was
  sent, before the switch tags it or the distributed firewall tracks it.
  Frames the switch refuses at its door (forged source MAC, a tag on an
  access port) match no such flow and are not mirrored.
* a source's **egress** (what the switch delivers to it): every
  ``("output", port)``, in any table, gets the copies placed in front of
  it; when the flow has a ``ct`` or ``resubmit`` before that output, in
  front of the first of those instead, with the VLAN actions between that
  point and the output repeated inside the copy. So the copy is the frame
  as the port receives it, and only when the vSwitch (and the DFW)
  delivers it.

Every copy is an OVS ``clone``: what it sets (tunnel destination and key,
VLAN tags) never reaches the flow's own outputs.

What a copy carries: the frame as the source port sees it, so for a VST
port group without the 802.1Q tag the pipeline carries internally (VGT
guests' own tags stay). vSphere's ERSPAN headers (types II and III) have a
field for the original VLAN, which OVS writes 0: an ERSPAN copy of a VST
port therefore leaves the bridge with the port group's tag on its inner
frame, and the tc program on the host's uplinks moves it into the header
(``vlab.operations.erspan_vlan``). Copies leave by

* an ERSPAN or GRE tunnel port (``bindings.MIRROR_TUNNELS``) with
  ``remote_ip=flow, out_key=flow``: the session's destination IP and its
  session ID (the GRE key) are set per copy; OVS routes the outer packet by
  the host's main routing table, so it leaves from the VMkernel adapter
  towards the monitor, with that vmk's address, through its uplinks.
  ERSPAN type III copies of what a source sent leave by the port whose
  header says direction 0, of what it received by the one that says 1;
* for an RSPAN (Remote Mirroring Source) session, the vmnics the host maps
  the session's destination dvUplinks to, with the RSPAN VLAN pushed (over
  the port group's own tag when the original VLAN is preserved), whatever
  the teaming policy says, as vSphere sends them;
* or, for a local session, the destination vNICs on the same host; as on
  vSphere, a destination on another host receives nothing.

A snap length (vSphere "Mirrored packet length") makes the copy's output a
truncating one: the inner frame is cut before encapsulation. With normal
traffic disallowed on a local session's destination vNIC, nothing else is
delivered to it (its outputs are removed) and what it sends is dropped by a
flow of this concern's own (cookie ``Concern.MIRROR``).
"""

from __future__ import annotations

from typing import Optional

from vlab import naming
from vlab.bindings import PortBinding, SwitchBinding
from vlab.lab.model import Lab, MirrorPort, MirrorSession
from vlab.lab.resolve import mirror_session_id

from .pipeline import OFPVID_PRESENT, Concern, FlowSpec, Priority, Table, cookie

COOKIE = cookie(Concern.MIRROR)
# Actions after which the frame may be somewhere else (recirculated, other
# tables' actions applied): copies go in front of them.
_BARRIERS = ("ct", "resubmit")


def _vlan_action(action: tuple) -> bool:
    return action[0] in ("push_vlan", "pop_vlan") or (action[0] == "set_field" and action[1] == "vlan_vid")


def _output(port: int, session: MirrorSession, extra: int = 0) -> tuple:
    if session.snap_length is not None:
        return ("output_trunc", port, session.snap_length + extra)
    return ("output", port)


def _vlan_of(binding: SwitchBinding, port: PortBinding) -> int:
    """The VLAN of a source port's port group (0 for a logical-switch port)."""
    if port.port_group is None:
        return 0
    return binding.switch.port_group(port.port_group).vlan


def _original_tag(binding: SwitchBinding, source: PortBinding) -> tuple:
    """Actions that put the source port group's VLAN tag back on a copy (the
    copy is the port's untagged view): VST only, since a VGT guest's own tag
    is in the frame already and an EST port's frames have none."""
    vlan = _vlan_of(binding, source)
    if not 1 <= vlan <= 4094:
        return ()
    return (("push_vlan", 0x8100), ("set_field", "vlan_vid", vlan | OFPVID_PRESENT))


def _rspan_uplinks(binding: SwitchBinding, lab: Lab, session: MirrorSession) -> list[int]:
    """OpenFlow ports of the vmnics this host maps the session's destination
    dvUplinks to (a dvUplink with no vmnic here sends nothing)."""
    host = next(h for h in lab.esxi_hosts if h.name == binding.host)
    membership = next(m for m in host.distributed_switches if m.name == binding.switch.name)
    ofport = {p.name: p.ofport for p in binding.ports if p.kind == "uplink"}
    vmnics = (membership.uplinks.get(u) for u in session.destination_uplinks)
    return [ofport[v] for v in vmnics if v in ofport]


def _copy_tail(
    session: MirrorSession,
    sid: int,
    binding: SwitchBinding,
    lab: Lab,
    source: PortBinding,
    direction: str,
) -> tuple:
    """What one copy of ``source``'s frames (``direction``: ingress = what
    it sends, egress = what it receives) does once it looks like the port's
    view of the frame: the session's outputs (empty: nowhere here)."""
    if session.type == "erspan":
        port = binding.mirror_port(session.encapsulation, direction)
        if port is None:
            return ()
        # ERSPAN's header has the original VLAN, which OVS leaves 0: the tag
        # rides inside to the uplink, whose tc program moves it into the
        # header (vlab.operations.erspan_vlan). GRE has no such field.
        tag = _original_tag(binding, source) if session.encapsulation != "gre" else ()
        return (
            *tag,
            ("set_field", "tun_ipv4_dst", str(session.destination_ip)),
            ("set_field", "tunnel_id", sid),
            # The tag leaves the frame before it reaches the monitor: cut 4
            # bytes later, so the copy is still the mirrored packet length.
            _output(port.ofport, session, extra=4 if tag else 0),
        )
    if session.type == "rspan":
        uplinks = _rspan_uplinks(binding, lab, session)
        if not uplinks:
            return ()
        tags = _original_tag(binding, source) if session.preserve_original_vlan else ()
        rspan_vid = session.encapsulation_vlan | OFPVID_PRESENT
        tags += (("push_vlan", 0x8100), ("set_field", "vlan_vid", rspan_vid))
        # A copy of a frame that came in by the destination uplink goes back
        # out of it: OpenFlow never outputs to a packet's in_port, so the
        # copy forgets it (OVS's idiom; 0 is no port).
        return (("set_field", "in_port", 0), *tags, *(_output(u, session) for u in uplinks))
    ofport_of = {p.name: p.ofport for p in binding.ports if p.kind == "vnic"}
    return tuple(
        _output(ofport_of[name], session)
        for name in (naming.vnic_port(d.vm, d.vnic) for d in session.destination_vnics)
        if name in ofport_of
    )


def _sessions(binding: SwitchBinding, lab: Lab):
    """(session, session ID) of the enabled sessions of this bridge's
    distributed switch."""
    if binding.switch.kind != "distributed":
        return []
    dvs = next((d for d in lab.distributed_switches if d.name == binding.switch.name), None)
    if dvs is None:
        return []
    return [(m, mirror_session_id(dvs, i)) for i, m in enumerate(dvs.mirrors) if m.enabled]


def _source_port(binding: SwitchBinding, src: MirrorPort) -> Optional[PortBinding]:
    """The port of a session's source on this bridge: a vNIC (None when its
    VM runs on another host now) or a VMkernel adapter of this host."""
    if src.vmk is not None:
        if src.host != binding.host:
            return None
        return next((p for p in binding.ports if p.kind == "vmk" and p.name == src.vmk), None)
    name = naming.vnic_port(src.vm, src.vnic)
    return next((p for p in binding.ports if p.kind == "vnic" and p.name == name), None)


def plan(binding: SwitchBinding, lab: Lab):
    """What this bridge mirrors: ``(sent, received, receive_only)``, where
    ``sent`` and ``received`` map a source port's OpenFlow number (a vNIC or
    a VMkernel adapter) to the copy tails of its sessions, and
    ``receive_only`` are the ports of destination vNICs whose session
    disallows normal traffic."""
    ofport_of = {p.name: p.ofport for p in binding.ports if p.kind == "vnic"}
    sent: dict[int, list[tuple]] = {}
    received: dict[int, list[tuple]] = {}
    receive_only: set[int] = set()
    for session, sid in _sessions(binding, lab):
        if session.type == "local" and session.normal_traffic == "disallowed":
            receive_only |= {
                ofport_of[n]
                for n in (naming.vnic_port(d.vm, d.vnic) for d in session.destination_vnics)
                if n in ofport_of
            }
        for src in session.sources:
            port = _source_port(binding, src)
            if port is None:
                continue
            for direction, copies in (("ingress", sent), ("egress", received)):
                if src.direction not in (direction, "both"):
                    continue
                tail = _copy_tail(session, sid, binding, lab, port, direction)
                if tail:
                    copies.setdefault(port.ofport, []).append(tail)
    return sent, received, frozenset(receive_only)


def _with_received_copies(actions: tuple, received: dict[int, list[tuple]]) -> tuple:
    barrier = next((i for i, a in enumerate(actions) if a[0] in _BARRIERS), len(actions))
    inserts: dict[int, list[tuple]] = {}
    for i, a in enumerate(actions):
        if a[0] != "output" or a[1] not in received:
            continue
        at = min(i, barrier)
        # The VLAN changes between the copy's place and the real output, so
        # the copy is the frame as delivered.
        fix = tuple(x for x in actions[at:i] if _vlan_action(x))
        inserts.setdefault(at, []).extend(("clone", fix + tail) for tail in received[a[1]])
    if not inserts:
        return actions
    out: list[tuple] = []
    for i, a in enumerate(actions):
        out += inserts.get(i, [])
        out.append(a)
    return tuple(out)


def add_copies(flows: list[FlowSpec], binding: SwitchBinding, lab: Lab) -> list[FlowSpec]:
    """``flows`` of one bridge with the mirror sessions applied; the same list
    when nothing on this bridge is mirrored."""
    sent, received, receive_only = plan(binding, lab)
    if not (sent or received or receive_only):
        return flows
    out = []
    for f in flows:
        actions = tuple(a for a in f.actions if not (a[0] == "output" and a[1] in receive_only))
        actions = _with_received_copies(actions, received)
        port = dict(f.match).get("in_port")
        # What the port sends and the vSwitch refuses (no actions, no goto)
        # is not mirrored, as before it had a flow of its own.
        if f.table == Table.INGRESS and port in sent and (f.actions or f.goto is not None):
            actions = tuple(("clone", tail) for tail in sent[port]) + actions
        out.append(
            f if actions == f.actions else FlowSpec(f.table, f.priority, f.match, actions, f.goto, f.cookie)
        )
    out += [
        FlowSpec.make(Table.INGRESS, Priority.MIRROR_DESTINATION_ONLY, {"in_port": port}, cookie=COOKIE)
        for port in sorted(receive_only)
    ]
    return out

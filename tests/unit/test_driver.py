"""The os-ken driver (controller/app.py) against fake switches that apply its
real flow-mods: what a switch holds after a connect, a reconnect over a
previous controller's flows, an uplink failure, a vMotion and a guest's MAC
change is exactly what the compilers say, with no moment where a flow that
stays is missing; barriers gate the synced marker and applied.json; RARPs
go out of the right uplink. Rootless: no OVS, no sockets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller import failover, ofdriver, vmotion
from controller.app import VSwitchController
from controller.pipeline import Concern, FlowSpec, Table, cookie
from tests.unit.fakeswitch import Event, FakeDatapath, Msg, PortDesc
from vlab import control, naming
from vlab.bindings import GuestNic
from vlab.lab.load import load_lab

LABS = Path(__file__).resolve().parents[2] / "labs"


@pytest.fixture
def ctl(tmp_path):
    c = VSwitchController.__new__(VSwitchController)  # no os-ken app manager
    c.configure(load_lab(LABS / "two-hosts.yaml"), tmp_path)
    return c


def connect(ctl, dpid, flows=None) -> FakeDatapath:
    dp = FakeDatapath(dpid, flows=dict(flows or {}))
    ctl.on_switch_features(Event(Msg(dp)))
    return dp


def answer_barriers(ctl, dp) -> None:
    while dp.barriers:
        ctl.on_barrier(Event(Msg(dp, xid=dp.barriers.pop(0))))


def holds_compiled(ctl, dp) -> bool:
    return dp.table() == dp.expected(ctl.state.flows(dp.id))


def test_a_connecting_switch_gets_exactly_the_compiled_flows_and_synced_after_the_barrier(ctl):
    dpid = ctl.state.dpids[0]
    dp = connect(ctl, dpid)
    assert holds_compiled(ctl, dp) and dp.epochs() == {ctl.epoch[dpid]}
    marker = naming.synced_marker(ctl.run_dir, dpid)
    assert not marker.exists()  # flows sent, not yet acknowledged
    answer_barriers(ctl, dp)
    assert json.loads(marker.read_text())["flows"] == len(ctl.state.flows(dpid))
    applied = control.read_json(ctl.run_dir / control.APPLIED)
    assert applied["connected"] == [f"{dpid:016x}"]


def test_reconnect_replaces_a_previous_controllers_flows_and_leaves_foreign_ones(ctl):
    dpid = ctl.state.dpids[0]
    first = connect(ctl, dpid)
    answer_barriers(ctl, first)
    old_epoch = ctl.epoch[dpid]
    # The switch keeps the old flows, plus a stale one of ours that the new
    # compile will not produce, plus one that is not ours (cookie 0).
    stale = FlowSpec.make(
        Table.FORWARD, 300, {"in_port": 1, "eth_dst": "00:50:56:99:99:99"}, cookie=cookie(Concern.VSWITCH)
    )
    foreign = FlowSpec.make(Table.FORWARD, 7, {"in_port": 9})
    dp = FakeDatapath(dpid, flows=dict(first.flows))
    dp.send_msg(ofdriver.flow_mod(dp, stale, old_epoch))
    dp.send_msg(ofdriver.flow_mod(dp, foreign))
    fresh = VSwitchController.__new__(VSwitchController)
    fresh.configure(ctl.lab, ctl.run_dir)
    fresh.on_switch_features(Event(Msg(dp)))
    expected = dp.expected(fresh.state.flows(dpid))
    foreign_key = next(k for k in dp.table() if k[1] == 7)
    assert {k: v for k, v in dp.table().items() if k != foreign_key} == expected
    assert foreign_key in dp.table()
    # What is ours carries the new epoch only (the foreign flow has cookie 0).
    assert dp.epochs() == {fresh.epoch[dpid], 0}
    # Every flow that stays was re-added before any delete was sent.
    kinds = [m.command for m in dp.sent if hasattr(m, "command")]
    deletes = [i for i, k in enumerate(kinds) if k == dp.ofproto.OFPFC_DELETE]
    adds = [i for i, k in enumerate(kinds) if k == dp.ofproto.OFPFC_ADD]
    assert deletes and max(adds) < min(deletes)


def test_an_uplink_failure_installs_the_difference_adds_first(ctl):
    dpid = ctl.state.dpids[0]
    dp = connect(ctl, dpid)
    answer_barriers(ctl, dp)
    binding = ctl.state.binding(dpid)
    uplink = ctl.state.pinning()[dpid][next(p.name for p in binding.local_ports())]
    before = dict(dp.table())
    sent = len(dp.sent)
    ofp = dp.ofproto
    port_no = binding.port(uplink).ofport
    ctl.on_port_status(
        Event(Msg(dp, reason=ofp.OFPPR_MODIFY, desc=PortDesc(uplink, port_no, ofp.OFPPS_LINK_DOWN)))
    )
    assert holds_compiled(ctl, dp) and dp.table() != before
    assert ctl.state.down[dpid] == frozenset({uplink})
    new = dp.sent[sent:]
    commands = [m.command for m in new if hasattr(m, "command")]
    assert ofp.OFPFC_DELETE not in commands  # a diff, not a resync
    if ofp.OFPFC_DELETE_STRICT in commands:
        assert commands.index(ofp.OFPFC_DELETE_STRICT) > max(
            i for i, c in enumerate(commands) if c == ofp.OFPFC_ADD
        )
    # The port group notifies switches: a RARP for each moved port, out of
    # its new uplink.
    rarps = [m for m in dp.packet_outs]
    assert rarps and all(m.actions[0].port != port_no for m in rarps)
    # The same status again changes nothing.
    sent = len(dp.sent)
    ctl.on_port_status(
        Event(Msg(dp, reason=ofp.OFPPR_MODIFY, desc=PortDesc(uplink, port_no, ofp.OFPPS_LINK_DOWN)))
    )
    assert len(dp.sent) == sent


def test_uplinks_already_down_at_connect_are_taken_from_the_port_descriptions(ctl):
    dpid = ctl.state.dpids[0]
    dp = connect(ctl, dpid)
    uplink = ctl.state.binding(dpid).uplink_ports()[0]
    ofp = dp.ofproto
    ctl.on_port_descriptions(Event(Msg(dp, body=[PortDesc(uplink.name, uplink.ofport, ofp.OFPPS_LINK_DOWN)])))
    assert uplink.name in ctl.state.down[dpid] and holds_compiled(ctl, dp)


def _synced_with_a_vm_to_move(ctl):
    """Every bridge connected and synced, and the first VM's port: (the
    datapaths, the port, its bridge, another host, its OpenFlow number)."""
    dps = {d: connect(ctl, d) for d in ctl.state.dpids}
    for dp in dps.values():
        answer_barriers(ctl, dp)
    vm = ctl.lab.vms[0]
    port = naming.vnic_port(vm.name, vm.vnics[0].name)
    src = next(d for d in dps if any(p.name == port for p in ctl.state.binding(d).ports))
    other = next(h.name for h in ctl.lab.esxi_hosts if h.name != vm.host)
    return dps, port, src, other, ctl.state.binding(src).port(port).ofport


def test_a_vmotion_leaves_both_hosts_with_their_compiled_flows_and_rarps_on_arrival(ctl, monkeypatch):
    monkeypatch.setattr(vmotion, "RARP_REPEATS_S", ())
    dps, port, src, other, ofport = _synced_with_a_vm_to_move(ctl)
    desired = {
        "generation": 1,
        "placement": {port: {"host": other, "ofport": ofport}},
        "moves": {port: {"seq": "1", "igmp_query": False}},
    }
    ctl._apply(ctl._take_desired(desired))  # what the watch loop does with desired.json
    dest = next(d for d in dps if any(p.name == port for p in ctl.state.binding(d).ports))
    assert ctl.state.host_of(dest) == other
    for d, dp in dps.items():
        assert holds_compiled(ctl, dp), ctl.state.host_of(d)
    assert any(k[2] and ("in_port", ofport) in k[2] for k in dps[dest].table())
    assert not any(("in_port", ofport) in k[2] for k in dps[src].table())
    ofp = dps[dest].ofproto
    ctl.on_port_status(Event(Msg(dps[dest], reason=ofp.OFPPR_ADD, desc=PortDesc(port, ofport, 0))))
    assert len(dps[dest].packet_outs) == 1
    events = [e["event"] for e in control.read_events(ctl.run_dir)]
    assert "vmotion_port_up" in events and "rarp" in events


def test_a_rarp_repeat_is_not_sent_for_a_vnic_that_moved_again(ctl, monkeypatch):
    """A vMotion's RARP is repeated later; if the VM has moved back in the
    meantime, the repeat would teach the physical switch the host it left."""
    monkeypatch.setattr(vmotion, "RARP_REPEATS_S", ())
    dps, port, src, other, ofport = _synced_with_a_vm_to_move(ctl)
    there = {port: {"host": other, "ofport": ofport}}
    ctl._apply(ctl._take_desired({"generation": 1, "placement": there, "moves": {port: {"seq": "1"}}}))
    dest = next(d for d in dps if any(p.name == port for p in ctl.state.binding(d).ports))
    ofp = dps[dest].ofproto
    ctl.on_port_status(Event(Msg(dps[dest], reason=ofp.OFPPR_ADD, desc=PortDesc(port, ofport, 0))))
    sent = list(dps[dest].packet_outs)
    assert len(sent) == 1
    notes = failover.still_true(ctl.state, [failover.notification(ctl.state.binding(dest), port, "vmotion")])
    assert len(notes) == 1  # still true while it runs there
    ctl._apply(ctl._take_desired({"generation": 2, "placement": {}, "moves": {port: {"seq": "1"}}}))  # back
    ctl._repeat_notifications(notes)
    assert dps[dest].packet_outs == sent  # no repeat from the host it left


def test_a_guest_mac_change_is_compiled_and_installed(ctl):
    dps = {d: connect(ctl, d) for d in ctl.state.dpids}
    vm = ctl.lab.vms[0]
    port = naming.vnic_port(vm.name, vm.vnics[0].name)
    before = {d: dict(dp.table()) for d, dp in dps.items()}
    assert ctl.state.set_guests({port: GuestNic(effective_mac="00:50:56:01:77:77")})
    ctl._apply(set(dps))
    assert all(holds_compiled(ctl, dp) for dp in dps.values())
    assert any(dp.table() != before[d] for d, dp in dps.items())


def _has(ctl, dpid, port) -> bool:
    return any(p.name == port for p in ctl.state.binding(dpid).ports)


def _move(ctl, dps, port, host, seq, **options):
    """What LabControl.vmotion asks of the controller, then the port coming
    up on the destination; returns the destination's fake switch."""
    ofport = next(ctl.state.binding(d).port(port).ofport for d in dps if _has(ctl, d, port))
    desired = {
        "generation": int(seq),
        "placement": {port: {"host": host, "ofport": ofport}},
        "moves": {port: {"seq": seq, **options}},
    }
    ctl._apply(ctl._take_desired(desired))
    dp = dps[next(d for d in dps if ctl.state.host_of(d) == host and _has(ctl, d, port))]
    up = Event(Msg(dp, reason=dp.ofproto.OFPPR_ADD, desc=PortDesc(port, ofport, 0)))
    ctl.on_port_status(up)
    return dp, ofport, up


def _rarp_of(frame):
    """The RARP's source MAC if ``frame`` is one (tagged or not), else None."""
    from scapy.layers.l2 import Dot1Q

    kind = frame[Dot1Q].type if frame.haslayer(Dot1Q) else frame.type
    return frame.src if kind == 0x8035 else None


def test_a_moved_vm_in_a_multicast_group_gets_a_rarp_and_an_igmp_query_once_per_move(ctl, monkeypatch):
    from scapy.contrib.igmp import IGMP
    from scapy.layers.l2 import Ether

    from controller.vswitch import pinning

    monkeypatch.setattr(vmotion, "RARP_REPEATS_S", ())
    dps = {d: connect(ctl, d) for d in ctl.state.dpids}
    vm = ctl.lab.vms[0]
    port, mac = naming.vnic_port(vm.name, vm.vnics[0].name), vm.vnics[0].mac
    groups = frozenset({"01:00:5e:00:00:01", "01:00:5e:02:02:02"})  # all-hosts and one joined group
    ctl.state.set_guests({port: GuestNic(effective_mac=mac, mcast=groups)})
    other = next(h.name for h in ctl.lab.esxi_hosts if h.name != vm.host)

    dp, ofport, up = _move(ctl, dps, port, other, "1", igmp_query=True, max_response_s=2.0)
    sent = [(Ether(m.data), m.actions[0].port) for m in dp.packet_outs]
    b = ctl.state.binding(dp.id)
    assert [(_rarp_of(f), out) for f, out in sent if _rarp_of(f)] == [(mac, b.port(pinning(b)[port]).ofport)]
    queries = [(f[IGMP].mrcode, out) for f, out in sent if f.haslayer(IGMP)]
    assert queries == [(20, ofport)]  # into the guest's own port; max response 2.0 s in 1/10 s

    ctl.on_port_status(up)  # the same port flapping is not a new move
    assert len(dp.packet_outs) == 2

    back, _, _ = _move(ctl, dps, port, vm.host, "2", igmp_query=False)
    sent = [Ether(m.data) for m in back.packet_outs]
    assert [_rarp_of(f) for f in sent] == [mac]  # a new move: its RARP, and no query (not asked for)


def test_a_restarted_controller_keeps_beacon_verdicts_failback_teams_and_load_moves(tmp_path):
    from controller import failover
    from controller.loadbalance import Move
    from controller.vswitch import pinning

    def controller(lab):
        c = VSwitchController.__new__(VSwitchController)
        c.configure(load_lab(LABS / lab), tmp_path / lab)
        return c

    # Beacon probing failed vmnic0 of esx1's vSwitch0; then a restart.
    first = controller("beacon-probing.yaml")
    dpid = next(d for d in first.state.dpids if first.state.binding(d).bridge == "vSwitch0")
    failover.beacon_changed(first.state, dpid, frozenset({"vmnic0"}), False)
    first._write_applied()
    before = pinning(first.state.binding(dpid))
    again = controller("beacon-probing.yaml")
    assert again.state.binding(dpid).beacon_failed == {"vmnic0"}
    assert pinning(again.state.binding(dpid)) == before
    # Its first beacon rounds do not give vmnic0 three fresh intervals: it
    # stays failed until it is heard again.
    b = again.state.binding(dpid)
    live = [u for u in beacon_uplinks(b) if u not in b.uplinks_down]
    assert again.monitors[dpid].verdict(live, 0.0) == (frozenset({"vmnic0"}), False)

    # Load-based teaming moved busy1; a failover without failback changed a team.
    first = controller("load-based-teaming.yaml")
    dvs1 = next(d for d in first.state.dpids if first.state.binding(d).bridge == "dvs1")
    failover.load_moved(first.state, dvs1, [Move("busy1-eth0", "vmnic0", "vmnic1", 1.0, 0.0)])
    first._write_applied()
    again = controller("load-based-teaming.yaml")
    assert pinning(again.state.binding(dvs1)) == {"busy1-eth0": "vmnic1", "busy2-eth0": "vmnic0"}
    assert again.state.teaming_to_json() == first.state.teaming_to_json()

    # Failback no: after vmnic0 failed and came back, the standby keeps the port.
    first = controller("teaming.yaml")
    vs0 = next(d for d in first.state.dpids if first.state.binding(d).bridge == "vSwitch0")
    failover.link_changed(first.state, vs0, "vmnic0", up=False)
    failover.link_changed(first.state, vs0, "vmnic0", up=True)
    first._write_applied()
    kept = pinning(first.state.binding(vs0))
    assert "vmnic1" in kept.values()
    assert pinning(controller("teaming.yaml").state.binding(vs0)) == kept


def beacon_uplinks(b):
    from controller.beacon import beaconing

    return list(beaconing(b))

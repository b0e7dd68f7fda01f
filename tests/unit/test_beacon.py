"""Beacon probing without a switch: the frames, the monitor's verdicts, and
what a verdict does to forwarding (labs/beacon-probing.yaml, no root)."""

from pathlib import Path

from controller.beacon import (
    BEACON_INTERVAL_S,
    MISSED_BEACONS,
    Beacon,
    BeaconMonitor,
    beacon_frame,
    beaconing,
    parse_beacon,
    uplink_mac,
)
from controller.simulate import Frame, forward
from controller.vswitch import compile_vswitch, pinning
from vlab.bindings import switch_bindings
from vlab.lab.load import load_lab

LAB = load_lab(Path(__file__).resolve().parents[2] / "labs" / "beacon-probing.yaml")
LIMIT = MISSED_BEACONS * BEACON_INTERVAL_S


def vswitch(name):
    return next(b for b in switch_bindings(LAB) if b.bridge == name)


def test_a_beacon_names_its_sender_tagged_or_not():
    for vlan in (0, 10):
        frame = beacon_frame("esx1", "vSwitch0", "vmnic2", vlan, 7)
        assert frame[:6] == b"\xff" * 6 and len(frame) >= 64
        assert parse_beacon(frame) == Beacon("esx1", "vSwitch0", "vmnic2")
    assert parse_beacon(b"\xff" * 12 + b"\x08\x00" + b"\0" * 50) is None


def test_every_active_and_standby_uplink_of_a_beacon_team_beacons_in_its_vlans():
    assert beaconing(vswitch("vSwitch0")) == {"vmnic0": (10,), "vmnic1": (10,), "vmnic2": (10,)}
    assert beaconing(vswitch("vSwitch1")) == {"vmnic3": (20,), "vmnic4": (20,)}


def test_an_uplink_that_hears_nobody_for_three_intervals_is_failed():
    m = BeaconMonitor("esx1", "vSwitch0")
    up = ["vmnic0", "vmnic1", "vmnic2"]
    assert m.verdict(up, 0.0) == (frozenset(), False)
    t = 0.0
    while t <= LIMIT + 1:
        t += BEACON_INTERVAL_S
        # vmnic1 and vmnic2 hear each other; nobody's beacons reach vmnic0.
        m.heard("vmnic1", Beacon("esx1", "vSwitch0", "vmnic2"), t)
        m.heard("vmnic2", Beacon("esx1", "vSwitch0", "vmnic1"), t)
        failed, shotgun = m.verdict(up, t)
        assert failed == (frozenset({"vmnic0"}) if t > LIMIT else frozenset()) and not shotgun, t
    # Heard again: restored at once.
    m.heard("vmnic0", Beacon("esx1", "vSwitch0", "vmnic1"), t)
    assert m.verdict(up, t) == (frozenset(), False)


def test_beacons_of_another_vswitch_or_its_own_teach_nothing():
    m = BeaconMonitor("esx1", "vSwitch0")
    assert not m.heard("vmnic0", Beacon("esx2", "vSwitch0", "vmnic1"), 1.0)
    assert not m.heard("vmnic0", Beacon("esx1", "vSwitch1", "vmnic3"), 1.0)
    assert not m.heard("vmnic0", Beacon("esx1", "vSwitch0", "vmnic0"), 1.0)


def test_shotgun_is_no_recovery_and_leaving_it_announces_the_beacon_ports():
    from controller.failover import beacon_changed
    from controller.state import ControllerState

    state = ControllerState(LAB)
    dpid = vswitch("vSwitch0").dpid
    beacon_changed(state, dpid, frozenset({"vmnic0"}), False)
    moved = state.binding(dpid)
    # Everyone silent now: shotgun, and vmnic0 (never heard again) is not "recovered".
    beacon_changed(state, dpid, frozenset(), True)
    assert state.binding(dpid).teaming("PG-Beacon") == moved.teaming("PG-Beacon")
    notes = beacon_changed(state, dpid, frozenset(), False)
    assert {n.port for n in notes} == {"b0-eth0", "b1-eth0", "b2-eth0"}, notes


def test_when_nobody_hears_anybody_nothing_is_blamed_and_the_vswitch_sends_on_all():
    m = BeaconMonitor("esx1", "vSwitch1")
    up = ["vmnic3", "vmnic4"]
    m.verdict(up, 0.0)
    assert m.verdict(up, LIMIT + 0.5) == (frozenset(), True)
    # A lone uplink has nobody to hear: never failed by beacons.
    assert BeaconMonitor("esx1", "vSwitch1").verdict(["vmnic3"], 100.0) == (frozenset(), False)


def test_a_beacon_failure_moves_only_beacon_port_groups_and_shotgun_sends_on_both():
    from dataclasses import replace

    b = vswitch("vSwitch0")
    failed = replace(b, beacon_failed=frozenset({"vmnic0"}))
    before, after = pinning(b), pinning(failed)
    for vm in ("b0", "b1", "b2"):
        assert after[f"{vm}-eth0"] != "vmnic0"
    for vm in ("l0", "l1", "l2"):
        assert after[f"{vm}-eth0"] == before[f"{vm}-eth0"]  # link status sees nothing
    two = replace(vswitch("vSwitch1"), shotgun=True)
    s0 = next(p for p in two.ports if p.owner == "s0")
    out = forward(compile_vswitch(two), Frame(in_port=s0.ofport, eth_dst="00:50:56:99:99:99", eth_src=s0.mac))
    names = {p.ofport: p.name for p in two.ports}
    assert {names[n] for n, _ in out} == {"vmnic3", "vmnic4"}
    # Its own beacons reaching an uplink go to the controller; any other
    # beacon there (another host's, a forged one) is dropped; none reaches a VM.
    up = two.port("vmnic3").ofport

    def beacon_from(host):
        src = uplink_mac(host, "vmnic4")
        return Frame(in_port=up, eth_dst="ff:ff:ff:ff:ff:ff", eth_src=src, eth_type=0x8922, vlan=20)

    assert [n for n, _ in forward(compile_vswitch(two), beacon_from("esx1"))] == ["controller"]
    assert forward(compile_vswitch(two), beacon_from("esx2")) == []

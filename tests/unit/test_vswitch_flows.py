"""Base vSwitch flows: where does a frame go? (no root, no switch)"""

import copy

import pytest

from controller.simulate import Frame, forward
from controller.teaming import pinned_uplink
from controller.vswitch import compile_vswitch
from vlab.bindings import switch_bindings
from vlab.lab.load import parse_lab

BCAST = "ff:ff:ff:ff:ff:ff"
REMOTE = "00:50:56:99:99:99"

LAB = {
    "name": "unit",
    "physical_switches": [{"name": "psw"}],
    "esxi_hosts": [
        {
            "name": "esx1",
            "uplinks": [
                {"name": f"vmnic{i}", "speed": 1 if i < 2 else 10, "switch": "psw", "port": i + 1}
                for i in range(4)
            ],
            "vswitches": [
                {
                    "name": "vSwitch0",
                    "uplinks": ["vmnic0", "vmnic1", "vmnic2", "vmnic3"],
                    "port_groups": [
                        {"name": "A", "vlan": 10, "teaming": {"active": ["vmnic0", "vmnic1"]}},
                        {"name": "B", "vlan": 20, "teaming": {"active": ["vmnic2"], "standby": ["vmnic3"]}},
                        {"name": "EST", "vlan": 0, "teaming": {"active": ["vmnic0"]}},
                        {"name": "TRUNK", "vlan": 4095, "teaming": {"active": ["vmnic2"]}},
                    ],
                }
            ],
            "vmkernel": [{"name": "vmk0", "port_group": "A", "ip": "192.168.0.1/24"}],
        }
    ],
    "vms": [
        {"name": "a1", "host": "esx1", "vnics": [{"port_group": "A", "mac": "00:50:56:00:00:01"}]},
        {"name": "a2", "host": "esx1", "vnics": [{"port_group": "A", "mac": "00:50:56:00:00:02"}]},
        {"name": "b1", "host": "esx1", "vnics": [{"port_group": "B", "mac": "00:50:56:00:00:03"}]},
        {"name": "e1", "host": "esx1", "vnics": [{"port_group": "EST", "mac": "00:50:56:00:00:04"}]},
        {"name": "t1", "host": "esx1", "vnics": [{"port_group": "TRUNK", "mac": "00:50:56:00:00:05"}]},
    ],
}


def binding(lab=LAB, down=()):
    b = switch_bindings(parse_lab(copy.deepcopy(lab)))[0]
    for u in down:
        b = b.with_uplink_state(u, up=False)
    return b


@pytest.fixture
def sw():
    b = binding()
    return b, compile_vswitch(b)


def port(b, owner):
    return next(p for p in b.ports if p.owner == owner and p.kind == "vnic")


def pin(b, owner):
    p = port(b, owner)
    name = pinned_uplink(p, b.switch.port_group(p.port_group).teaming, b.uplinks_down)
    return b.port(name).ofport


def test_known_unicast_goes_only_to_owner_untagged(sw):
    b, flows = sw
    out = forward(flows, Frame(port(b, "a1").ofport, port(b, "a2").mac))
    assert out == [(port(b, "a2").ofport, None)]


def test_unknown_unicast_goes_to_pinned_uplink_only_tagged(sw):
    b, flows = sw
    out = forward(flows, Frame(port(b, "a1").ofport, REMOTE))
    assert out == [(pin(b, "a1"), 10)]


def test_no_cross_vlan_delivery(sw):
    b, flows = sw
    # a1 (VLAN 10) addressing b1's MAC (VLAN 20): not local, so uplink only.
    out = forward(flows, Frame(port(b, "a1").ofport, port(b, "b1").mac))
    assert out == [(pin(b, "a1"), 10)]


def test_broadcast_floods_vlan_and_one_uplink(sw):
    b, flows = sw
    out = forward(flows, Frame(port(b, "a1").ofport, BCAST))
    vmk = b.port("vmk0").ofport
    trunk = port(b, "t1").ofport
    assert out == sorted([(pin(b, "a1"), 10), (port(b, "a2").ofport, None), (vmk, None), (trunk, 10)])


def test_uplink_unicast_delivered_only_from_pinned_uplink(sw):
    b, flows = sw
    a2 = port(b, "a2")
    for up in b.uplink_ports():
        out = forward(flows, Frame(up.ofport, a2.mac, vlan=10))
        expected = [(a2.ofport, None)] if up.ofport == pin(b, "a2") else []
        assert out == expected, up.name


def test_uplink_broadcast_reaches_ports_pinned_to_it_never_other_uplinks(sw):
    b, flows = sw
    uplinks = {u.ofport for u in b.uplink_ports()}
    for up in b.uplink_ports():
        out = forward(flows, Frame(up.ofport, BCAST, vlan=10))
        assert not uplinks & {p for p, _ in out}
        pinned = sorted(
            p.ofport
            for p in b.local_ports()
            if p.port_group in ("A", "TRUNK") and pin_port(b, p) == up.ofport
        )
        assert [p for p, _ in out] == pinned, up.name


def pin_port(b, p):
    name = pinned_uplink(p, b.switch.port_group(p.port_group).teaming, b.uplinks_down)
    return b.port(name).ofport


def test_unknown_unicast_from_uplink_dropped(sw):
    b, flows = sw
    for up in b.uplink_ports():
        assert forward(flows, Frame(up.ofport, REMOTE, vlan=10)) == []


def test_frame_for_vlan_not_on_host_dropped(sw):
    b, flows = sw
    assert forward(flows, Frame(b.port("vmnic0").ofport, BCAST, vlan=99)) == []


def test_guest_tagged_frame_on_vst_port_dropped(sw):
    b, flows = sw
    assert forward(flows, Frame(port(b, "a1").ofport, REMOTE, vlan=20)) == []


def test_est_port_group_is_untagged_on_uplink(sw):
    b, flows = sw
    out = forward(flows, Frame(port(b, "e1").ofport, REMOTE))
    assert out == [(b.port("vmnic0").ofport, None)]
    assert forward(flows, Frame(b.port("vmnic0").ofport, port(b, "e1").mac)) == [(port(b, "e1").ofport, None)]


def test_vgt_guest_keeps_its_tags(sw):
    b, flows = sw
    t1 = port(b, "t1")
    assert forward(flows, Frame(t1.ofport, REMOTE, vlan=300)) == [(b.port("vmnic2").ofport, 300)]
    # a frame tagged 10 from the trunk guest reaches VLAN 10 guests untagged
    out = forward(flows, Frame(t1.ofport, port(b, "a1").mac, vlan=10))
    assert out == [(port(b, "a1").ofport, None)]
    # and the trunk guest receives VLAN 10 broadcast with the tag
    out = forward(flows, Frame(port(b, "a1").ofport, BCAST))
    assert (t1.ofport, 10) in out


def test_unused_uplinks_never_carry_a_port_group(sw):
    b, flows = sw
    unused = {b.port("vmnic2").ofport, b.port("vmnic3").ofport}
    for owner in ("a1", "a2"):
        out = forward(flows, Frame(port(b, owner).ofport, BCAST))
        assert not unused & {p for p, _ in out}


def test_port_id_teaming_spreads_ports_over_active_uplinks(sw):
    b, _ = sw
    assert {pin(b, "a1"), pin(b, "a2")} == {b.port("vmnic0").ofport, b.port("vmnic1").ofport}


def test_standby_takes_over_only_when_active_is_down():
    b = binding()
    assert pin(b, "b1") == b.port("vmnic2").ofport
    b = binding(down=["vmnic2"])
    flows = compile_vswitch(b)
    assert forward(flows, Frame(port(b, "b1").ofport, REMOTE)) == [(b.port("vmnic3").ofport, 20)]


def test_no_healthy_uplink_means_local_only():
    b = binding(down=["vmnic2", "vmnic3"])
    flows = compile_vswitch(b)
    assert forward(flows, Frame(port(b, "b1").ofport, REMOTE)) == []


def test_flows_are_deterministic():
    assert compile_vswitch(binding()) == compile_vswitch(binding())


def test_mdb_show_parses_in_both_ovs_formats():
    """OVS 3.1 (Debian 12) and 3.5 (Debian 13, which adds a protocol column)."""
    from vlab.ovs import parse_mdb

    old = " port  VLAN  GROUP                Age\n    2    10  239.2.2.2              3\n"
    new = " port  VLAN  protocol  GROUP                Age\n    2    10  IGMPv2    239.2.2.2              3\n"
    want = [{"port": "2", "vlan": 10, "group": "239.2.2.2", "age": 3}]
    assert parse_mdb(old) == want and parse_mdb(new) == want

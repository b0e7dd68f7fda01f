"""vCenter's view as events arrive: failover, failback, vMotion, and the
frames sent on a guest's behalf (no switch, no root)."""

import copy

from scapy.contrib.igmp import IGMP
from scapy.layers.inet import IP
from scapy.layers.l2 import Dot1Q, Ether

from controller import notify, vmotion
from controller.failover import link_changed
from controller.state import ControllerState
from vlab.bindings import GuestNic, Placement
from vlab.lab.load import parse_lab

LAB = {
    "name": "state",
    "physical_switches": [{"name": "psw"}],
    "esxi_hosts": [
        {
            "name": f"esx{h}",
            "uplinks": [
                {"name": f"vmnic{i}", "speed": 1, "switch": "psw", "port": 10 * h + i} for i in range(2)
            ],
            "vswitches": [
                {
                    "name": "vSwitch0",
                    "uplinks": ["vmnic0", "vmnic1"],
                    "port_groups": [
                        {"name": "LOUD", "vlan": 10, "teaming": {"notify_switches": True}},
                        {"name": "QUIET", "vlan": 10, "teaming": {"notify_switches": False}},
                        {
                            "name": "ORDER",
                            "vlan": 20,
                            "teaming": {
                                "policy": "explicit_failover",
                                "active": ["vmnic0"],
                                "standby": ["vmnic1"],
                                "failback": False,
                            },
                        },
                    ],
                }
            ],
        }
        for h in (1, 2)
    ],
    "vms": [
        {"name": "loud", "host": "esx1", "vnics": [{"port_group": "LOUD", "mac": "00:50:56:00:00:01"}]},
        {"name": "quiet", "host": "esx1", "vnics": [{"port_group": "QUIET", "mac": "00:50:56:00:00:03"}]},
        {"name": "order", "host": "esx1", "vnics": [{"port_group": "ORDER", "mac": "00:50:56:00:00:05"}]},
    ],
}


def state():
    s = ControllerState(parse_lab(copy.deepcopy(LAB)))
    return s, s.dpids[0]


def test_failover_notifies_only_moved_ports_of_notifying_port_groups():
    s, esx1 = state()
    pins = s.pinning()[esx1]
    loud_uplink = pins["loud-eth0"]
    notes = link_changed(s, esx1, loud_uplink, up=False)
    assert {n.port for n in notes} <= {"loud-eth0", "order-eth0"}
    loud = next(n for n in notes if n.port == "loud-eth0")
    assert loud.reason == "failover" and loud.uplink != loud_uplink and loud.vlan == 10
    assert all(n.port != "quiet-eth0" for n in notes)


def test_failback_no_keeps_the_standby_in_use():
    s, esx1 = state()
    assert s.pinning()[esx1]["order-eth0"] == "vmnic0"
    link_changed(s, esx1, "vmnic0", up=False)
    assert s.pinning()[esx1]["order-eth0"] == "vmnic1"
    notes = link_changed(s, esx1, "vmnic0", up=True)
    assert s.pinning()[esx1]["order-eth0"] == "vmnic1"  # failback: no
    assert all(n.port != "order-eth0" for n in notes)
    # The recovered uplink is now the standby: losing vmnic1 moves it back.
    link_changed(s, esx1, "vmnic1", up=False)
    assert s.pinning()[esx1]["order-eth0"] == "vmnic0"


def test_repeated_link_events_change_nothing():
    s, esx1 = state()
    link_changed(s, esx1, "vmnic0", up=False)
    assert link_changed(s, esx1, "vmnic0", up=False) == []


def test_vmotion_moves_the_port_and_notifies_from_the_destination():
    s, esx1 = state()
    esx2 = s.dpids[1]
    ofport = next(p.ofport for p in s.binding(esx1).ports if p.name == "loud-eth0")
    changed = s.set_placement({"loud-eth0": Placement("esx2", ofport)})
    assert changed == {esx1, esx2}
    assert "loud-eth0" in {p.name for p in s.binding(esx2).ports}
    assert "loud-eth0" not in {p.name for p in s.binding(esx1).ports}
    (note,) = vmotion.arrival(s, esx2, "loud-eth0", {}).rarps
    assert note.mac == "00:50:56:00:00:01" and note.reason == "vmotion"


def test_guest_state_changes_are_detected_once():
    s, _ = state()
    g = GuestNic(promiscuous=True)
    assert s.set_guests({"loud-eth0": g}) is True
    assert s.set_guests({"loud-eth0": g}) is False


def test_rarp_frame_is_a_tagged_broadcast_from_the_vm():
    frame = Ether(notify.rarp("00:50:56:00:00:01", 10))
    assert frame.dst == "ff:ff:ff:ff:ff:ff" and frame.src == "00:50:56:00:00:01"
    assert frame[Dot1Q].vlan == 10 and frame[Dot1Q].type == 0x8035
    assert len(bytes(frame)) >= 64


def test_igmp_query_carries_source_and_max_response_time():
    frame = Ether(notify.igmp_general_query("00:50:56:00:ff:fe", "0.0.0.0", 2.5))
    assert frame[IP].dst == "224.0.0.1" and frame[IP].src == "0.0.0.0" and frame[IP].ttl == 1
    assert frame[IGMP].type == 0x11 and frame[IGMP].mrcode == 25


TWO_VSWITCHES = {
    "name": "two-vswitches",
    "physical_switches": [{"name": "psw"}],
    "esxi_hosts": [
        {
            "name": "esx1",
            "uplinks": [{"name": f"vmnic{i}", "speed": 1, "switch": "psw", "port": 10 + i} for i in range(2)],
            # The most common ESXi layout: vSwitch0 for management, vSwitch1 for VMs.
            "vswitches": [
                {
                    "name": "vSwitch0",
                    "uplinks": ["vmnic0"],
                    "port_groups": [{"name": "Management", "vlan": 10}],
                },
                {"name": "vSwitch1", "uplinks": ["vmnic1"], "port_groups": [{"name": "VMs", "vlan": 20}]},
            ],
        }
    ],
    "vms": [
        {"name": "g1", "host": "esx1", "vnics": [{"port_group": "Management", "mac": "00:50:56:00:00:11"}]},
        {"name": "g2", "host": "esx1", "vnics": [{"port_group": "VMs", "mac": "00:50:56:00:00:12"}]},
    ],
}


def test_a_host_with_two_vswitches_reports_the_pinning_and_failures_of_both():
    s = ControllerState(parse_lab(copy.deepcopy(TWO_VSWITCHES)))
    assert len(s.dpids) == 2  # one bridge per vSwitch
    assert s.pinning_by_host() == {"esx1": {"g1-eth0": "vmnic0", "g2-eth0": "vmnic1"}}
    vswitch0, vswitch1 = s.dpids
    link_changed(s, vswitch0, "vmnic0", up=False)
    link_changed(s, vswitch1, "vmnic1", up=False)
    assert s.uplinks_down_by_host() == {"esx1": ["vmnic0", "vmnic1"]}
    assert s.pinning_by_host() == {"esx1": {"g1-eth0": None, "g2-eth0": None}}

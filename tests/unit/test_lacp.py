"""LACP on a distributed switch (issue 18, item 4), rootless: what a LAG
resolves to, the flows that send a LAG port's frames out of one member, the
OVS settings of both ends, what ``vlab check`` refuses, and the reading of
OVS's LACP state. The LACPDUs themselves: tests/integration/test_lacp.py."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from controller import ofdriver
from controller.simulate import Frame, walk
from controller.teaming import LAG_HASH_FIELDS
from controller.vswitch import compile_vswitch, pinning
from tests.unit.labedit import both, put
from topologies.esxi import bridge_commands
from topologies.physical import lag_settings
from vlab import naming
from vlab.bindings import switch_bindings
from vlab.lab.check import lab_warnings
from vlab.lab.check.teaming import LAG_MODES_EMULATED
from vlab.lab.load import LabError, parse_lab
from vlab.lab.reachability import expected_reachability
from vlab.operations.faults import drop_ethertype, drop_ethertype_program
from vlab.ovs import parse_lacp

LAB = yaml.safe_load((Path(__file__).resolve().parents[2] / "labs" / "lacp.yaml").read_text())
DVS = "distributed_switches[0]"
EXT = "00:50:56:0e:0a:01"
PO1 = "physical_switches[0].lags[0]"
STATIC_PO1 = both(put(f"{PO1}.lacp", "off"), put(f"{PO1}.lacp_rate", None))


def lab(edit=None):
    data = copy.deepcopy(LAB)
    if edit is not None:
        edit(data)
    return parse_lab(data, "lab.yaml")


def binding():
    return switch_bindings(lab())[0]


def refusal(edit) -> str:
    with pytest.raises(LabError) as info:
        lab(edit)
    return str(info.value)


# -- what a LAG resolves to -------------------------------------------------------------
def test_a_port_group_with_a_lag_active_is_that_lags_team():
    b = binding()
    team = b.switch.port_group("PG-A").teaming
    assert (team.policy, team.lag, team.active, team.standby) == ("lag", "lagA", ("vmnic0", "vmnic1"), ())
    assert team.load_balancing == "srcDestIpTcpUdpPortVlan"  # vSphere's default
    assert set(team.unused) == {"vmnic2", "vmnic3", "vmnic4", "vmnic5"}
    assert [g.members for g in b.switch.lags] == [
        ("vmnic0", "vmnic1"),
        ("vmnic2", "vmnic3"),
        ("vmnic4", "vmnic5"),
    ]
    # esxtop's TEAM-PNIC: the LAG, since the member is chosen per packet.
    assert pinning(b)[naming.vnic_port("va", "eth0")] == "lagA"


def test_a_lag_ports_frames_leave_by_one_member_hashed_by_its_mode():
    b = binding()
    flows = compile_vswitch(b)
    va, vp = b.port("va-eth0"), b.port("vp-eth0")
    out = walk(flows, Frame(va.ofport, EXT, eth_src=va.mac)).sorted_outputs()
    assert [(o.among, o.frame.vlan) for o in out] == [((1, 2), 10)]
    bundles = {a for f in flows for a in f.actions if a[0] == "bundle"}
    # The default mode hashes IP addresses and TCP/UDP ports, the VLAN as the
    # hash's basis; srcDestIp hashes the addresses alone.
    assert ("bundle", "symmetric_l3l4+udp", 10, (1, 2)) in bundles
    assert ("bundle", "symmetric_l3", 0, (3, 4)) in bundles
    # A broadcast goes to the LAG once (one member), not to every member.
    out = walk(flows, Frame(vp.ofport, "ff:ff:ff:ff:ff:ff", eth_src=vp.mac)).sorted_outputs()
    assert [o.among for o in out] == [(3, 4)]


def test_frames_from_any_member_reach_the_port_no_reverse_teaming_filter():
    b = binding()
    flows = compile_vswitch(b)
    va = b.port("va-eth0")
    for member in (1, 2):
        out = walk(flows, Frame(member, va.mac, vlan=10)).sorted_outputs()
        assert [o.port for o in out] == [va.ofport]


def test_the_bundle_action_is_ovs_bundle_with_hrw_over_the_members():
    from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser

    a = ofdriver._action(ofproto_v1_3, ofproto_v1_3_parser, ("bundle", "symmetric_l3", 7, (3, 4)))
    assert (a.algorithm, a.fields, a.basis, list(a.slaves)) == (1, 6, 7, [3, 4])


def test_every_mode_the_check_accepts_has_a_hash():
    assert set(LAG_MODES_EMULATED) == set(LAG_HASH_FIELDS)


# -- both ends' OVS settings -----------------------------------------------------------------
def test_the_host_bonds_each_lag_with_lacp_in_its_mode_and_timeout():
    L = lab()
    b = switch_bindings(L)[0]
    cmds = " ".join(bridge_commands(L, L.esxi_hosts[0], b, "tcp:127.0.0.1:6653"))
    assert "create port name=dvs1.lagA interfaces=[@member1,@member2] lacp=active" in cmds
    assert "other_config:lacp-time=fast" in cmds
    assert "name=dvs1.lagPP interfaces=[@member5,@member6] lacp=passive" in cmds
    assert "add-port dvs1 vmnic" not in cmds  # members are in their bond only


def test_the_port_channel_runs_lacp_or_is_static():
    sw = lab().physical_switches[0]
    assert lag_settings(sw.lags[0]) == ["bond_mode=balance-tcp", "lacp=active", "other_config:lacp-time=fast"]
    assert lag_settings(sw.lags[2])[1:] == ["lacp=passive", "other_config:lacp-time=slow"]
    static = lab(STATIC_PO1).physical_switches[0].lags[0]
    assert lag_settings(static) == [
        "bond_mode=balance-slb",
        "lacp=off",
        "other_config:all-members-active=true",
    ]


def test_a_partner_falls_silent_by_a_bpf_filter_that_drops_lacpdus_only():
    assert drop_ethertype_program(0x8809) == "4,40 0 0 12,21 0 1 34825,6 0 0 2,6 0 0 0"
    on = drop_ethertype("pswitch1-2", 0x8809)
    assert "egress pref 49 bpf da bytecode" in on[-1]
    assert drop_ethertype("pswitch1-2", 0x8809, on=False) == [
        "tc filter del dev pswitch1-2 egress pref 49 2>/dev/null || true"
    ]


# -- what vlab check says --------------------------------------------------------------------
@pytest.mark.parametrize(
    "edit, expected",
    [
        (
            put(f"{DVS}.port_groups[0].teaming", {"active": ["lagA"], "standby": ["lagP"]}),
            "port_groups[0].teaming.standby[0]: LAG lagP in standby is vSphere's migration step",
        ),
        (
            put(f"{DVS}.port_groups[0].teaming", {"active": ["lagA", "lagP"]}),
            "port_groups[0].teaming.active: a LAG (lagA) must be the only active uplink",
        ),
        (
            put(f"{DVS}.port_groups[0].teaming", {"active": ["lagA"], "policy": "ip_hash"}),
            "port_groups[0].teaming.policy: the LAG lagA's load_balancing decides",
        ),
        (
            put(f"{DVS}.port_groups[0].teaming.failure_detection", "beacon_probing"),
            "port_groups[0].teaming.failure_detection: PG-A uses LAG lagA: a port channel sends no beacon",
        ),
        (
            put(f"{DVS}.lags[0].load_balancing", "destMac"),
            "lags[0].load_balancing: destMac has no hash in Open vSwitch's bundle action",
        ),
        (
            put(f"{DVS}.port_groups[0].vlan", 4095),
            "port_groups[0].vlan: LAG lagA hashes by srcDestIpTcpUdpPortVlan",
        ),
        (
            both(put(f"{DVS}.uplinks", ["lagA-0"])),
            "lags[0].name: 'lagA-0' is also a dvUplink of dvs1",
        ),
        (
            put("esxi_hosts[0].distributed_switches[0].uplinks.lagA-2", "vmnic5"),
            "uplinks.lagA-2: dvs1 has no dvUplink or LAG port 'lagA-2'",
        ),
        (
            put(f"{PO1}.lacp", "off"),
            "physical_switches[0].lags[0].lacp_rate: lacp_rate is the rate of LACPDUs; a static LAG",
        ),
    ],
    ids=[
        "lag-standby",
        "lag-mixed",
        "lag-with-policy",
        "lag-beacon",
        "unhashable-mode",
        "vlan-mode-on-vgt",
        "lag-port-is-a-dvuplink",
        "unknown-lag-port",
        "rate-on-static-lag",
    ],
)
def test_what_vsphere_does_not_allow_or_the_testbed_cannot_hash_is_refused(edit, expected):
    assert expected in refusal(edit)


def test_a_lag_that_can_never_form_is_warned_about_and_reaches_nothing():
    L = lab()
    assert lab_warnings(L) == [
        (
            "esx1/dvs1/lagPP",
            "LAG lagPP on esx1 never forms: lagPP and pswitch1/po3 are both passive: "
            "PG-PP reach nothing off the host",
        )
    ]
    reach = expected_reachability(L)
    assert reach[("va", "ext/eth0")] and reach[("vp", "ext/eth1")]
    assert not reach[("vpp", "ext/eth2")]
    # A static port channel sends no LACPDU either.
    static = lab(
        both(
            put("physical_switches[0].lags[0].lacp", "off"),
            put("physical_switches[0].lags[0].lacp_rate", None),
        )
    )
    assert not expected_reachability(static)[("va", "ext/eth0")]


# -- reading OVS's LACP state ------------------------------------------------------------------
SHOW = """---- dvs1.lagA ----
  status: active negotiated
  sys_id: f6:ef:43:67:b0:46
  lacp_time: fast

member: vmnic0: current attached
  port_id: 1
  may_enable: true

  actor state: activity timeout aggregation synchronized collecting distributing
  partner state: timeout aggregation synchronized collecting distributing

member: vmnic1: expired attached
  port_id: 2
  may_enable: false

  actor state: activity timeout aggregation synchronized collecting distributing expired
  partner state: timeout aggregation
"""


def test_lacp_show_is_read_per_member():
    s = parse_lacp(SHOW)
    assert s["status"] == "active negotiated"
    assert {m: (v["status"], v["attached"], v["may_enable"]) for m, v in s["members"].items()} == {
        "vmnic0": ("current", True, True),
        "vmnic1": ("expired", True, False),
    }
    assert s["members"]["vmnic1"]["partner_state"] == ["timeout", "aggregation"]


def test_lacpdus_the_fault_drops_are_not_shaping_drops():
    from experiments.fidelity import queue_drops

    stats = (
        "qdisc htb 5: root refcnt 2 r2q 10 default 0x1 direct_packets_stat 0\n"
        " Sent 1000 bytes 10 pkt (dropped 2, overlimits 0 requeues 0)\n"
        "qdisc clsact ffff: parent ffff:fff1\n"
        " Sent 500 bytes 9 pkt (dropped 9, overlimits 0 requeues 0)\n"
    )
    assert queue_drops(stats) == 2


def test_a_trace_says_the_frame_leaves_by_the_lag_not_by_one_member(capsys):
    from vlab.cli import main

    lab_file = str(Path(__file__).resolve().parents[2] / "labs" / "lacp.yaml")
    main(["trace", lab_file, "--host", "esx1", "--port", "va-eth0", "--dst", EXT, "--ip-dst", "10.0.10.100"])
    out = capsys.readouterr().out
    assert "delivered: lagA (vmnic0 or vmnic1)" in out, out


# -- from the review: what a LAG port accepts, and labs around LAGs -------------------------
def test_a_lag_port_takes_flooded_frames_from_its_own_members_only():
    b = binding()
    flows = compile_vswitch(b)
    va = b.port("va-eth0")
    own = walk(flows, Frame(1, "ff:ff:ff:ff:ff:ff", vlan=10)).sorted_outputs()
    assert va.ofport in [o.port for o in own]
    # The same broadcast flooded to lagP's member (po2 carries VLAN 10 too).
    other = walk(flows, Frame(3, "ff:ff:ff:ff:ff:ff", vlan=10)).sorted_outputs()
    assert va.ofport not in [o.port for o in other]


def test_ip_hash_needs_a_static_port_channel():
    from tests.unit.labedit import refusal as base_refusal

    edit = both(
        put("physical_switches[0].lags[0].lacp", "active"),
        put("distributed_switches[0].teaming", {"policy": "ip_hash"}),
    )
    assert "is in no static LAG (lacp: off)" in base_refusal("dvs", edit)


def test_a_port_group_inheriting_a_lag_may_not_set_a_policy():
    edit = both(
        put(f"{DVS}.teaming", {"active": ["lagA"]}),
        put(f"{DVS}.port_groups[0].teaming", {"policy": "load_based"}),
    )
    assert "port_groups[0].teaming.policy: PG-A inherits LAG lagA" in refusal(edit)


def test_a_port_group_without_a_lag_on_a_switch_of_lags_reaches_nothing():
    def edit(data):
        data["distributed_switches"][0]["port_groups"].append({"name": "PG-X", "vlan": 10})
        data["vms"].append(
            {
                "name": "vx",
                "host": "esx1",
                "vnics": [{"port_group": "PG-X", "mac": "00:50:56:3b:00:09", "ip": "10.0.10.9/24"}],
            }
        )

    reach = expected_reachability(lab(edit))
    assert reach[("va", "ext/eth0")] and not reach[("vx", "ext/eth0")]


def test_a_lag_with_no_vmnic_on_the_host_sends_nothing_and_announces_nothing():
    from controller.failover import notification

    def edit(data):
        m = data["esxi_hosts"][0]["distributed_switches"][0]["uplinks"]
        del m["lagA-0"], m["lagA-1"]

    b = switch_bindings(lab(edit))[0]
    flows = compile_vswitch(b)
    assert not [a for f in flows for a in f.actions if a[0] == "bundle" and not a[3]]
    assert pinning(b)["va-eth0"] is None
    assert notification(b, "va-eth0", "vmotion") is None


def test_ofproto_trace_of_a_bundle_names_the_lags_members():
    from vlab.trace.ovs import parse_ofproto_trace

    text = (
        " 1. in_port=200,dl_vlan=10, priority 100, cookie 0x1000000000090b4\n"
        "    bundle(symmetric_l3l4+udp,10,hrw,ofport,members:1,2)\n"
        "\nFinal flow: unchanged\nDatapath actions: push_vlan(vid=10,pcp=0),2\n"
    )
    assert parse_ofproto_trace(text).bundles == [(1, 2)]

"""Teaming and VLAN-tagging modes with real frames, counted where they leave
the host (at the physical switch port of each uplink): EST and VGT port
groups, route based on source MAC hash, explicit failover order with
failback yes and no, IP hash over a static LAG (vSphere Networking,
"Teaming and Failover Policy" and "VLAN Configuration"). The failover and IP
hash measurements are the teaming-policies experiment's."""

import pytest

from experiments import settle
from experiments import teaming_policies as tp
from experiments.common import count_frames, lab_session, send_frames, tagged, vm_mac

LAB = tp.LABS["teaming"]
EXT = {"untagged": "00:50:56:0e:0e:01", "vlan20": tp.EXT_VLAN20, "vlan40": tp.EXT_VLAN40}
N = 10


@pytest.fixture(scope="module")
def lab():
    with lab_session(LAB) as net:
        yield net


_pin = tp.pin


def _uplink_captures(net, work, name, uplinks=("vmnic0", "vmnic1")):
    return tp.uplink_captures(net, work, name, uplinks)


def _send(net, vm, tag, dst=EXT["vlan20"]):
    send_frames(net, vm, vm_mac(net, vm), dst, tag, N)


def test_est_untagged_and_vgt_guest_tags(lab, work):
    """EST: the guest's frames leave untagged. VGT: the guest's own tags
    (VLAN 30) leave as they are and ext's replies come back tagged."""
    r = tp.measure_vlan_modes(lab, work)
    assert r["est"] == {"replies": True, "sent": 3, "tagged": 0}, r
    assert r["vgt"] == {"sent": 3, "sent_tags": [30], "replies": 3, "reply_tags": [30]}, r
    assert r["verdict"]


def test_source_mac_hash_one_uplink_per_vm_spread_and_kept_on_a_new_port(lab, work):
    r = tp.measure_source_mac_hash(lab, work, N)
    for vm, counts in r["counts"].items():
        assert sorted(counts.values()) == [0, N], (vm, r)  # every frame by one uplink
    assert r["uplinks_used"] == ["vmnic0", "vmnic1"], r  # four MACs, two uplinks: both used
    # vSphere: "Virtual machines use the same uplink because the MAC address
    # is static"; port-ID teaming would re-pick by the new port.
    moved = r["new_port"]
    assert moved["port_id_would_pick"] != moved["uplink_before"], r  # the frames tell the policies apart
    assert moved["counts"][moved["uplink_before"]] == N, r
    assert r["verdict"]


def test_explicit_failover_moves_to_the_standby_and_failback_decides_the_return(lab, work):
    r = tp.measure_failback(lab, work, N)
    # failback = yes: the recovered active uplink takes the port back; = no:
    # the standby keeps it (the recovered uplink is now the standby).
    assert r["counts"] == r["documented"], r
    assert r["counts"]["nofb"]["recovered"] == {"vmnic0": 0, "vmnic1": N}, r


def test_ip_hash_spreads_flows_by_the_documented_hash_and_survives_a_member(lab, work):
    r = tp.measure_ip_hash(lab, work, N)
    assert r["spread"] == r["documented"], r  # one pair on one member, pairs spread
    assert {u for c in r["spread"].values() for u, n in c.items() if n} == set(tp.LAG), r
    assert all(c == {"vmnic3": 0, "vmnic4": N} for c in r["member_failed"].values()), r
    assert r["member_recovered"] == {d: r["documented"][d] for d in r["member_recovered"]}, r
    assert r["verdict"], r  # and the ping through the port channel got every reply once


def test_the_static_port_channel_takes_broadcasts_on_every_member(lab, work):
    # 5 ^ 1 is even, 5 ^ 2 odd: broadcasts by vmnic3 and by vmnic4, so one
    # batch arrives on the member the bond does not treat as active, whichever
    # that is; a port channel floods both on.
    cap = lab.control.tcpdump("ext", "eth3", work / "ext-broadcasts.pcap")
    for d in (1, 2):
        extra = ["--ip-src", "10.0.40.5", "--ip-dst", f"10.0.40.{d}"]
        send_frames(lab, "ih", vm_mac(lab, "ih"), "ff:ff:ff:ff:ff:ff", f":ih-broadcast-{d};", N, extra=extra)
    for d in (1, 2):
        settle.wait_frames(cap.pcap, N, tagged(f":ih-broadcast-{d};"))
    pcap = cap.stop()
    assert [count_frames(pcap, tagged(f":ih-broadcast-{d};")) for d in (1, 2)] == [N, N]

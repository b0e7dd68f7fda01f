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
from vlab import naming

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


def test_est_port_group_sends_untagged_frames(lab, work):
    from scapy.layers.inet import ICMP
    from scapy.layers.l2 import Dot1Q

    from experiments.common import read_pcap

    cap = lab.control.capture(work / "est.pcap", uplink=("esx1", "vmnic2"), direction="tx")
    out = lab.node("est").cmd("ping -n -c 3 -i 0.2 -W 2 10.0.0.100")
    assert " 0% packet loss" in out, out
    frames = [f for f in read_pcap(cap.stop()) if ICMP in f and f[ICMP].type == 8]
    assert len(frames) == 3 and not any(Dot1Q in f for f in frames), frames


def test_vgt_port_group_carries_the_guests_own_tags(lab, work):
    """The guest tags its frames itself (scapy: this kernel has no 8021q
    module, so a guest VLAN interface cannot exist); ext's own stack answers
    on its VLAN 30 access port, and the replies reach the guest still tagged."""
    from scapy.layers.inet import ICMP
    from scapy.layers.l2 import Dot1Q

    from experiments.common import read_pcap

    ext, vgt_mac = lab.node("ext"), vm_mac(lab, "vgt")
    ext.cmd(f"ip neigh replace 10.0.30.2 lladdr {vgt_mac} dev eth2")  # no ARP without a VLAN interface
    try:
        up = lab.control.capture(work / "vgt-uplink.pcap", uplink=("esx1", "vmnic2"), direction="tx")
        guest = lab.control.capture(work / "vgt-guest.pcap", port=naming.vnic_port("vgt", "eth0"))
        ips = ["--ip-src", "10.0.30.2", "--ip-dst", "10.0.30.100", "--vlan", 30, "--icmp"]
        send_frames(lab, "vgt", vgt_mac, "00:50:56:0e:0e:03", "vgt;", 3, extra=ips)
        settle.wait_frames(guest.pcap, 3, lambda f: ICMP in f and f[ICMP].type == 0)
        sent = [f for f in read_pcap(up.stop()) if ICMP in f and f[ICMP].type == 8]
        got = [f for f in read_pcap(guest.stop()) if ICMP in f and f[ICMP].type == 0]
    finally:
        ext.cmd("ip neigh del 10.0.30.2 dev eth2")
    assert len(sent) == 3 and all(Dot1Q in f and f[Dot1Q].vlan == 30 for f in sent), sent
    assert len(got) == 3 and all(Dot1Q in f and f[Dot1Q].vlan == 30 for f in got), got


def test_source_mac_hash_keeps_each_vm_on_one_uplink_and_spreads_vms(lab, work):
    vms = ("mh1", "mh2", "mh3", "mh4")
    caps = _uplink_captures(lab, work, "machash")
    seen = {}
    for vm in vms:
        _send(lab, vm, f"machash-{vm};")
    for vm in vms:
        seen[vm] = tp.by_uplink(caps, f"machash-{vm};", N)
    for c in caps.values():
        c.stop()
    for vm, counts in seen.items():
        assert sorted(counts.values()) == [0, N], (vm, seen)  # every frame by one uplink
    used = {max(counts, key=counts.get) for counts in seen.values()}
    assert used == {"vmnic0", "vmnic1"}, seen  # four MACs, two uplinks: both used


def test_source_mac_hash_keeps_the_uplink_when_the_vnic_gets_a_new_port(lab, work):
    # vSphere: "Virtual machines use the same uplink because the MAC address is
    # static"; port-ID teaming would re-pick by the new port.
    before, port = _pin(lab, "mh1"), naming.vnic_port("mh1", "eth0")
    old_id = lab.control.placement()[port].ofport
    assert lab.control.reconnect("mh1")[port] != old_id
    caps = _uplink_captures(lab, work, "machash-new-port")
    _send(lab, "mh1", "machash-new-port;")
    counts = tp.by_uplink(caps, "machash-new-port;", N)
    for c in caps.values():
        c.stop()
    assert counts[before] == N and sum(counts.values()) == N, counts


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

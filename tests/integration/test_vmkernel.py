"""VMkernel egress selection, custom TCP/IP stacks and esxtop counters with
real TCP and pcaps at the physical switch ports (seed 000)."""

from pathlib import Path

import pytest

from experiments import vmk_egress as ve
from experiments.common import count_frames, lab_session

STACKS = Path(__file__).with_name("labs") / "stacks.yaml"


@pytest.fixture(scope="module")
def case_b():
    with lab_session(ve.CASES["B"]) as net:
        yield net


def test_reply_leaves_by_the_destination_vmk_with_the_source_it_was_asked_on(case_b, work):
    t = ve.measure_transfer(case_b, work, "rubrik2", 2_000_000)
    assert t["transfer"]["intact"] and t["transfer"]["end"] == "eof" and t["resets_seen"] == 0, t
    up = t["data_packets_per_uplink"]
    assert up["vmnic0"] == up["vmnic1"] == 0 and up["vmnic2"] + up["vmnic3"] > 0, up
    assert t["reply_source_ips"] == [ve.VMK0_IP] and set(t["reply_sender_vmk"]) == {"vmk4"}, t


def test_esxtop_shows_vmk4_transmitting_and_vmk0_receiving(case_b, work):
    nbytes = 4_000_000
    t = ve.measure_transfer(case_b, work, "rubrik1", nbytes)
    pkts = t["esxtop_packets"]
    vmk4, vmk0 = pkts["vmk4"], pkts["vmk0"]
    # The data leaves by vmk4: at least one packet per 1460 bytes (MTU 1500
    # less the IP and TCP headers); the client's ACKs come in on vmk0.
    assert vmk4["tx"] >= nbytes / 1460 and vmk4["rx"] * 10 <= vmk4["tx"], pkts
    assert vmk0["rx"] > 0 and vmk0["tx"] * 10 <= vmk4["tx"] and vmk4["rx"] * 10 <= vmk0["rx"], pkts
    pinned = t["esxtop"]["vmk4"]["TEAM-PNIC"]
    other = {"vmnic2": "vmnic3", "vmnic3": "vmnic2"}.get(pinned)
    assert other and pkts[pinned]["tx"] >= nbytes / 1460 and pkts[other]["tx"] * 10 <= pkts[pinned]["tx"], (
        pinned,
        pkts,
    )


def test_source_based_egress_keeps_replies_on_vmk0(work):
    with lab_session(ve.CASES["src"]) as net:
        t = ve.measure_transfer(net, work, "rubrik1", 1_000_000)
    up = t["data_packets_per_uplink"]
    assert up["vmnic2"] == up["vmnic3"] == 0 and up["vmnic0"] + up["vmnic1"] > 0, up
    assert set(t["reply_sender_vmk"]) == {"vmk0"} and t["transfer"]["intact"], t


def test_custom_stack_has_its_own_routes_and_gateway(work):
    with lab_session(STACKS) as net:
        esx = net.node("esx1")
        assert "via 10.50.0.1 dev vmk1" in esx.cmd("ip route get 192.0.2.1 from 10.50.0.11")
        assert "via 172.17.4.1 dev vmk0" in esx.cmd("ip route get 192.0.2.1")
        # The default stack has no route into the vMotion subnet.
        assert "dev vmk1" not in esx.cmd("ip route get 10.50.0.99")
        cap = net.control.tcpdump("gw50", "eth0", work / "vmotion.pcap", bpf="icmp")
        ok = esx.cmd("ping -n -c 2 -W 1 -I 10.50.0.11 10.50.0.1 >/dev/null; echo rc=$?")
        blocked = esx.cmd("ping -n -c 1 -W 1 -I 172.17.4.102 10.50.0.1 >/dev/null; echo rc=$?")
        pcap = cap.stop()
    assert ok.strip().endswith("rc=0") and not blocked.strip().endswith("rc=0")
    from scapy.layers.inet import IP

    assert count_frames(pcap, lambda p: IP in p and p[IP].src == "10.50.0.11") >= 2
    assert count_frames(pcap, lambda p: IP in p and p[IP].src == "172.17.4.102") == 0


def test_a_port_mirror_of_each_vmk_shows_its_half_of_the_session(work):
    """Seed 000's captures: case B on a distributed switch, its VMkernel
    ports mirrored to a Wireshark VM. vmk4 alone carries only the host's
    packets to the node, every data packet the uplinks sent; vmk0 alone only
    the node's packets to the host; both together the handshake split
    across them (SYN delivered to vmk0, SYN/ACK sent by vmk4). Copies are
    taken before the uplink's shaper and OVS may drop some a capture vNIC
    cannot take, so only directions are asserted, not equal counts."""
    with lab_session(ve.SPAN_LAB) as net:
        span = ve.measure_span(net, work, "rubrik2", 1_000_000, 0.25)
    both, vmk4, vmk0 = (span["sessions"][s] for s in ("vmk0-and-vmk4", "vmk4-only", "vmk0-only"))
    assert (set(both["syn_at"]), set(both["synack_by"])) == ({"vmk0"}, {"vmk4"}), both
    assert vmk4["to_host"] == 0 and vmk4["seen_at"] == {"sent by vmk4": vmk4["from_host"]}, vmk4
    assert vmk4["from_host_data"] > 0
    assert vmk0["from_host"] == 0 and vmk0["seen_at"] == {"delivered to vmk0": vmk0["to_host"]} != {}, vmk0
    assert ve._span_verdict(span)

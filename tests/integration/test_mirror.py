"""Port mirroring on real OVS (labs/erspan.yaml): ERSPAN and GRE copies at
the monitor, equal to what the jump box sent and received, an HTTP GET
reassembled from them by tshark; snap length; a local session whose
destination gets only copies; and mirroring that follows a vMotion."""

import pytest

from experiments import erspan_capture as ec
from experiments.common import lab_session

PAGE = 20000


@pytest.fixture(scope="module")
def lab():
    with lab_session(ec.LAB) as net:
        yield net


@pytest.fixture(scope="module")
def browsed(lab, tmp_path_factory):
    """The jump box's GET, with every capture (run once for the module)."""
    return ec.measure_erspan_http(lab, tmp_path_factory.mktemp("http"), PAGE)


def test_erspan_copies_are_the_jump_box_frames_and_reassemble_the_get(browsed):
    r = browsed
    assert r["get"] == {"status": 200, "bytes": PAGE, "body_ok": True}
    # Every HTTP frame the jump box sent or received, once, byte for byte,
    # as ERSPAN type II session 1 from esx1's vmk0 to the monitor.
    assert r["http_frames_at_jumpbox"] > 10
    assert r["http_frames_mirrored"] == r["http_frames_at_jumpbox"]
    assert r["inner_equal_to_jumpbox_frames"]
    assert r["erspan_version"] == [1] and r["outer_sources"] == ["10.2.0.11"]
    # The header's original VLAN is the jump box's port group's (VM-Network).
    assert r["erspan_header_vlans"] == [20]
    # tshark's "erspan" filter counts the same frames as our own decoder.
    assert r["tshark"]["erspan_by_session"] == {"1": r["erspan_session1_frames"]}
    assert r["tshark"]["gre_filter"] == (r["erspan_session1_frames"] + r["tshark"]["gre_by_key"]["2"])
    assert r["reassembled"]["request_line"] == "GET /index.html HTTP/1.1"
    assert r["reassembled"]["status_line"] == "HTTP/1.1 200 OK"
    assert r["reassembled"]["body_equal_to_page"]
    assert r["verdict"], r


def test_copies_leave_esx1_from_vmk0_while_the_http_never_does(browsed):
    left = browsed["left_esx1_uplinks"]
    assert left["encapsulated"] > 0 and left["http"] == 0
    assert left["outer_src"] == ["10.2.0.11"] and left["vlan"] == [10]
    assert left["outer_mac_src"] == [browsed["vmk0"][1]]


def test_gre_copies_are_cut_to_the_snap_length(browsed):
    r = ec.measure_snap_length(browsed["pcaps"], 128)
    assert r["gre_copies"] == r["frames_sent_by_web"] > 0
    assert r["longest_copy"] == 128 and r["longest_sent"] > 128 and r["truncated"] > 0
    # The GRE session mirrors what web sends only (ingress): every copy's
    # source MAC is web's.
    copies = [d for d in ec.decapsulated(browsed["pcaps"]["monitor"]) if d["kind"] == "gre"]
    assert {d["inner"][6:12].hex(":") for d in copies} == {"00:50:56:03:00:20"}
    assert {d["session"] for d in copies} == {2}
    assert r["verdict"], r


def test_local_session_feeds_the_sniffer_which_receives_and_sends_nothing_else(lab, browsed, tmp_path):
    r = ec.measure_local_mirror(lab, tmp_path, browsed["pcaps"], frames=10)
    assert r["copies_at_sniffer"] == r["jumpbox_http_frames"] > 0
    assert r["copies_equal_to_jumpbox_frames"] and r["not_jumpbox_frames_at_sniffer"] == 0
    assert (r["delivered_to_sniffer"], r["delivered_from_sniffer"]) == (0, 0)
    assert r["verdict"], r


def test_monitor_sees_nothing_without_traffic_from_a_source(lab, tmp_path):
    """Traffic of unmirrored ports (the gateway pinging esx2's vmk0) makes no
    copies. Only copies of this ping count: the mirrored VMs' own traffic (an
    ARP refresh, say) may be copied during the window, as it should be."""
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import Ether

    cap = lab.control.tcpdump("monitor", "eth0", tmp_path / "idle.pcap", "ip proto 47", ["-Q", "in"])
    try:
        out = lab.node("gw").cmd("ping -n -q -c 5 -i 0.1 -W 1 10.2.0.12")
    finally:
        pcap = cap.stop()
    assert " 0% packet loss" in out
    inner = [Ether(d["inner"]) for d in ec.decapsulated(pcap)]
    pings = [f for f in inner if ICMP in f and "10.2.0.12" in (f[IP].src, f[IP].dst)]
    assert pings == [], [f.summary() for f in inner]


def test_trace_on_the_running_lab_shows_the_copies_and_ovs_agrees(lab, capsys):
    """OVS's own ofproto/trace of the jump box's GET on esx1: the ERSPAN copy
    leaves by the mirror tunnel to the monitor and the local copy reaches the
    sniffer, both read as copies; the web server is the one delivery, as in
    the lab's model (exit 0: they agree)."""
    import json

    from vlab.cli import main

    argv = ["--host", "esx1", "--port", "jumpbox-eth0", "--dst", "web", "--tcp", "80", "--json"]
    code = main(["trace", "--run", lab.run.id, *argv])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out.get("disagreement")
    assert out["delivered"] == ["web-eth0"] == out["ovs"]["outputs"]
    assert sorted(out["copies"]) == ["erspan-mirror to 10.2.1.110", "sniffer-eth0"]
    assert any("native tunnel" in line or "erspan" in line for line in out["ovs"]["datapath_actions"]), out[
        "ovs"
    ]


def test_mirroring_follows_the_vm_to_its_new_host(tmp_path):
    with lab_session(ec.LAB) as net:
        r = ec.measure_vmotion(net, tmp_path, PAGE)
        applied = net.control.applied()["pinning"]
    assert "jumpbox-eth0" in applied["esx2"]
    # esx2 now encapsulates, from its own vmk0; the sniffer (esx1) gets nothing.
    assert r["outer_sources"] == ["10.2.0.12"]
    assert r["http_frames_mirrored"] == r["http_frames_at_jumpbox"] > 10
    assert r["inner_equal_to_jumpbox_frames"] and r["body_reassembled"]
    assert r["copies_at_sniffer"] == 0
    assert r["verdict"], r

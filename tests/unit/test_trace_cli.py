"""``vlab trace`` without root: frames built from what a user types, the
explanation printed, bad input refused with one line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.explain import on_host
from controller.simulate import TCP_SYN
from controller.state import ControllerState
from vlab.cli import main
from vlab.lab.load import load_lab
from vlab.trace import TraceError, build_frame, frame_from_pcap, ofproto_flow

LABS = Path(__file__).resolve().parents[2] / "labs"
NUGGETS = str(LABS / "vswitch-nuggets.yaml")


def nuggets_port(port="strict-eth0"):
    state = ControllerState(load_lab(NUGGETS))
    binding, _ = on_host(state, "esx1", port)
    return state.lab, binding


def test_a_frame_from_a_vm_defaults_to_the_vnic_own_addresses():
    lab, b = nuggets_port()
    f = build_frame(lab, b, "strict-eth0", dst="open", tcp=80)
    assert (f.eth_src, f.eth_dst, f.ip_proto, f.tcp_dst, f.tcp_flags) == (
        "00:50:56:01:00:11",
        "00:50:56:01:00:12",
        6,
        80,
        TCP_SYN,
    )
    assert f.ipv4_src is not None and f.ipv4_dst is not None
    assert ofproto_flow(f).startswith(f"in_port={b.port('strict-eth0').ofport},dl_src=00:50:56:01:00:11")


def test_an_arp_request_is_broadcast():
    lab, b = nuggets_port()
    f = build_frame(lab, b, "strict-eth0", arp="10.0.10.99")
    assert (f.eth_type, f.eth_dst, f.arp_op, f.arp_tpa) == (0x0806, "ff:ff:ff:ff:ff:ff", 1, "10.0.10.99")


@pytest.mark.parametrize(
    "kw, error",
    [
        ({"dst": "nobody"}, "--dst 'nobody' is not a MAC, 'broadcast', a VM"),
        ({"dst": "open", "ip_dst": "10.0.0.300", "icmp": True}, "--ip-dst '10.0.0.300' is not an IPv4"),
    ],
)
def test_bad_frames_are_refused(kw, error):
    lab, b = nuggets_port()
    with pytest.raises(TraceError, match=error):
        build_frame(lab, b, "strict-eth0", **kw)


def test_a_frame_from_a_pcap(tmp_path):
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Dot1Q, Ether
    from scapy.utils import wrpcap

    pcap = tmp_path / "f.pcap"
    wrpcap(
        str(pcap),
        [
            Ether(src="00:50:56:01:00:11", dst="00:50:56:01:00:12")
            / Dot1Q(vlan=10)
            / IP(src="10.0.10.1", dst="10.0.10.2", ttl=7)
            / TCP(sport=1, dport=22)
        ],
    )
    f = frame_from_pcap(pcap, 1, 200)
    assert (f.in_port, f.vlan, f.ipv4_dst, f.ttl, f.tcp_dst) == (200, 10, "10.0.10.2", 7, 22)
    with pytest.raises(TraceError, match="no frame 2"):
        frame_from_pcap(pcap, 2, 200)


def test_cli_explains_a_forged_frame(capsys):
    assert (
        main(
            [
                "trace",
                NUGGETS,
                "--host",
                "esx1",
                "--port",
                "strict-eth0",
                "--dst",
                "open",
                "--src",
                "00:50:56:01:99:99",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "0 vs_in_port" in out and "forged transmits = reject" in out


def test_cli_json(capsys):
    assert main(["trace", NUGGETS, "--host", "esx1", "--port", "open-eth0", "--dst", "strict", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["delivered"] == ["strict-eth0"]
    assert [s["stage"] for s in out["steps"]] == ["vs_in_port", "vs_forward"]


@pytest.mark.parametrize(
    "argv, error",
    [
        (["--host", "esx9", "--port", "vmnic0"], "esx9 has no vSwitch port 'vmnic0'"),
        (["--host", "esx1", "--port", "open-eth0", "--dst", "zz"], "--dst 'zz' is not a MAC"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(capsys, argv, error):
    assert main(["trace", NUGGETS, *argv]) == 2
    err = capsys.readouterr().err
    assert error in err and err.count("\n") == 1


DATA = Path(__file__).with_name("data")


def test_ofproto_trace_is_read_back_by_stage_band_and_concern():
    from vlab.trace import parse_ofproto_trace

    t = parse_ofproto_trace((DATA / "ofproto-trace-dfw.txt").read_text())
    assert [(s.stage, s.band, s.concern, s.pass_) for s in t.steps] == [
        ("vs_in_port", "classify", "vswitch", 0),
        ("vs_forward", "exact", "vswitch", 0),
        ("dfw_to_vm", "to-ct", "dfw", 0),
        ("dfw_to_vm_ct", "rule 2", "dfw", 1),
    ]
    assert t.outputs == [200] and t.datapath_actions == ["ct(zone=1),recirc(0x3)", "ct(commit,zone=1),2"]
    arp = parse_ofproto_trace((DATA / "ofproto-trace-arp.txt").read_text())
    assert arp.outputs == [1, 200]
    forged = parse_ofproto_trace((DATA / "ofproto-trace-forged.txt").read_text())
    assert [(s.stage, s.band) for s in forged.steps] == [("vs_in_port", "miss")]
    assert forged.outputs == [] and forged.datapath_actions == ["drop"]


@pytest.mark.parametrize(
    "argv, error",
    [
        (["--port", "open-eth0", "--vlan", "5000"], "--vlan 5000 is not within 0-4094"),
        (["--port", "open-eth0", "--dst", "strict", "--tcp", "70000"], "--tcp 70000 is not within 0-65535"),
        (["--port", "open-eth0", "--to", "nosuch"], "--to 'nosuch': vSwitch0 on esx1 has no such port"),
        (["--port", "vmnic0", "--arp", "10.0.10.1", "--ip-src", "foo"], "--ip-src 'foo' is not an IPv4"),
    ],
)
def test_out_of_range_input_is_one_line_and_exit_2(capsys, argv, error):
    assert main(["trace", NUGGETS, "--host", "esx1", *argv]) == 2
    err = capsys.readouterr().err
    assert error in err and err.count("\n") == 1


def test_a_file_that_is_not_a_pcap_is_one_line_and_exit_2(capsys, tmp_path):
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    assert main(["trace", NUGGETS, "--host", "esx1", "--port", "open-eth0", "--pcap", str(junk)]) == 2
    err = capsys.readouterr().err
    assert "not a readable pcap" in err and err.count("\n") == 1


def test_ofproto_trace_reader_skips_the_tunnels_outer_packet():
    from vlab.trace import parse_ofproto_trace

    t = parse_ofproto_trace((DATA / "ofproto-trace-tunnel.txt").read_text())
    assert [s.stage for s in t.steps] == [
        "vs_in_port",
        "ls_ip_discovery",
        "ls_arp_responder",
        "lr_route",
        "ls_l2",
    ]
    assert t.outputs == [199]


def test_ofproto_trace_reader_resumes_the_frames_actions_after_an_erspan_copy():
    """A real trace (labs/erspan.yaml, esx1): the ERSPAN copy's outer packet
    is a nested bridge section inside the first table's actions; the local
    copy to the sniffer and the forwarding to web follow it."""
    from vlab.trace import parse_ofproto_trace

    t = parse_ofproto_trace((DATA / "ofproto-trace-erspan.txt").read_text())
    assert [(s.stage, s.band) for s in t.steps] == [("vs_in_port", "classify"), ("vs_forward", "exact")]
    assert t.outputs == [198, 202, 201]  # erspan-mirror, sniffer-eth0 (copies), web-eth0


def test_ofproto_trace_reader_reads_in_port():
    from vlab.trace import parse_ofproto_trace

    text = """Flow: arp,in_port=200,vlan_tci=0x0000

bridge("dvs-compute")
---------------------
 3. arp,tun_id=0x1388,arp_tpa=10.1.1.12,arp_op=1, priority 300, cookie 0x300000000000000
    set_field:2->arp_op
    IN_PORT

Final flow: unchanged
Datapath actions: 1
"""
    assert parse_ofproto_trace(text).outputs == [200]


OVERLAY = str(LABS / "nsx-overlay.yaml")


def _from_tunnel(capsys, *argv) -> dict:
    assert (
        main(["trace", OVERLAY, "--host", "esx1", "--port", "vxlan0", "--dst", "vm1", "--json", *argv]) == 0
    )
    return json.loads(capsys.readouterr().out)


def test_a_frame_from_the_tunnel_port_is_switched_by_its_vni(capsys):
    out = _from_tunnel(capsys, "--vni", "5001")  # web: vm1's logical switch
    assert out["delivered"] == ["vm1-eth0"]
    out = _from_tunnel(capsys, "--vni", "5002")  # app: vm1's MAC is unknown there
    assert out["delivered"] == []
    (reason,) = [r["reason"] for r in out["refused"]]
    assert "unknown unicast from the tunnel" in reason and "no VM on this host" in reason, reason


def test_a_vni_the_host_has_no_port_for_is_dropped_with_the_reason(capsys):
    out = _from_tunnel(capsys, "--vni", "5999", "--tun-src", "172.16.200.12")
    assert out["delivered"] == []
    (reason,) = [r["reason"] for r in out["refused"]]
    assert reason.startswith(
        "VNI 5999 (no logical switch) from VTEP 172.16.200.12: no VM of it runs on this host"
    )


@pytest.mark.parametrize(
    "argv, error",
    [
        (["--port", "vxlan0", "--dst", "vm1"], "a frame from vxlan0 carries a VNI: give --vni"),
        (["--port", "vxlan0", "--dst", "vm1", "--vni", "0"], "--vni"),
        (["--port", "vm1-eth0", "--dst", "vm2", "--vni", "5001"], "--vni and --tun-src are for frames from"),
    ],
)
def test_tunnel_metadata_is_refused_where_it_makes_no_sense(capsys, argv, error):
    assert main(["trace", OVERLAY, "--host", "esx1", *argv]) == 2
    err = capsys.readouterr().err
    assert error in err and err.count("\n") == 1

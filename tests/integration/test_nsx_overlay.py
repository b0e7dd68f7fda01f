"""Seed 004 on real OVS: VXLAN between host namespaces, ARP answered on the
source host, a distributed router that keeps same-host routed traffic off
the uplinks, controller tables that follow vMotion, and the MTU lesson.
Every assertion counts real frames captured where they entered the physical
network (or arrived at a guest)."""

import json

import pytest
import yaml

from experiments import nsx_packet_walk as walk
from experiments.common import lab_session
from vlab import cli
from vlab.shell.snapshot import nsx_tables
from vlab.waiting import Pending, wait_for

VTEP = {"esx1": "172.16.200.11", "esx2": "172.16.200.12", "esx3": "172.16.201.13", "esx4": "172.16.201.14"}


@pytest.fixture(scope="module")
def overlay():
    with lab_session(walk.OVERLAY_LAB) as net:
        yield net


def _vxlan(frames):
    from scapy.layers.inet import IP
    from scapy.layers.vxlan import VXLAN

    return [(w, f[IP].src, f[IP].dst, f[VXLAN].vni, walk._inner(f)) for w, f in frames if VXLAN in f]


def test_vm_traffic_crosses_the_underlay_as_vxlan_between_vteps(overlay, work):
    from scapy.layers.inet import ICMP
    from scapy.layers.l2 import Ether

    overlay.node("vm1").cmd("ping -n -q -c 2 -i 0.2 -W 1 10.1.1.12")  # warm caches
    with walk.Underlay(overlay, work, "enc") as under:
        out = overlay.node("vm1").cmd("ping -n -c 5 -i 0.1 -W 1 10.1.1.12")
    frames = under.frames
    assert "5 received" in out, out
    requests = [v for v in _vxlan(frames) if ICMP in v[4] and v[4][ICMP].type == 8]
    assert len(requests) == 5, frames
    assert {(src, dst, vni) for _, src, dst, vni, _ in requests} == {(VTEP["esx1"], VTEP["esx2"], 5001)}
    # The physical network sees VTEP MACs outside, VM MACs only inside.
    vm_macs = {"00:50:56:a1:00:01", "00:50:56:a1:00:02"}
    assert not any(f[Ether].src in vm_macs or f[Ether].dst in vm_macs for _, f in frames)


def test_physical_switches_learn_only_vtep_and_router_macs(overlay):
    overlay.node("vm1").cmd("ping -n -q -c 2 -i 0.2 -W 1 10.1.1.12")
    vm_macs = {nic.mac for vm in overlay.lab.vms for nic in vm.vnics}
    for switch in ("pswitch1", "pswitch2"):
        macs = {row["mac"] for row in overlay.mac_table(switch)}
        assert macs and not macs & vm_macs, (switch, macs)


def test_arp_is_answered_on_the_source_host(overlay, work):
    r = walk.measure_arp(overlay, work, "supp", rounds=3)
    assert r["replies"] == 3, r
    assert r["arp_requests_on_wire"]["total"] == 0, r


def test_arp_for_an_unknown_ip_is_replicated_to_vteps_and_the_remote_utep(overlay, work):
    from scapy.layers.l2 import ARP

    with walk.Underlay(overlay, work, "miss") as under:
        overlay.node("vm1").cmd("ping -n -c 1 -W 1 10.1.1.99")
    arp = {
        (w, src, dst)
        for w, src, dst, vni, inner in _vxlan(under.frames)
        if ARP in inner and inner[ARP].pdst == "10.1.1.99" and vni == 5001
    }
    # Head-end: esx1 -> esx2 (same subnet) and -> esx3 (UTEP of the other
    # subnet); esx3 then replicates to esx4. Nobody sends to esx4 but esx3.
    assert {(src, dst) for _, src, dst in arp} == {
        (VTEP["esx1"], VTEP["esx2"]),
        (VTEP["esx1"], VTEP["esx3"]),
        (VTEP["esx3"], VTEP["esx4"]),
    }, arp


def test_same_host_routing_never_reaches_the_uplinks(overlay, work):
    r = walk.measure_route(overlay, work, "same", "vm1", "vm3", pings=10)
    assert r["replies"] == 10 and r["ttl_at_destination"] == [63], r
    assert r["requests_entering_physical_network"] == 0, r


def test_cross_host_routing_goes_vtep_to_vtep_once(overlay, work):
    r = walk.measure_route(overlay, work, "cross", "vm1", "vm4", pings=10)
    assert r["replies"] == 10 and r["ttl_at_destination"] == [63], r
    assert r["times_each_request_entered"] == 1.0 and r["encapsulated"] == 10, r


def test_nsx_tables_follow_vmotion_and_traffic_follows_them(overlay, work, capsys):
    tables = nsx_tables(overlay.control)
    assert {e["ip"] for e in tables["web"]["arp_table"]} == {
        "10.1.1.11",
        "10.1.1.12",
        "10.1.1.15",
        "10.1.1.16",
    }
    overlay.control.vmotion("vm2", "esx4", stun_s=0.1)
    try:

        def moved():
            macs = {e["mac"]: e["host"] for e in nsx_tables(overlay.control)["web"]["mac_table"]}
            return macs.get("00:50:56:a1:00:02") == "esx4" or Pending(f"mac table {macs}")

        wait_for(moved, 10, "MAC table after vMotion")
        assert cli.main(["nsx", "tables", "--run", overlay.run.id]) == 0
        printed = json.loads(capsys.readouterr().out)
        assert "esx4" in [e["host"] for e in printed["web"]["vtep_table"]]
        overlay.node("vm1").cmd("ping -n -q -c 2 -i 0.2 -W 1 10.1.1.12")
        with walk.Underlay(overlay, work, "moved") as under:
            out = overlay.node("vm1").cmd("ping -n -c 3 -i 0.1 -W 1 10.1.1.12")
        assert "3 received" in out, out
        assert {dst for _, src, dst, _, _ in _vxlan(under.frames) if src == VTEP["esx1"]} == {VTEP["esx4"]}
    finally:
        overlay.control.vmotion("vm2", "esx2", stun_s=0.1)


def test_transport_mtu_1500_passes_ping_but_not_bulk_tcp(tmp_path):
    data = yaml.safe_load(walk.OVERLAY_LAB.read_text())
    data["nsx"]["transport_mtu"] = 1500
    lab = tmp_path / "mtu1500.yaml"
    lab.write_text(yaml.safe_dump(data))
    with lab_session(lab) as net:
        r = walk.measure_bulk(net, 1_000_000, timeout_s=5)
    assert r["ping_ok"] and not r["bulk_completed"], r


def test_frames_from_the_tunnel_port_are_traced_by_vni_and_ovs_agrees(overlay, capsys):
    """What a remote VTEP sends, as decapsulation leaves it: the simulator and
    OVS's ofproto/trace (exit 0: they agree) deliver a known VNI to its VM and
    drop a VNI the host has no port for, with the reason."""

    def trace(*argv) -> dict:
        code = cli.main(
            ["trace", "--run", overlay.run.id, "--json", "--host", "esx1", "--port", "vxlan0", *argv]
        )
        out = json.loads(capsys.readouterr().out)
        assert code == 0, out.get("disagreement")
        return out

    out = trace("--dst", "vm1", "--vni", "5001")
    assert out["delivered"] == ["vm1-eth0"] == out["ovs"]["outputs"]
    out = trace("--dst", "vm1", "--vni", "5999")
    assert out["delivered"] == [] == out["ovs"]["outputs"]
    assert out["refused"][0]["reason"].startswith("VNI 5999 (no logical switch)")

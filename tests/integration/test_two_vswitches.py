"""Two vSwitches on one host (vSwitch0 for management, vSwitch1 for VMs), the
most common ESXi layout, on real OVS: one bridge per vSwitch, and everything
keyed by host (applied.json, esxcli, inspect, lab validate, failover, vMotion)
holds the ports of both."""

import pytest

from experiments import teaming_policies as tp
from experiments.common import lab_session, ping_sweep
from vlab import validate_running
from vlab.lab.reachability import expected_reachability
from vlab.shell.snapshot import inspect
from vlab.waiting import wait_for

LAB = tp.LABS["two-vswitches"]


@pytest.fixture(scope="module")
def lab():
    with lab_session(LAB) as net:
        yield net


def test_each_vswitch_is_its_own_bridge_and_every_port_is_pinned(lab):
    ovs = lab.ovs["esx1"]
    assert sorted(ovs.vsctl("list-br").split()) == ["vSwitch0", "vSwitch1"]
    pins = lab.control.applied()["pinning"]["esx1"]
    # vmk0 and g1 on vSwitch0 (1 GbE), g2 on vSwitch1 (10 GbE): none lost.
    assert pins == {"vmk0": "vmnic0", "g1-eth0": pins["g1-eth0"], "g2-eth0": "vmnic2"}
    assert pins["g1-eth0"] in ("vmnic0", "vmnic1")


def _vm_list(lab, host: str) -> set[str]:
    """The VMs ``esxcli network vm list`` shows, run in the host's shell."""
    lines = lab.node(host).cmd("esxcli network vm list").splitlines()
    return {line.split()[1] for line in lines[2:] if line.strip()}


def test_esxcli_and_inspect_list_the_ports_of_both_vswitches(lab):
    assert _vm_list(lab, "esx1") == {"g1", "g2"}
    ports = lab.node("esx1").cmd(f"esxcli network vm port list -w {lab.control.pids['g2']}")
    assert "   vSwitch: vSwitch1" in ports and "   Team Uplink: vmnic2" in ports, ports
    switches = {
        s["name"]: {p["name"] for p in s["ports"]}
        for s in inspect(lab.control)["esxi_hosts"]["esx1"]["vswitches"]
    }
    assert switches["vSwitch0"] >= {"vmk0", "g1-eth0", "vmnic0", "vmnic1"}
    assert switches["vSwitch1"] >= {"g2-eth0", "vmnic2", "vmnic3"}


def test_reachability_and_lab_validate_match_the_design(lab):
    eps = lab.endpoints()
    measured = {
        (src.name, dst): ok
        for src in eps
        for dst, ok in ping_sweep(lab, src, [d for d in eps if d.node != src.node]).items()
    }
    assert measured == expected_reachability(lab.lab)
    checks = validate_running.validate(lab.control)
    assert [c.line() for c in checks if not c.ok] == []
    assert sum(c.name.startswith("flows esx1/") for c in checks) == 2


def test_failover_on_vswitch1_moves_only_its_ports(lab):
    ctl = lab.control
    before = ctl.applied()["pinning"]["esx1"]
    ctl.uplink("esx1", "vmnic2", up=False)
    try:
        wait_for(
            lambda: ctl.applied()["pinning"]["esx1"]["g2-eth0"] == "vmnic3", 10, "g2 failing over to vmnic3"
        )
        applied = ctl.applied()
        assert applied["uplinks_down"]["esx1"] == ["vmnic2"]
        assert {k: v for k, v in applied["pinning"]["esx1"].items() if k != "g2-eth0"} == {
            k: v for k, v in before.items() if k != "g2-eth0"
        }
        assert " 0% packet loss" in lab.node("g2").cmd("ping -n -q -c 3 -i 0.2 -W 1 10.20.0.12")
    finally:
        ctl.uplink("esx1", "vmnic2", up=True)
    wait_for(lambda: ctl.applied()["pinning"]["esx1"] == before, 10, "failback")


def test_a_vm_on_vswitch1_vmotions_to_the_other_host(lab):
    ctl = lab.control
    ctl.vmotion("g2", "esx2")
    try:
        pins = ctl.applied()["pinning"]
        assert "g2-eth0" in pins["esx2"] and "g2-eth0" not in pins["esx1"]
        assert _vm_list(lab, "esx2") == {"g2", "g3", "g4"}
        assert " 0% packet loss" in lab.node("g2").cmd("ping -n -q -c 3 -i 0.2 -W 1 10.20.0.12")
    finally:
        ctl.vmotion("g2", "esx1")


def test_frames_of_each_vswitch_fail_over_alone(lab, tmp_path):
    """The teaming-policies measurement: counted at the switch ports, g2's
    frames move to vmnic3 with vmnic2's cable and back; g1's never move."""
    r = tp.measure_two_vswitches(lab, tmp_path)
    assert r["verdict"], r


def test_a_vnic_connected_to_a_port_group_of_the_other_vswitch_moves_to_its_bridge(lab, work):
    from experiments import settle
    from experiments.common import count_frames, quiesce, send_frames, tagged, vm_mac

    ctl, g1 = lab.control, lab.node("g1")
    mac = vm_mac(lab, "g1")
    try:
        moved = ctl.connect_vnic("g1", "Production")
        assert (moved["from"], moved["to"]) == ("vSwitch0", "vSwitch1")
        assert lab.ovs["esx1"].vsctl("port-to-br", "g1-eth0").strip() == "vSwitch1"
        assert ctl.applied()["pinning"]["esx1"]["g1-eth0"] == "vmnic2"  # Production's active uplink
        # g1's broadcasts now flood Production (VLAN 20), where g4 hears them.
        cap = ctl.tcpdump("g4", "eth0", work / "g4.pcap", bpf=f"ether src {mac}")
        try:
            send_frames(lab, "g1", mac, "ff:ff:ff:ff:ff:ff", "moved;", count=5)
            settle.wait_frames(cap.pcap, 5, tagged("moved;"))
        finally:
            quiesce([cap.pcap])
            pcap = cap.stop()
        assert count_frames(pcap, tagged("moved;")) == 5
    finally:
        ctl.connect_vnic("g1", "VM-Network")
    assert lab.ovs["esx1"].vsctl("port-to-br", "g1-eth0").strip() == "vSwitch0"
    assert " 0% packet loss" in g1.cmd("ping -n -q -c 3 -i 0.2 -W 1 10.10.0.12")

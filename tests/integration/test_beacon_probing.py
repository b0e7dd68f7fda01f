"""Beacon probing with real beacons, against link status, on a failure beyond
the first switch (labs/beacon-probing.yaml): an access-to-core link is pulled
and every host link stays up. Verdicts are pings from the VMs to ext and the
beacons and frames counted where they arrive."""

from pathlib import Path

import pytest

from experiments import settle
from experiments.common import count_frames, lab_session, read_pcap
from vlab import naming
from vlab.waiting import wait_for

LAB = Path(__file__).resolve().parents[2] / "labs" / "beacon-probing.yaml"


@pytest.fixture(scope="module")
def lab():
    with lab_session(LAB) as net:
        yield net


UPLINKS2 = ("vmnic3", "vmnic4")  # vSwitch1's two uplinks


def _shotgun(net):
    return net.control.applied().get("shotgun", {}).get("esx1", [])


def _pin(net, vm):
    return net.control.applied()["pinning"]["esx1"][naming.vnic_port(vm, "eth0")]


def _on(net, uplink, vms):
    return next(vm for vm in vms if _pin(net, vm) == uplink)


def _pings(net, vm, ip, count=3):
    out = net.node(vm).cmd(f"ping -n -c {count} -i 0.2 -W 1 {ip}")
    return int(out.split(" received")[0].rsplit(" ", 1)[1]) if " received" in out else 0


def _beacons(frame):
    return bytes(frame).find(b"vlab-beacon") >= 0


def _echo_requests_from(ip):
    def match(frame):
        from scapy.layers.inet import ICMP, IP

        return ICMP in frame and frame[ICMP].type == 8 and frame[IP].src == ip

    return match


def test_every_beaconing_uplink_sends_a_beacon_a_second_that_the_others_hear(lab, work):
    # Captured where esx1's vmnic1 is received (the access switch side is
    # where a frame esx1 sends is received; what vmnic1 hears arrives at esx1).
    cap = lab.control.capture(work / "beacons-at-vmnic1.pcap", uplink=("esx1", "vmnic1"), direction="rx")
    settle.wait_frames(cap.pcap, 6, _beacons, timeout=10)
    frames = [f for f in read_pcap(cap.stop()) if _beacons(f)]
    # With every link and path up, beacon probing fails nothing.
    applied = lab.control.applied()
    assert applied["beacon_failed"] == {} and applied["shotgun"] == {}, applied
    # vmnic1 hears vmnic0's and vmnic2's beacons (flooded through the core), never its own.
    text = b"".join(bytes(f) for f in frames)
    assert b"vmnic0" in text and b"vmnic2" in text and b"\0vmnic1\0" not in text


def test_an_upstream_failure_cuts_link_status_vms_off_and_beacon_probing_fails_over(lab):
    ctl = lab.control
    beacon_vm, link_vm = _on(lab, "vmnic0", ("b0", "b1", "b2")), _on(lab, "vmnic0", ("l0", "l1", "l2"))
    assert _pings(lab, beacon_vm, "10.0.10.100") == 3 and _pings(lab, link_vm, "10.0.10.100") == 3
    ctl.dci_link("acc1-core", up=False)
    try:
        moved = wait_for(
            lambda: (lambda u: u if u != "vmnic0" else None)(_pin(lab, beacon_vm)),
            15,
            f"{beacon_vm} failing over from vmnic0 by beacon probing",
        )
        assert moved in ("vmnic1", "vmnic2")
        assert ctl.applied()["uplinks_down"].get("esx1", []) == []  # every link is up
        assert _pings(lab, beacon_vm, "10.0.10.100") == 3
        # Link status sees nothing: the PG-Link VM stays on vmnic0, cut off.
        assert _pin(lab, link_vm) == "vmnic0"
        assert _pings(lab, link_vm, "10.0.10.100") == 0
    finally:
        ctl.dci_link("acc1-core", up=True)
    wait_for(lambda: _pin(lab, beacon_vm) == "vmnic0", 15, f"{beacon_vm} failing back to vmnic0")
    assert _pings(lab, link_vm, "10.0.10.100") == 3


def test_two_uplinks_cannot_tell_which_failed_and_send_on_both(lab, work):
    ctl = lab.control
    caps = {u: ctl.capture(work / f"shotgun-{u}.pcap", uplink=("esx1", u), direction="tx") for u in UPLINKS2}
    ctl.dci_link("acc1-core", up=False)
    try:
        wait_for(lambda: _shotgun(lab) == ["vSwitch1"], 15, "vSwitch1 in shotgun")
        out = lab.node("s0").cmd("ping -n -c 3 -i 0.2 -W 1 10.0.20.100")
        assert " 0% packet loss" in out, out  # the copy by vmnic4 gets through
        requests = {u: count_frames(c.pcap, _echo_requests_from("10.0.20.10")) for u, c in caps.items()}
    finally:
        ctl.dci_link("acc1-core", up=True)
        for c in caps.values():
            c.stop()
    assert all(n > 0 for n in requests.values()), requests
    wait_for(lambda: not _shotgun(lab), 15, "vSwitch1 out of shotgun")

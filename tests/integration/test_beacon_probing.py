"""Beacon probing with real beacons, against link status, on a failure beyond
the first switch (labs/beacon-probing.yaml): an access-to-core link is pulled
and every host link stays up. Verdicts are pings from the VMs to ext and the
beacons and frames counted where they arrive."""

import pytest

from experiments import settle
from experiments import teaming_policies as tp
from experiments.common import lab_session, read_pcap
from vlab.waiting import wait_for

LAB = tp.LABS["beacon"]


@pytest.fixture(scope="module")
def lab():
    with lab_session(LAB) as net:
        yield net


def _beacons(frame):
    return bytes(frame).find(b"vlab-beacon") >= 0


def test_every_beaconing_uplink_sends_a_beacon_a_second_that_the_others_hear(lab, work):
    # What vmnic1 receives from its access switch.
    cap = lab.control.capture(work / "beacons-at-vmnic1.pcap", uplink=("esx1", "vmnic1"), direction="rx")
    settle.wait_frames(cap.pcap, 6, _beacons, timeout=10)
    frames = [f for f in read_pcap(cap.stop()) if _beacons(f)]

    # With every link and path up, beacon probing fails nothing (once the
    # first beacons after bring-up have been heard).
    def calm():
        applied = lab.control.applied()
        return applied["beacon_failed"] == {} and applied["shotgun"] == {}

    wait_for(calm, 10, "no beacon verdict with every path up")
    # vmnic1 hears vmnic0's and vmnic2's beacons (flooded through the core), never its own.
    text = b"".join(bytes(f) for f in frames)
    assert b"vmnic0" in text and b"vmnic2" in text and b"\0vmnic1\0" not in text


def test_an_upstream_failure_cuts_link_status_vms_off_and_beacon_probing_fails_over(lab, work):
    r = tp.measure_upstream_failure(lab, work, 0, {**tp.DEFAULTS, "failure_s": 6.0})
    assert r["beacon_vm_moved_to"] in ("vmnic1", "vmnic2") and r["link_status_vm_stayed_on"] == "vmnic0", r
    assert r["series"]["beacon_probing"]["outage_s"] <= tp.beacon_outage_limit_s(), r
    # Link status sees nothing: its VM gets no reply while the path is out.
    assert r["series"]["link_status"]["replies_while_out"] == 0 and r["series"]["link_status"]["lost"] > 0, r
    assert r["verdict"], r


def test_two_uplinks_cannot_tell_which_failed_and_send_on_both(lab, work):
    r = tp.measure_shotgun(lab, work)
    assert all(n >= 5 for n in r["echo_requests_per_uplink"].values()), r
    assert r["verdict"], r

"""vSphere traffic shaping with real TCP: a standard switch's outbound
average, peak and burst, its port-group override and its unshaped inbound
direction; a distributed port group's ingress and egress, before and after
the VM moves by vMotion (the policy is the port group's, on every host).
Rates are read off the frames the receiving guest captured
(``experiments.traffic_shaping``, whose numbers the experiment reports)."""

import pytest

from experiments import traffic_shaping as ts
from experiments.common import lab_session


@pytest.fixture(scope="module")
def lab():
    with lab_session(ts.LAB) as net:
        yield net


def _near(measured, expected, tolerance):
    assert measured == pytest.approx(expected, rel=tolerance), (measured, expected)


def test_a_standard_switch_spends_the_burst_at_the_peak_then_holds_the_average(lab, work):
    r = ts.measure(lab, work, "vss-outbound")
    pol = r["policy"]
    assert (pol["average_bps"], pol["peak_bps"], pol["burst_bytes"]) == (10_000_000, 30_000_000, 1_048_576)
    _near(r["steady_bps"], pol["average_bps"], ts.AVERAGE_TOLERANCE)
    _near(r["burst_bps"], pol["peak_bps"], ts.BURST_TOLERANCE)
    _near(r["above_average_bytes"], pol["burst_bytes"], ts.BURST_TOLERANCE)


@pytest.mark.parametrize("case", ["vss-inbound", "vss-override"])
def test_inbound_and_an_overriding_port_group_are_not_shaped(lab, work, case):
    r = ts.measure(lab, work, case, seconds=3.0)
    peak = ts.policy(lab, "vm-std", "ingress")["peak_bps"]
    assert r["steady_bps"] > ts.UNSHAPED_OVER_PEAK * peak, r["steady_bps"]


@pytest.mark.parametrize("case", ["vds-ingress", "vds-egress"])
def test_a_distributed_port_group_shapes_each_direction(lab, work, case):
    r = ts.measure(lab, work, case, seconds=4.0)
    _near(r["steady_bps"], r["policy"]["average_bps"], ts.AVERAGE_TOLERANCE)


def test_the_distributed_policy_follows_the_vm_to_another_host(lab, work):
    ctl = lab.control
    ctl.vmotion("vm-dvs", "esx1")
    try:
        assert ctl.placement()["vm-dvs-eth0"].host == "esx1"
        for case in ("vds-egress", "vds-ingress"):
            r = ts.measure(lab, work, case, seconds=4.0)
            _near(r["steady_bps"], r["policy"]["average_bps"], ts.AVERAGE_TOLERANCE)
    finally:
        ctl.vmotion("vm-dvs", "esx2")

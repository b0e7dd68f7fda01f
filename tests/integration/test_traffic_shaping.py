"""vSphere traffic shaping with real TCP: a standard switch's outbound
average, peak and burst, on a VM and on a VMkernel adapter, its port-group
override and its unshaped inbound direction; a distributed port group's
ingress and egress, before and after the VM moves by vMotion (the policy is
the port group's: a distributed one is the same on every host, a standard
one is each host's own). Rates are read off the frames the receiving guest
captured (``experiments.traffic_shaping``, whose numbers the experiment
reports); the expected rates are written out, not derived by the code
under test."""

import pytest

from experiments import traffic_shaping as ts
from experiments.common import lab_session
from tests.integration.hostshell import run_in_host

# The lab's policies after link_scale 0.1, in bit/s.
VSS_AVERAGE, VSS_PEAK, VSS_BURST = 10_000_000, 30_000_000, 1_048_576
DPG_INGRESS, DPG_EGRESS = 5_000_000, 20_000_000


@pytest.fixture(scope="module")
def lab():
    with lab_session(ts.LAB) as net:
        yield net


def _near(measured, expected, tolerance):
    assert measured == pytest.approx(expected, rel=tolerance), (measured, expected)


def test_a_standard_switch_spends_the_burst_at_the_peak_then_holds_the_average(lab, work):
    r = ts.measure(lab, work, "vss-outbound")
    assert (r["policy"]["average_bps"], r["policy"]["peak_bps"], r["policy"]["burst_bytes"]) == (
        VSS_AVERAGE,
        VSS_PEAK,
        VSS_BURST,
    )
    _near(r["steady_bps"], VSS_AVERAGE, ts.AVERAGE_TOLERANCE)
    _near(r["burst_bps"], VSS_PEAK, ts.BURST_TOLERANCE)
    _near(r["above_average_bytes"], VSS_BURST, ts.BURST_TOLERANCE)


def test_a_vmkernel_adapter_on_the_shaped_port_group_is_shaped_too(lab, work):
    r = ts.measure(lab, work, "vss-vmkernel", seconds=4.0)
    _near(r["steady_bps"], VSS_AVERAGE, ts.AVERAGE_TOLERANCE)


@pytest.mark.parametrize("case", ["vss-inbound", "vss-override"])
def test_inbound_and_an_overriding_port_group_are_not_shaped(lab, work, case):
    r = ts.measure(lab, work, case, seconds=3.0)
    assert r["steady_bps"] > ts.UNSHAPED_OVER_PEAK * VSS_PEAK, r["steady_bps"]


@pytest.mark.parametrize("case, average", [("vds-ingress", DPG_INGRESS), ("vds-egress", DPG_EGRESS)])
def test_a_distributed_port_group_shapes_each_direction(lab, work, case, average):
    r = ts.measure(lab, work, case, seconds=4.0)
    _near(r["steady_bps"], average, ts.AVERAGE_TOLERANCE)


def test_the_distributed_policy_follows_the_vm_to_another_host(lab, work):
    ctl = lab.control
    ctl.vmotion("vm-dvs", "esx1")
    try:
        assert ctl.placement()["vm-dvs-eth0"].host == "esx1"
        # Egress sits on the destination's end of the cable: re-applied there.
        _near(
            ts.measure(lab, work, "vds-egress", seconds=4.0)["steady_bps"], DPG_EGRESS, ts.AVERAGE_TOLERANCE
        )
        _near(
            ts.measure(lab, work, "vds-ingress", seconds=4.0)["steady_bps"], DPG_INGRESS, ts.AVERAGE_TOLERANCE
        )
    finally:
        ctl.vmotion("vm-dvs", "esx2")


def test_a_standard_port_groups_policy_is_the_hosts_own(lab, work):
    # esx2's PG-Shaped sets no shaping: moved there, vm-std sends unshaped
    # (its own interface's qdisc is replaced from esx2's policy); back on
    # esx1 it is shaped again.
    ctl = lab.control
    ctl.vmotion("vm-std", "esx2")
    try:
        r = ts.measure(lab, work, "vss-outbound", seconds=3.0)
        assert r["policy"] is None and r["steady_bps"] > ts.UNSHAPED_OVER_PEAK * VSS_PEAK, r["steady_bps"]
    finally:
        ctl.vmotion("vm-std", "esx1")
    _near(ts.measure(lab, work, "vss-outbound", seconds=4.0)["steady_bps"], VSS_AVERAGE, ts.AVERAGE_TOLERANCE)


def test_esxcli_shaping_set_shapes_the_next_transfer_and_setting_it_back_unshapes_it(lab, work):
    # PG-Unshaped overrides vSwitch0's shaping with "disabled": vm-free
    # sends unshaped. Set it to 50 Mbit/s flat (peak = average: no burst
    # bonus), x link_scale 0.1 = 5 Mbit/s; then back to the lab's override.
    ctl, sh = lab.control, "esxcli network vswitch standard portgroup policy shaping"

    def esxcli(line: str) -> str:
        rc, out, err = run_in_host(ctl, "esx1", f"{sh} {line}")
        assert rc == 0, (line, out, err)
        return out

    try:
        assert esxcli("set -p PG-Unshaped -e true -b 50000 -k 50000") == ""
        assert "   Average Bandwidth: 50000 Kbps" in esxcli("get -p PG-Unshaped")
        r = ts.measure(lab, work, "vss-override", seconds=3.0)
        _near(r["steady_bps"], 5_000_000, ts.AVERAGE_TOLERANCE)
    finally:
        esxcli("set -p PG-Unshaped -u -e false")
    r = ts.measure(lab, work / "after", "vss-override", seconds=3.0)
    assert r["steady_bps"] > ts.UNSHAPED_OVER_PEAK * VSS_PEAK, r["steady_bps"]

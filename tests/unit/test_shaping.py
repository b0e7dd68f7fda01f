"""Traffic shaping without a network: inheritance as vSphere resolves it,
the tbf qdiscs it becomes (link_scale applied), what ``vlab check`` refuses,
and the experiment's reading of a transfer's frames. Rootless and fast."""

from __future__ import annotations

import copy

import pytest
import yaml

from experiments.traffic_shaping import profile
from tests.unit.labedit import DVS, LABS, PG_1G, VSW0, case, put, refusal
from vlab.lab.load import LabError, load_lab, parse_lab
from vlab.lab.resolve import Shaper, host_switches
from vlab.lab.shaping import SLACK_FRAMES, Tbf, lab_qdiscs, tbf, tc_replace, vnic_qdiscs

LAB = load_lab(LABS / "traffic-shaping.yaml")


def pg(host: str, name: str):
    h = next(x for x in LAB.esxi_hosts if x.name == host)
    return next(p for sw in host_switches(LAB, h) for p in sw.port_groups if p.name == name)


def test_a_standard_port_group_inherits_its_vswitchs_outbound_policy():
    assert pg("esx1", "PG-Shaped").shaping.ingress == Shaper(100000, 300000, 10240)
    # A standard switch shapes outbound only: nothing toward the VM.
    assert pg("esx1", "PG-Shaped").shaping.egress is None
    # An override of one field (enabled: false) turns the inherited policy off.
    assert pg("esx1", "PG-Unshaped").shaping.ingress is None


def test_a_distributed_port_group_shapes_each_direction_on_its_own():
    limited = pg("esx2", "DPG-Limited").shaping
    assert limited.ingress.average_kbps == 50000 and limited.egress.average_kbps == 200000
    assert pg("esx2", "DPG-Open").shaping.ingress is None and pg("esx2", "DPG-Open").shaping.egress is None


def test_fields_inherit_one_by_one_and_unset_values_are_vsphere_defaults():
    from tests.unit.labedit import TWO_HOSTS

    data = copy.deepcopy(TWO_HOSTS)
    data["esxi_hosts"][0]["vswitches"][0]["shaping"] = {"enabled": True, "average_bandwidth": 20000}
    data["esxi_hosts"][0]["vswitches"][0]["port_groups"][1]["shaping"] = {"peak_bandwidth": 40000}
    lab = parse_lab(data, "lab.yaml")
    sw = host_switches(lab, lab.esxi_hosts[0])[0]
    # Port group PG-1G: its own peak, the vSwitch's average, vSphere's burst.
    assert sw.port_group("PG-1G").shaping.ingress == Shaper(20000, 40000, 102400)
    # Management sets nothing: the vSwitch's average, vSphere's peak and burst.
    assert sw.port_group("Management").shaping.ingress == Shaper(20000, 100000, 102400)


def test_link_scale_scales_rates_and_bytes_so_a_burst_lasts_as_long():
    q = tbf(Shaper(100000, 300000, 10240), 0.1, 1500)
    assert q == Tbf(rate_bps=10_000_000, peak_bps=30_000_000, burst_bytes=1_048_576, frame_bytes=1518)
    unscaled = tbf(Shaper(100000, 300000, 10240), 1, 1500)
    seconds = lambda x: x.burst_bytes * 8 / (x.peak_bps - x.rate_bps)  # noqa: E731
    assert seconds(q) == pytest.approx(seconds(unscaled))
    assert q.args() == [
        "tbf",
        "rate",
        "10000000bit",
        "burst",
        "1048576",
        "peakrate",
        "30000000bit",
        "mtu",
        str(SLACK_FRAMES * 1518),
        "limit",
        str(131_072),  # the queue behind the bucket: 2 x 64 KiB, more than 50 ms at 10 Mbit/s
    ]


def test_peak_equal_to_average_has_no_burst_bonus():
    # The kernel refuses peakrate = rate; no bonus can be spent faster anyway.
    q = tbf(Shaper(50000, 50000, 102400), 0.1, 1500)
    assert q.peak_bps is None and q.burst_bytes == SLACK_FRAMES * 1518
    assert "peakrate" not in q.args()


def test_each_shaped_direction_sits_on_the_sending_end_of_the_ports_cable():
    where = {(q.node, q.dev, q.direction): q.qdisc.rate_bps for q in lab_qdiscs(LAB)}
    assert where == {
        ("vm-std", "eth0", "ingress"): 10_000_000,  # in the guest: what it sends
        ("vm-dvs", "eth0", "ingress"): 5_000_000,
        ("esx2", "vm-dvs-eth0", "egress"): 20_000_000,  # the vSwitch's end: what it delivers
        ("esx1", "vmk1", "ingress"): 10_000_000,  # a VMkernel adapter: its internal port
    }
    assert tc_replace("eth0", None).startswith("tc qdisc del dev eth0 root")


def test_a_moved_vnic_takes_its_port_groups_policy_on_the_destination():
    hosts = {h.name: h for h in LAB.esxi_hosts}
    vm = next(v for v in LAB.vms if v.name == "vm-dvs")
    # A distributed port group's policy is the same on every member host:
    # after a vMotion to esx1 the egress qdisc is on esx1's end of the cable.
    moved = vnic_qdiscs(LAB, hosts["esx1"], vm.name, vm.vnics[0])
    assert [(q.node, q.dev, q.qdisc.rate_bps) for q in moved] == [
        ("vm-dvs", "eth0", 5_000_000),
        ("esx1", "vm-dvs-eth0", 20_000_000),
    ]
    # An unshaped port group removes whatever the cable had.
    sink = next(v for v in LAB.vms if v.name == "sink")
    assert [q.qdisc for q in vnic_qdiscs(LAB, hosts["esx1"], sink.name, sink.vnics[0])] == [None, None]


SHAPING = {"enabled": True, "average_bandwidth": 100000, "peak_bandwidth": 300000, "burst_size": 10240}
INVALID = [
    case(
        "peak-below-average",
        put(f"{VSW0}.shaping", {**SHAPING, "peak_bandwidth": 50000}),
        f"{VSW0}.shaping: peak_bandwidth 50000 Kbit/s is below average_bandwidth 100000 Kbit/s "
        "(vSphere: the peak can never be smaller than the average)",
    ),
    case(
        "burst-below-one-frame",
        put(f"{PG_1G}.shaping", {**SHAPING, "burst_size": 10}),
        f"{PG_1G}.shaping: burst_size 10 KB x link_scale 0.01 = 102 bytes, less than one "
        "1518-byte frame of this vSwitch's MTU 1500: no burst could ever be sent "
        "(raise burst_size or link_scale)",
    ),
    case(
        "burst-longer-than-tbf-holds",
        put(f"{PG_1G}.shaping", {**SHAPING, "average_bandwidth": 100, "peak_bandwidth": 200}),
        f"{PG_1G}.shaping: burst_size 10240 KB at average_bandwidth 100 Kbit/s is 839 s of burst bonus; "
        "the emulated shaper (Linux tbf) holds at most 270 s (lower burst_size or raise average_bandwidth)",
    ),
    case(
        "burst-beyond-32-bits",
        put(
            f"{PG_1G}.shaping",
            {
                "enabled": True,
                "average_bandwidth": 20_000_000,
                "peak_bandwidth": 40_000_000,
                "burst_size": 500_000_000,
            },
        ),
        f"{PG_1G}.shaping: burst_size 500000000 KB x link_scale 0.01 = 5120000000 bytes; the emulated "
        "shaper (Linux tbf) holds at most 4294967295 (lower burst_size)",
    ),
    case(
        "standard-egress",
        put(f"{PG_1G}.egress_shaping", {"enabled": True}),
        f"{PG_1G}.egress_shaping: a standard switch shapes outbound traffic only: use shaping "
        "(ingress and egress shaping are distributed port group policies)",
    ),
    case(
        "distributed-shaping",
        put(f"{DVS}.port_groups[0].shaping", {"enabled": True}),
        f"{DVS}.port_groups[0].shaping: a distributed port group shapes each direction on its own: use "
        "ingress_shaping (what its ports send into the switch) and egress_shaping (what the switch "
        "delivers to them)",
        base="dvs",
    ),
    case(
        "peak-unit-typo",
        put(f"{VSW0}.shaping", {**SHAPING, "peak_kbps": 1}),
        f"{VSW0}.shaping.peak_kbps: unknown key",
    ),
]


@pytest.mark.parametrize("base, edit, expected", INVALID)
def test_invalid_shaping(base, edit, expected):
    assert refusal(base, edit) == expected


def test_a_rate_above_what_links_emulate_is_refused():
    from tests.unit.labedit import DVS_LAB

    data = copy.deepcopy(DVS_LAB)
    data["link_scale"] = 0.1
    data["distributed_switches"][0]["port_groups"][0]["ingress_shaping"] = {
        "enabled": True,
        "average_bandwidth": 100000,
        "peak_bandwidth": 50_000_000,
    }
    from vlab.lab.load import LabError

    with pytest.raises(LabError) as err:
        parse_lab(data, "lab.yaml")
    assert str(err.value) == (
        f"lab.yaml: {DVS}.port_groups[0].ingress_shaping: 5000 Mbit/s after link_scale 0.1; emulated "
        "rates must stay at or below 1000 Mbit/s (lower link_scale)"
    )


def test_egress_shaping_toward_a_vmkernel_adapter_is_refused():
    from tests.unit.labedit import DVS_LAB

    data = copy.deepcopy(DVS_LAB)
    data["esxi_hosts"][1]["vmkernel"].append({"name": "vmk1", "port_group": "DPG-10", "ip": "10.10.0.99/24"})
    data["distributed_switches"][0]["port_groups"][0]["egress_shaping"] = {"enabled": True}
    with pytest.raises(LabError) as err:
        parse_lab(data, "lab.yaml")
    assert str(err.value) == (
        f"lab.yaml: {DVS}.port_groups[0].egress_shaping: DPG-10 has a VMkernel adapter (esx2/vmk1): "
        "shaping what the switch delivers to a VMkernel port is not emulated (OVS writes into its "
        "internal port past any qdisc)"
    )
    # What the vmk sends (ingress) is shaped on its internal port.
    data["distributed_switches"][0]["port_groups"][0]["egress_shaping"] = {}
    data["distributed_switches"][0]["port_groups"][0]["ingress_shaping"] = {"enabled": True}
    lab = parse_lab(data, "lab.yaml")
    assert [(q.node, q.dev, q.qdisc.rate_bps) for q in lab_qdiscs(lab)] == [
        ("vm1", "eth0", 1_000_000),
        ("esx2", "vmk1", 1_000_000),
    ]


def test_shaping_the_vteps_port_group_is_refused():
    data = yaml.safe_load((LABS / "nsx-overlay.yaml").read_text())
    vtep_pg = data["esxi_hosts"][0]["vmkernel"][0]["port_group"]
    d, k = next(
        (d, k)
        for d, dvs in enumerate(data["distributed_switches"])
        for k, p in enumerate(dvs["port_groups"])
        if p["name"] == vtep_pg
    )
    data["distributed_switches"][d]["port_groups"][k]["ingress_shaping"] = {"enabled": True}
    with pytest.raises(LabError) as err:
        parse_lab(data, "lab.yaml")
    assert str(err.value) == (
        f"lab.yaml: distributed_switches[{d}].port_groups[{k}].ingress_shaping: {vtep_pg} carries a VTEP: "
        "shaping it is not emulated (OVS's userspace VXLAN sends the overlay past the vmk's qdisc)"
    )


def _trace(rates_and_seconds: list[tuple[float, float]], frame: int = 1518) -> list[tuple[float, int]]:
    """Frames of ``frame`` bytes back to back at each (bit/s, seconds) in turn."""
    out, t = [], 100.0
    for bps, seconds in rates_and_seconds:
        gap, end = frame * 8 / bps, t + seconds
        while t < end:
            out.append((t, frame))
            t += gap
    return out


def test_profile_reads_the_burst_and_the_steady_rate_off_the_frames():
    # 30 Mbit/s for 0.4 s, then 10 Mbit/s: 0.4 s x 20 Mbit/s = 1 MB ahead.
    p = profile(_trace([(30e6, 0.4), (10e6, 4.0)]), 10e6)
    assert p["above_average_bytes"] == pytest.approx(1_000_000, rel=0.01)
    assert p["burst_end_s"] == pytest.approx(0.4, abs=0.01)
    assert p["burst_bps"] == pytest.approx(30e6, rel=0.01)
    assert p["steady_bps"] == pytest.approx(10e6, rel=0.001)
    assert p["steady_from_s"] == pytest.approx(0.4 + 0.5, abs=0.01)


def test_an_unshaped_transfer_has_only_a_steady_rate():
    p = profile(_trace([(90e6, 2.0)]), None)
    assert p["above_average_bytes"] is None and p["burst_bps"] is None
    assert p["steady_bps"] == pytest.approx(90e6, rel=0.001)

"""Experiment ``traffic-shaping``: vSphere's traffic shaping policy with
real TCP, as the vSphere Networking guide ("Traffic Shaping Policy")
documents it.

Lab ``labs/traffic-shaping.yaml``: esx1's standard vSwitch0 shapes outbound
traffic (average 100000 Kbit/s, peak 300000 Kbit/s, burst 10240 KB), which
port group PG-Shaped inherits (a VM and a VMkernel adapter on it) and
PG-Unshaped overrides (disabled); esx2's
distributed port group DPG-Limited shapes ingress (50000 Kbit/s) and egress
(200000 Kbit/s). Every value is scaled by the lab's ``link_scale`` (0.1), as
link speeds are (``vlab.lab.shaping``).

Each case is one iperf3 TCP transfer between two VMs; the receiving guest
captures the transfer's frames, and the rate is taken from their arrival
times and lengths (Ethernet frames without FCS: what the shaper counts).

What vSphere documents, and the claims:

* a port sends at the average bandwidth "averaged over time": the steady
  rate of each shaped direction is the average, within 5% (the issue's
  bound; tbf's rate is exact, so this is the TCP sender's and the
  measurement's share);
* "a port might gain a burst bonus if it does not use all its allocated
  bandwidth" and may then send up to the peak bandwidth until the bonus,
  at most the burst size, is spent: a transfer after idle runs at the peak
  and sends burst-size bytes more than the average would allow before it
  settles. Within 10% ("about" burst-size bytes; TCP's slow start spends
  its first few round trips, ~1% of the burst here, below the peak);
* a standard switch shapes outbound traffic only, and a port group's
  setting overrides its vSwitch's: traffic to a VM on PG-Shaped, and from
  one on PG-Unshaped, is not shaped (it runs faster than the peak by more
  than half again: the 1 GbE uplink is three times the peak);
* a distributed port group shapes ingress (what the VM sends into the
  switch) and egress (what the switch delivers to the VM) on their own.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from experiments.common import RESULTS, Progress, environment, iperf3, lab_session, save_figure, verdicts_of
from experiments.fidelity import CpuMeter, shaping_drops
from experiments.fidelity import summary as fidelity_summary
from vlab import naming
from vlab.lab.resolve import switch_of_port_group
from vlab.lab.shaping import tbf

if TYPE_CHECKING:
    from topologies.network import LabNetwork

NAME = "traffic-shaping"
LAB = Path(__file__).resolve().parents[1] / "labs" / "traffic-shaping.yaml"
# case -> (sender, receiver, which direction of whose port shapes it, or None);
# a VMkernel adapter is ``host/vmkN``.
CASES = {
    "vss-outbound": ("vm-std", "sink", ("vm-std", "ingress")),
    "vss-vmkernel": ("esx1/vmk1", "sink", ("esx1/vmk1", "ingress")),
    "vss-inbound": ("sink", "vm-std", None),
    "vss-override": ("vm-free", "sink", None),
    "vds-ingress": ("vm-dvs", "sink", ("vm-dvs", "ingress")),
    "vds-egress": ("sink", "vm-dvs", ("vm-dvs", "egress")),
}
AVERAGE_TOLERANCE = 0.05  # the "within 5%"
BURST_TOLERANCE = 0.10  # vSphere's "about" burst-size bytes, at about the peak
UNSHAPED_OVER_PEAK = 1.5  # an unshaped transfer beats the policy's peak by half again
BIN_S = 0.05  # the rate-over-time figure's resolution
SETTLE_S = 0.5  # after the burst ends, before the steady rate is measured
DEFAULTS = {"seconds": 6.0}
CLAIMS = {
    "standard_switch_shapes_outbound_to_the_average": ("vss-outbound", "vss-vmkernel"),
    "burst_bonus_spent_at_the_peak": ("vss-outbound",),
    "standard_switch_leaves_inbound_and_overridden_port_groups_unshaped": ("vss-inbound", "vss-override"),
    "distributed_port_group_shapes_ingress_and_egress": ("vds-ingress", "vds-egress"),
}


def _port_group(net: LabNetwork, who: str):
    """(vSwitch, port group) of a VM's first vNIC where it runs now, or of
    a VMkernel adapter ``host/vmkN``, in the lab as it runs now (after any
    esxcli ``... set``)."""
    ctl = net.control
    lab = ctl.lab
    if "/" in who:
        host, vmk = who.split("/")
        group = next(v.port_group for v in ctl.esxi(host).vmkernel if v.name == vmk)
    else:
        nic = next(x for x in lab.vms if x.name == who).vnics[0]
        host, group = ctl.placement()[naming.vnic_port(who, nic.name)].host, nic.port_group
    return switch_of_port_group(lab, ctl.esxi(host), group)


def policy(net: LabNetwork, who: str, direction: str) -> Optional[dict]:
    """The shaping of ``who``'s port in ``direction`` as emulated (bit/s
    and bytes after ``link_scale``), or None where it runs unshaped."""
    lab = net.control.lab
    sw, pg = _port_group(net, who)
    shaper = getattr(pg.shaping, direction)
    if shaper is None:
        return None
    q = tbf(shaper, lab.link_scale, sw.mtu)
    return {
        "port_group": pg.name,
        "vsphere": {
            "average_kbps": shaper.average_kbps,
            "peak_kbps": shaper.peak_kbps,
            "burst_kb": shaper.burst_kb,
        },
        "average_bps": q.rate_bps,
        "peak_bps": q.peak_bps or q.rate_bps,
        "burst_bytes": q.burst_bytes if q.peak_bps is not None else 0,
    }


def arrivals(pcap: Path) -> list[tuple[float, int]]:
    """(time, frame length) of every frame in ``pcap``."""
    from scapy.utils import RawPcapReader

    if not pcap.exists() or pcap.stat().st_size == 0:
        return []
    with RawPcapReader(str(pcap)) as reader:
        return [(m.sec + m.usec / 1e6, m.wirelen) for _, m in reader]


def profile(frames: list[tuple[float, int]], average_bps: float | None) -> dict:
    """The shape of one transfer from its frames at the receiver.

    * ``above_average_bytes``: the most the transfer got ahead of a sender
      at exactly ``average_bps`` from its first frame (the burst bonus spent),
      and ``burst_end_s`` when it was first within 1% of that lead (after
      the burst the lead stays flat, up to the measurement's noise);
    * ``burst_bps``: the mean rate up to then;
    * ``steady_bps``: the mean rate from ``SETTLE_S`` after the burst (after
      the first frame, for an unshaped transfer) to the last frame;
    * ``bins_bps``: the rate in ``BIN_S`` slices, for the figure."""
    t0 = frames[0][0]
    above = burst_bps = None
    burst_end = 0.0
    if average_bps:
        leads, total = [], 0
        for t, n in frames:
            total += n
            leads.append((t - t0, total - average_bps / 8 * (t - t0)))
        above = max(lead for _, lead in leads)
        burst_end = next(t for t, lead in leads if lead >= 0.99 * above)
        if burst_end > 0:
            burst_bps = round(sum(n for t, n in frames if t - t0 <= burst_end) * 8 / burst_end)
        above = round(above)
    start = burst_end + SETTLE_S
    steady = [(t - t0, n) for t, n in frames if t - t0 >= start]
    span = steady[-1][0] - steady[0][0] if len(steady) > 1 else 0.0
    bins = [0] * (int((frames[-1][0] - t0) / BIN_S) + 1)
    for t, n in frames:
        bins[int((t - t0) / BIN_S)] += n
    return {
        "frames": len(frames),
        "bytes": sum(n for _, n in frames),
        "duration_s": round(frames[-1][0] - t0, 3),
        "above_average_bytes": above,
        "burst_end_s": round(burst_end, 3),
        "burst_bps": burst_bps,
        # A frame's bytes count from the previous frame's arrival, so the
        # first frame of the window is not in it.
        "steady_bps": round(sum(n for _, n in steady[1:]) * 8 / span) if span > 0 else None,
        "steady_from_s": round(start, 3),
        "bins_bps": [round(b * 8 / BIN_S) for b in bins],
    }


def _endpoint(net: LabNetwork, vm: str):
    return next(e for e in net.endpoints() if e.name == vm)


def measure(net: LabNetwork, work: Path, case: str, seconds: float = DEFAULTS["seconds"]) -> dict:
    """One case: a TCP transfer ``seconds`` long, its frames captured where
    the receiving guest receives them (only this transfer's: its addresses
    and port), the profile, and the policy that shapes it."""
    sender, receiver, shaped = CASES[case]
    port = 5201 + list(CASES).index(case)
    pol = policy(net, *shaped) if shaped else None
    if pol and pol["burst_bytes"]:
        # The bonus refills at the average rate while the port is idle: a
        # transfer right after another would start with less than a full
        # bucket. Waiting that long is the model (vSphere's bonus), not a poll.
        time.sleep(pol["burst_bytes"] * 8 / pol["average_bps"])
    src, dst = _endpoint(net, sender), _endpoint(net, receiver)
    cap = net.control.capture(
        work / f"{case}.pcap",
        port=naming.vnic_port(dst.node, "eth0"),
        bpf=f"tcp and src host {src.ip.ip} and dst host {dst.ip.ip} and dst port {port}",
        extra=["-s", "96"],
    )
    try:
        tcp = iperf3(net, dst, src, seconds=seconds, port=port)
    finally:
        pcap = cap.stop()
    frames = arrivals(pcap)
    if not frames:
        raise RuntimeError(f"{case}: no frame of the transfer reached {receiver}'s capture")
    prof = profile(frames, pol["average_bps"] if pol else None)
    return {"sender": sender, "receiver": receiver, "shaped_by": shaped, "policy": pol, "iperf3": tcp, **prof}


def _within(measured, expected, tolerance: float) -> bool:
    return measured is not None and abs(measured - expected) <= tolerance * expected


def verdicts(cases: dict, reference_peak_bps: float) -> dict:
    """Each claim's verdict from the measured cases (see the module docstring)."""
    vss = cases["vss-outbound"]
    pol = vss["policy"]
    return {
        "standard_switch_shapes_outbound_to_the_average": all(
            _within(cases[c]["steady_bps"], cases[c]["policy"]["average_bps"], AVERAGE_TOLERANCE)
            for c in ("vss-outbound", "vss-vmkernel")
        ),
        "burst_bonus_spent_at_the_peak": _within(vss["burst_bps"], pol["peak_bps"], BURST_TOLERANCE)
        and _within(vss["above_average_bytes"], pol["burst_bytes"], BURST_TOLERANCE),
        "standard_switch_leaves_inbound_and_overridden_port_groups_unshaped": all(
            (cases[c]["steady_bps"] or 0) > UNSHAPED_OVER_PEAK * reference_peak_bps
            for c in ("vss-inbound", "vss-override")
        ),
        "distributed_port_group_shapes_ingress_and_egress": all(
            _within(cases[c]["steady_bps"], cases[c]["policy"]["average_bps"], AVERAGE_TOLERANCE)
            for c in ("vds-ingress", "vds-egress")
        ),
    }


def run(params: dict | None = None) -> dict:
    p = {**DEFAULTS, **(params or {})}
    t0 = time.monotonic()
    work = RESULTS / NAME / "pcaps"
    work.mkdir(parents=True, exist_ok=True)
    cpu, phase = CpuMeter(), Progress(NAME)
    with lab_session(LAB) as net:
        cpu.start()
        cases = {}
        for case, (sender, receiver, _) in CASES.items():
            phase(f"{case}: TCP {sender} -> {receiver} for {p['seconds']:g} s")
            cases[case] = measure(net, work, case, p["seconds"])
        cpu.stop()
        env, drops = environment(net), shaping_drops(net)
    verdict = verdicts(cases, cases["vss-outbound"]["policy"]["peak_bps"])
    claims = {claim: {"cases": list(cs), "verdict": verdict[claim]} for claim, cs in CLAIMS.items()}
    for c in cases.values():
        if c["shaped_by"] is None:
            del c["bins_bps"]  # only the shaped cases' curves are drawn
    return {
        "experiment": NAME,
        "lab": str(LAB.relative_to(LAB.parents[1])),
        "params": p,
        "tolerances": {
            "average": AVERAGE_TOLERANCE,
            "burst": BURST_TOLERANCE,
            "unshaped_over_peak": UNSHAPED_OVER_PEAK,
        },
        "environment": env,
        "cases": cases,
        "claims": claims,
        "verdicts": verdicts_of(claims),
        "fidelity": fidelity_summary(cpu, drops, frames_counted=False),
        "wall_s": round(time.monotonic() - t0, 1),
    }


def plot(result: dict, outdir: Path) -> list[Path]:
    """(a) vss-outbound's rate over time against its average and peak, (b)
    every case's steady rate against its configured average."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(7.0, 2.8), gridspec_kw={"width_ratios": [1.4, 1]})
    c = result["cases"]["vss-outbound"]
    pol = c["policy"]
    xs = [i * BIN_S for i in range(len(c["bins_bps"]))]
    a.step(xs, [v / 1e6 for v in c["bins_bps"]], where="post", color="#0072B2", lw=1, label="measured")
    a.axhline(pol["peak_bps"] / 1e6, color="#D55E00", ls="--", lw=1, label="peak")
    a.axhline(pol["average_bps"] / 1e6, color="#009E73", ls=":", lw=1.2, label="average")
    a.axvline(c["burst_end_s"], color="#999999", lw=0.8)
    a.set_xlabel("time since the first frame (s)")
    a.set_ylabel(f"Mbit/s (per {BIN_S * 1000:g} ms)")
    a.set_title(
        f"(a) vSS outbound: {c['above_average_bytes'] / 1024:.0f} KiB above the average\n"
        f"(burst size {pol['burst_bytes'] / 1024:.0f} KiB after link_scale)",
        fontsize=8,
    )
    a.set_ylim(0, pol["peak_bps"] / 1e6 * 1.2)
    a.legend(fontsize=7, loc="center right", frameon=False)
    names = list(result["cases"])
    rates = [result["cases"][n]["steady_bps"] or 0 for n in names]
    configured = [(result["cases"][n]["policy"] or {}).get("average_bps") for n in names]
    ys = range(len(names))
    b.barh(list(ys), [r / 1e6 for r in rates], color="#0072B2", height=0.6)
    for y, r, cfg in zip(ys, rates, configured):
        b.text(r / 1e6, y, f" {r / 1e6:.1f}", va="center", fontsize=7)
        if cfg:
            b.plot([cfg / 1e6] * 2, [y - 0.4, y + 0.4], color="#009E73", lw=1.5)
    b.set_yticks(list(ys), names, fontsize=7)
    b.invert_yaxis()
    b.set_xlabel("steady TCP rate (Mbit/s)")
    b.set_title("(b) every case (green: its average)", fontsize=8)
    b.set_xlim(0, max(rates) / 1e6 * 1.25)
    fig.tight_layout()
    return save_figure(fig, outdir, NAME)


def _mbps(bps) -> str:
    return "n/a" if bps is None else f"{bps / 1e6:.2f} Mbit/s"


def _steady(r: dict, case: str) -> str:
    c = r["cases"][case]
    return f"{case}: {_mbps(c['steady_bps'])} (average {_mbps(c['policy']['average_bps'])})"


MEASURED = {
    "standard_switch_shapes_outbound_to_the_average": lambda r: "; ".join(
        _steady(r, c) for c in ("vss-outbound", "vss-vmkernel")
    ),
    "burst_bonus_spent_at_the_peak": lambda r: (
        "{:.0f} KiB above the average (burst {:.0f} KiB) at {} (peak {})".format(
            r["cases"]["vss-outbound"]["above_average_bytes"] / 1024,
            r["cases"]["vss-outbound"]["policy"]["burst_bytes"] / 1024,
            _mbps(r["cases"]["vss-outbound"]["burst_bps"]),
            _mbps(r["cases"]["vss-outbound"]["policy"]["peak_bps"]),
        )
    ),
    "standard_switch_leaves_inbound_and_overridden_port_groups_unshaped": lambda r: "; ".join(
        f"{c}: {_mbps(r['cases'][c]['steady_bps'])}" for c in ("vss-inbound", "vss-override")
    ),
    "distributed_port_group_shapes_ingress_and_egress": lambda r: "; ".join(
        _steady(r, c) for c in ("vds-ingress", "vds-egress")
    ),
}

# Key numbers for `vlab run --repeat N`.
METRICS = {
    "vss-outbound steady / average": lambda r: (
        r["cases"]["vss-outbound"]["steady_bps"] / r["cases"]["vss-outbound"]["policy"]["average_bps"]
    ),
    "burst above average / burst size": lambda r: (
        r["cases"]["vss-outbound"]["above_average_bytes"]
        / r["cases"]["vss-outbound"]["policy"]["burst_bytes"]
    ),
}

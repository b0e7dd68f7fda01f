"""Experiment ``teaming-policies``: vSphere's teaming and failover policies,
as the vSphere Networking guide ("Teaming and Failover Policy") and VMware
KB 1005577 (beacon probing) document them, with real frames.

Lab ``labs/teaming.yaml`` (one host, a vSwitch of three uplinks and one of
two in a static LAG) and ``labs/beacon-probing.yaml`` (three access switches
under a core):

1. IP hash: each IPv4 packet leaves by (last octet of source XOR destination)
   mod the number of uplinks; counted per LAG member for eight destinations;
   a member failure moves its flows to the survivor and recovery brings them
   back; a ping through the port channel gets every reply once.
2. Explicit failover order: the standby takes over when the active link
   dies; with failback yes the recovered uplink takes the port back, with
   failback no the standby keeps it (counted per uplink, before, during and
   after the failure).
3. Beacon probing against link status, a failure beyond the first switch (an
   access-to-core link pulled, every host link up): per trial, a VM on each
   policy pings ext ten times a second across the failure; the beacon-probing
   VM is without replies at most as long as three missed beacons and two more
   intervals take, the link-status VM gets no reply while the link is out.
4. Beacon probing over two uplinks: neither hears the other, the vSwitch
   cannot tell which failed and sends on both (shotgun).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from experiments import pings, settle
from experiments.common import (
    RESULTS,
    Progress,
    count_frames,
    environment,
    lab_session,
    repo_paths,
    save_figure,
    send_frames,
    stop_tool,
    tagged,
    verdicts_of,
    vm_mac,
)
from experiments.fidelity import CpuMeter, shaping_drops
from experiments.fidelity import summary as fidelity_summary
from vlab import naming
from vlab.waiting import wait_for

if TYPE_CHECKING:
    from topologies.network import LabNetwork

NAME = "teaming-policies"
REPO = Path(__file__).resolve().parents[1]
LABS = {"teaming": REPO / "labs" / "teaming.yaml", "beacon": REPO / "labs" / "beacon-probing.yaml"}
EXT_VLAN20, EXT_VLAN40 = "00:50:56:0e:0e:02", "00:50:56:0e:0e:04"
IH_IP, LAG = "10.0.40.5", ("vmnic3", "vmnic4")
DEFAULTS = {"frames": 10, "trials": 3, "ping_interval_s": 0.1, "failure_s": 8.0}


# -- counting frames per uplink ----------------------------------------------------------
def uplink_captures(net: LabNetwork, work: Path, name: str, uplinks, host: str = "esx1") -> dict:
    """A capture of what each uplink sends (at its physical switch port)."""
    ctl = net.control
    return {u: ctl.capture(work / f"{name}-{u}.pcap", uplink=(host, u), direction="tx") for u in uplinks}


def by_uplink(caps: dict, tag: str, n: int) -> dict[str, int]:
    """{uplink: frames with ``tag``} once all ``n`` have left, somewhere
    (each frame leaves once; a duplicate on another uplink may still be on
    its way: ``recount`` after the captures stop has the final numbers)."""
    wait_for(
        lambda: sum(count_frames(c.pcap, tagged(tag)) for c in caps.values()) >= n,
        10,
        f"{n} frames tagged {tag} out of {', '.join(caps)}",
    )
    return recount(caps, tag)


def recount(caps: dict, tag: str) -> dict[str, int]:
    return {u: count_frames(c.pcap, tagged(tag)) for u, c in caps.items()}


def pin(net: LabNetwork, vm: str, host: str = "esx1"):
    return net.control.applied()["pinning"][host].get(naming.vnic_port(vm, "eth0"))


def _stop(caps: dict) -> None:
    for c in caps.values():
        c.stop()


# -- 1. IP hash over a static LAG ---------------------------------------------------------
def ip_hash_member(dst_octet: int) -> str:
    """The LAG member vSphere's documented hash picks for ih -> 10.0.40.d."""
    return LAG[(int(IH_IP.rsplit(".", 1)[1]) ^ dst_octet) % len(LAG)]


def _ip_hash_tag(step: str, d: int) -> str:
    return f":ih-{step}-{d};"


def _ip_hash_batch(net: LabNetwork, caps: dict, d: int, step: str, n: int) -> dict[str, int]:
    tag = _ip_hash_tag(step, d)
    extra = ["--ip-src", IH_IP, "--ip-dst", f"10.0.40.{d}"]
    send_frames(net, "ih", vm_mac(net, "ih"), EXT_VLAN40, tag, n, extra=extra)
    return by_uplink(caps, tag, n)


def measure_ip_hash(net: LabNetwork, work: Path, n: int = DEFAULTS["frames"]) -> dict:
    ctl = net.control
    caps = uplink_captures(net, work, "iphash", LAG)
    try:
        spread = {d: _ip_hash_batch(net, caps, d, "spread", n) for d in range(1, 9)}
        ctl.uplink("esx1", "vmnic3", up=False)
        wait_for(lambda: "vmnic3" in ctl.applied()["uplinks_down"].get("esx1", []), 10, "vmnic3 down")
        failed = {d: _ip_hash_batch(net, caps, d, "failed", n) for d in (1, 2)}
        ctl.uplink("esx1", "vmnic3", up=True)
        wait_for(lambda: "vmnic3" not in ctl.applied()["uplinks_down"].get("esx1", []), 10, "vmnic3 up")
        recovered = {d: _ip_hash_batch(net, caps, d, "recovered", n) for d in (1, 2)}
    finally:
        ctl.uplink("esx1", "vmnic3", up=True)
        _stop(caps)
    # The final counts, from the stopped (drained) captures.
    spread = {d: recount(caps, _ip_hash_tag("spread", d)) for d in spread}
    failed = {d: recount(caps, _ip_hash_tag("failed", d)) for d in failed}
    recovered = {d: recount(caps, _ip_hash_tag("recovered", d)) for d in recovered}
    # The physical side is one port channel: every reply comes back once.
    out = net.node("ih").cmd("ping -n -c 5 -i 0.2 -W 2 10.0.40.100")
    documented = {d: {u: n if u == ip_hash_member(d) else 0 for u in LAG} for d in spread}
    ok = (
        spread == documented
        and all(c == {"vmnic3": 0, "vmnic4": n} for c in failed.values())
        and recovered == {d: documented[d] for d in recovered}
        and " 0% packet loss" in out
        and "DUP" not in out
    )
    return {
        "sent_each": n,
        "spread": spread,
        "documented": documented,
        "member_failed": failed,
        "member_recovered": recovered,
        "ping_through_lag": out.strip().splitlines()[-2:] if out.strip() else [],
        "verdict": ok,
    }


# -- 2. explicit failover order, failback yes and no ----------------------------------------
def measure_failback(net: LabNetwork, work: Path, n: int = DEFAULTS["frames"]) -> dict:
    """fb (failback yes) and nofb (failback no) share the order vmnic0, then
    vmnic1; one cable pull and its return."""
    ctl, vms = net.control, ("fb", "nofb")
    caps = uplink_captures(net, work, "failover", ("vmnic0", "vmnic1"))
    counts: dict[str, dict[str, dict[str, int]]] = {vm: {} for vm in vms}

    def batch(step):
        for vm in vms:
            send_frames(net, vm, vm_mac(net, vm), EXT_VLAN20, f":{vm}-{step};", n)
        for vm in vms:
            counts[vm][step] = by_uplink(caps, f":{vm}-{step};", n)

    try:
        batch("before")
        ctl.uplink("esx1", "vmnic0", up=False)
        wait_for(lambda: {pin(net, vm) for vm in vms} == {"vmnic1"}, 10, "fb and nofb on vmnic1")
        batch("failed")
        ctl.uplink("esx1", "vmnic0", up=True)
        wait_for(lambda: pin(net, "fb") == "vmnic0", 10, "fb failing back to vmnic0")
        batch("recovered")
    finally:
        ctl.uplink("esx1", "vmnic0", up=True)
        _stop(caps)
    counts = {vm: {step: recount(caps, f":{vm}-{step};") for step in steps} for vm, steps in counts.items()}
    on = {u: {"vmnic0": n if u == "vmnic0" else 0, "vmnic1": n if u == "vmnic1" else 0} for u in caps}
    documented = {
        "fb": {"before": on["vmnic0"], "failed": on["vmnic1"], "recovered": on["vmnic0"]},
        "nofb": {"before": on["vmnic0"], "failed": on["vmnic1"], "recovered": on["vmnic1"]},
    }
    return {"sent_each": n, "counts": counts, "documented": documented, "verdict": counts == documented}


# -- 3. beacon probing against link status --------------------------------------------------
# An uplink is failed after MISSED_BEACONS silent intervals; the controller
# judges once per interval, so the beacon-probing VM loses at most one more
# interval, plus one for the re-pinned flows and the ping in flight.
def beacon_outage_limit_s() -> float:
    from controller.beacon import BEACON_INTERVAL_S, MISSED_BEACONS

    return (MISSED_BEACONS + 2) * BEACON_INTERVAL_S


def _on_vmnic0(net: LabNetwork, vms) -> str:
    return next(vm for vm in vms if pin(net, vm) == "vmnic0")


def measure_upstream_failure(net: LabNetwork, work: Path, trial: int, p: dict) -> dict:
    """Pull acc1-core for ``failure_s`` while a beacon-probing and a
    link-status VM, both on vmnic0, ping ext every ``ping_interval_s``."""
    ctl, interval = net.control, p["ping_interval_s"]
    vms = {
        "beacon_probing": _on_vmnic0(net, ("b0", "b1", "b2")),
        "link_status": _on_vmnic0(net, ("l0", "l1", "l2")),
    }
    count = int((p["failure_s"] + 2 * beacon_outage_limit_s() + 4) / interval)
    out = {k: work / f"upstream-{trial}-{vm}.txt" for k, vm in vms.items()}
    sinks = {k: open(path, "w") for k, path in out.items()}
    argv = ["ping", "-n", "-D", "-i", str(interval), "-c", str(count), "-W", "1", "10.0.10.100"]
    procs = {k: net.node(vm).popen(argv, stdout=sinks[k], stderr=sinks[k]) for k, vm in vms.items()}
    try:
        wait_for(lambda: all(pings.replies(f) for f in out.values()), 10, "first replies at both VMs")
        t_down = time.time()
        ctl.dci_link("acc1-core", up=False)
        try:
            wait_for(lambda: pin(net, vms["beacon_probing"]) != "vmnic0", 15, "beacon-probing failover")
            moved_to = pin(net, vms["beacon_probing"])
            link_pin = pin(net, vms["link_status"])
            wait_for(
                lambda: time.time() - t_down >= p["failure_s"], p["failure_s"] + 1, "the failure's length"
            )
        finally:
            t_up = time.time()
            ctl.dci_link("acc1-core", up=True)
        wait_for(lambda: pin(net, vms["beacon_probing"]) == "vmnic0", 15, "beacon-probing failback")
        for proc in procs.values():
            proc.wait(timeout=count * interval + 10)
    finally:
        for k, proc in procs.items():
            stop_tool(proc)
            sinks[k].close()
    events = [
        e for e in ctl.events() if e["event"] == "beacon" and e["vswitch"] == "vSwitch0" and e["t"] >= t_down
    ]
    detected = next((e["t"] - t_down for e in events if "vmnic0" in e["failed"]), None)
    restored = next((e["t"] - t_up for e in events if e["t"] >= t_up and "vmnic0" not in e["failed"]), None)
    window = t_up - t_down
    series = {}
    for k, path in out.items():
        got = pings.replies(path)
        rel = [round(t - t_down, 3) for _, t in pings.reply_times(path)]
        gaps = [b - a for a, b in zip(rel, rel[1:]) if b > 0 and a < window]
        series[k] = {
            "vm": vms[k],
            "lost": len(pings.lost(got)),
            "lost_s": round(len(pings.lost(got)) * interval, 2),
            # The longest time without a reply around the failure.
            "outage_s": round(max(gaps, default=0), 2),
            # Replies ping read while the path was out, past the 1 s it gives
            # a reply that crossed before the pull (its -W 1).
            "replies_while_out": sum(1 for t in rel if 1.0 < t < window),
            "replies_rel_s": rel,
        }
    return {
        "trial": trial,
        "failure_s": round(window, 2),
        "beacon_detected_after_s": None if detected is None else round(detected, 2),
        "beacon_restored_after_s": None if restored is None else round(restored, 2),
        "beacon_vm_moved_to": moved_to,
        "link_status_vm_stayed_on": link_pin,
        "series": series,
        # Beacon probing: back within the limit; link status: nothing while the path is out.
        "verdict": (
            moved_to in ("vmnic1", "vmnic2")
            and link_pin == "vmnic0"
            and series["beacon_probing"]["outage_s"] <= beacon_outage_limit_s()
            and series["link_status"]["replies_while_out"] == 0
        ),
    }


def _shotgun(net: LabNetwork) -> list[str]:
    return net.control.applied().get("shotgun", {}).get("esx1", [])


def measure_shotgun(net: LabNetwork, work: Path) -> dict:
    """vSwitch1's two beaconing uplinks when acc1-core is out."""
    from scapy.layers.inet import ICMP, IP

    ctl = net.control
    caps = uplink_captures(net, work, "shotgun", ("vmnic3", "vmnic4"))
    ctl.dci_link("acc1-core", up=False)
    try:
        wait_for(lambda: _shotgun(net) == ["vSwitch1"], 15, "vSwitch1 in shotgun")
        out = net.node("s0").cmd("ping -n -c 5 -i 0.2 -W 1 10.0.20.100")

        def requests(f):
            return ICMP in f and f[ICMP].type == 8 and f[IP].src == "10.0.20.10"

        # Each request leaves by both: wait for all five at each uplink.
        for c in caps.values():
            settle.wait_frames(c.pcap, 5, requests)
    finally:
        ctl.dci_link("acc1-core", up=True)
        _stop(caps)
    counts = {u: count_frames(c.pcap, requests) for u, c in caps.items()}
    wait_for(lambda: not _shotgun(net), 15, "vSwitch1 out of shotgun")
    return {
        "echo_requests_per_uplink": counts,
        "ping": out.strip().splitlines()[-2:] if out.strip() else [],
        "verdict": " 0% packet loss" in out and all(n >= 5 for n in counts.values()),
    }


# -- run and plot ------------------------------------------------------------------------------
def run(params: dict | None = None) -> dict:
    p = {**DEFAULTS, **(params or {})}
    t0 = time.monotonic()
    work = RESULTS / NAME / "pcaps"
    work.mkdir(parents=True, exist_ok=True)
    cpu, phase, drops, claims = CpuMeter(), Progress(NAME), {}, {}
    with lab_session(LABS["teaming"]) as net:
        cpu.start()
        phase("IP hash over a static LAG: eight destinations, a member failure and recovery")
        claims["ip_hash_per_packet_by_documented_hash"] = measure_ip_hash(net, work, p["frames"])
        phase("explicit failover order with failback yes and no")
        claims["explicit_failover_failback_yes_and_no"] = measure_failback(net, work, p["frames"])
        cpu.stop()
        drops.update({f"teaming/{k}": v for k, v in shaping_drops(net).items()})
    with lab_session(LABS["beacon"]) as net:
        cpu.start()
        trials = []
        for i in range(p["trials"]):
            phase(f"upstream failure, trial {i + 1}/{p['trials']}: beacon probing vs link status")
            trials.append(measure_upstream_failure(net, work, i, p))
        claims["beacon_probing_detects_an_upstream_failure"] = {
            "limit_s": beacon_outage_limit_s(),
            "trials": trials,
            "verdict": all(t["verdict"] for t in trials),
        }
        phase("two beaconing uplinks: shotgun")
        claims["beacon_probing_two_uplinks_shotgun"] = measure_shotgun(net, work)
        env = environment(net)
        cpu.stop()
        drops.update({f"beacon/{k}": v for k, v in shaping_drops(net).items()})
    return {
        "experiment": NAME,
        "labs": repo_paths(LABS),
        "params": p,
        "environment": env,
        "claims": claims,
        "verdicts": verdicts_of(claims),
        "fidelity": fidelity_summary(cpu, drops, frames_counted=True),
        "wall_s": round(time.monotonic() - t0, 1),
    }


def plot(result: dict, outdir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    claims = result["claims"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [1.6, 1, 1]})
    ax = axes[0]
    trial = claims["beacon_probing_detects_an_upstream_failure"]["trials"][0]
    for row, (k, colour) in enumerate((("beacon_probing", "#0072B2"), ("link_status", "#E69F00"))):
        s = trial["series"][k]
        ax.plot(s["replies_rel_s"], [row] * len(s["replies_rel_s"]), "|", color=colour, markersize=14)
    ax.axvspan(0, trial["failure_s"], color="#DDDDDD", label="acc1-core pulled")
    if trial["beacon_detected_after_s"] is not None:
        ax.axvline(trial["beacon_detected_after_s"], color="#0072B2", ls="--", label="beacons: vmnic0 failed")
    ax.set_yticks([0, 1], ["beacon probing", "link status"])
    ax.set_ylim(-0.6, 1.6)
    ax.set_xlabel("time since the pull (s); a mark per echo reply")
    ax.set_title("(a) upstream failure, a VM on vmnic0 under each policy")
    ax.legend(loc="upper right", fontsize=8)

    ax = axes[1]
    spread = claims["ip_hash_per_packet_by_documented_hash"]["spread"]
    ds = sorted(spread, key=int)
    ax.bar(
        [int(d) - 0.2 for d in ds], [spread[d]["vmnic3"] for d in ds], 0.4, label="vmnic3", color="#0072B2"
    )
    ax.bar(
        [int(d) + 0.2 for d in ds], [spread[d]["vmnic4"] for d in ds], 0.4, label="vmnic4", color="#009E73"
    )
    ax.set_xlabel("destination 10.0.40.d (source 10.0.40.5)")
    ax.set_ylabel("frames per LAG member")
    ax.set_title("(b) IP hash: (5 XOR d) mod 2 picks the member")
    ax.legend(fontsize=8)

    ax = axes[2]
    fb = claims["explicit_failover_failback_yes_and_no"]["counts"]
    steps = ("before", "failed", "recovered")
    for i, vm in enumerate(("fb", "nofb")):
        on0 = [fb[vm][s]["vmnic0"] for s in steps]
        on1 = [fb[vm][s]["vmnic1"] for s in steps]
        xs = [j + (i - 0.5) * 0.38 for j in range(3)]
        ax.bar(xs, on0, 0.36, color="#0072B2", label="vmnic0 (active)" if i == 0 else None)
        ax.bar(xs, on1, 0.36, bottom=on0, color="#E69F00", label="vmnic1 (standby)" if i == 0 else None)
        for x in xs:
            ax.text(x, 0.5, "yes" if vm == "fb" else "no", ha="center", color="white", fontsize=8)
    ax.set_xticks(range(3), steps)
    ax.set_ylim(0, 1.35 * max(sum(fb["fb"]["before"].values()), 1))  # room for the legend
    ax.set_ylabel("frames per uplink")
    ax.set_title("(c) explicit failover, failback yes / no")
    ax.legend(fontsize=8, loc="upper center", ncol=2)
    return save_figure(fig, outdir, NAME)


def _trials(r: dict) -> list[dict]:
    return r["claims"]["beacon_probing_detects_an_upstream_failure"]["trials"]


def _worst_outage(r: dict) -> float:
    return max(t["series"]["beacon_probing"]["outage_s"] for t in _trials(r))


def _ip_hash_line(r: dict) -> str:
    spread = r["claims"]["ip_hash_per_packet_by_documented_hash"]["spread"]
    members = " ".join(max(c, key=c.get)[-1] for _, c in sorted(spread.items(), key=lambda x: int(x[0])))
    return f"member (vmnic3/4) for d = 1..8: {members}; vmnic3 down: all on vmnic4"


def _failback_line(r: dict) -> str:
    counts = r["claims"]["explicit_failover_failback_yes_and_no"]["counts"]
    fb, nofb = (max(counts[vm]["recovered"], key=counts[vm]["recovered"].get) for vm in ("fb", "nofb"))
    return f"after recovery: failback yes on {fb}, failback no on {nofb}"


def _beacon_line(r: dict) -> str:
    def each(f):
        return "/".join(str(f(t)) for t in _trials(r))

    return (
        f"vmnic0 failed by beacons after {each(lambda t: t['beacon_detected_after_s'])} s; the "
        f"beacon-probing VM went {each(lambda t: t['series']['beacon_probing']['outage_s'])} s without "
        f"a reply; the link-status VM got {each(lambda t: t['series']['link_status']['replies_while_out'])} "
        f"replies in {each(lambda t: t['failure_s'])} s out"
    )


def _shotgun_line(r: dict) -> str:
    counts = r["claims"]["beacon_probing_two_uplinks_shotgun"]["echo_requests_per_uplink"]
    return "echo requests on vmnic3 / vmnic4: {} / {}".format(counts["vmnic3"], counts["vmnic4"])


METRICS = {
    "beacon detection (s)": lambda r: max(t["beacon_detected_after_s"] or float("inf") for t in _trials(r)),
    "beacon-probing VM outage (s)": _worst_outage,
}

MEASURED = {
    "ip_hash_per_packet_by_documented_hash": _ip_hash_line,
    "explicit_failover_failback_yes_and_no": _failback_line,
    "beacon_probing_detects_an_upstream_failure": _beacon_line,
    "beacon_probing_two_uplinks_shotgun": _shotgun_line,
}

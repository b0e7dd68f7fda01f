"""Experiment ``reverse-teaming``: seed 002, measured.

Part 1 (``labs/reverse-teaming.yaml``, the seed's test bed): vm11 on esx2
pings vm12 on esx1; the physical switch SPANs what it sends to esx1's vmnic2
onto vmnic3, so every frame reaches both uplinks. pktcap-style captures at
both uplinks, at vm12's ``PortOutput`` (before the reverse-teaming filter)
and ``VnicRx`` (what the guest gets) count the echo requests: duplicates at
PortOutput, none at VnicRx; PortOutput frames still carry VLAN 100.

Part 2 (``labs/reverse-teaming-promisc.yaml``): the seed's four-row table for
a promiscuous VM (spy, esx1), measured for several uplink assignments: the
spy's vNIC is reconnected to a new virtual port until port-ID teaming has
pinned it to each uplink in turn ("the flip when a VM gets a new port").
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from experiments import settle
from experiments.common import (
    RESULTS,
    Progress,
    count_frames,
    environment,
    guest_tool,
    lab_session,
    quiesce,
    save_figure,
    verdicts_of,
)
from experiments.fidelity import CpuMeter, shaping_drops
from experiments.fidelity import summary as fidelity_summary
from vlab import naming

if TYPE_CHECKING:
    from topologies.network import LabNetwork

NAME = "reverse-teaming"
LABS = Path(__file__).resolve().parents[1] / "labs"
SPAN_LAB = LABS / "reverse-teaming.yaml"
PROMISC_LAB = LABS / "reverse-teaming-promisc.yaml"
DEFAULTS = {"pings": 10, "frames": 20, "assignments": 2}

# The seed's table: (source, destination) -> visible?; None = "only when the
# uplinks match".
SEED_TABLE = {
    "same-host -> same-host": True,
    "same-host -> outside": True,
    "outside -> same-host": None,
    "outside -> outside": False,
}


def _vm(net: LabNetwork, name: str):
    return next(v for v in net.lab.vms if v.name == name)


def _is_echo_request_to(ip: str):
    from scapy.layers.inet import ICMP, IP

    return lambda p: IP in p and ICMP in p and p[IP].dst == ip and p[ICMP].type == 8


def _has_vlan(vid: int):
    from scapy.layers.l2 import Dot1Q

    return lambda p: Dot1Q in p and p[Dot1Q].vlan == vid


# -- part 1: duplicates at PortOutput, none at VnicRx ---------------------------------------
def measure_duplicates(net: LabNetwork, work: Path, pings: int = 10) -> dict:
    ctl = net.control
    target, pinger = _vm(net, "vm12"), _vm(net, "vm11")
    port = naming.vnic_port("vm12", "eth0")
    dst_ip = str(target.vnics[0].ip.ip)
    pinned = ctl.applied()["pinning"]["esx1"][port]
    caps = {
        f"uplink {u} (rx)": ctl.capture(
            work / f"dup-{u}.pcap", uplink=("esx1", u), bpf="icmp or (vlan and icmp)"
        )
        for u in ("vmnic2", "vmnic3")
    }
    caps["PortOutput"] = ctl.capture(work / "dup-portoutput.pcap", port=port, point="PortOutput")
    caps["VnicRx"] = ctl.capture(work / "dup-vnicrx.pcap", port=port, point="VnicRx", bpf="icmp")
    try:
        out = net.node(pinger.name).cmd(f"ping -n -q -c {pings} -i 0.2 -W 1 {dst_ip}")
        # Every request reached vm12; its SPAN copies, on the other uplink,
        # may still be on their way: wait for the counts the seed predicts.
        want = {
            "PortOutput": 2 * pings,
            "VnicRx": pings,
            **{f"uplink {u} (rx)": pings for u in ("vmnic2", "vmnic3")},
        }
        for k, n in want.items():
            settle.wait_frames(caps[k].pcap, n, _is_echo_request_to(dst_ip))
    finally:
        quiesce([c.pcap for c in caps.values()])
        pcaps = {k: c.stop() for k, c in caps.items()}
    is_req = _is_echo_request_to(dst_ip)
    counts = {k: count_frames(p, is_req) for k, p in pcaps.items()}
    tagged = {
        k: count_frames(p, lambda x: is_req(x) and _has_vlan(100)(x))
        for k, p in pcaps.items()
        if k in ("PortOutput", "VnicRx")
    }
    replies = int(out.split(" received")[0].split()[-1]) if " received" in out else 0
    ok = (
        counts["PortOutput"] == 2 * pings
        and counts["VnicRx"] == pings
        and tagged["PortOutput"] == 2 * pings
        and tagged["VnicRx"] == 0
        and all(counts[f"uplink {u} (rx)"] == pings for u in ("vmnic2", "vmnic3"))
        and replies == pings
    )
    return {
        "pings": pings,
        "replies": replies,
        "vm12_pinned_uplink": pinned,
        "echo_requests_seen": counts,
        "with_vlan_100_tag": tagged,
        "verdict": ok,
    }


# -- part 2: what a promiscuous VM sees ----------------------------------------------------------
def _prime(net: LabNetwork) -> None:
    """Every VM speaks once, so the physical switch knows where each MAC is."""
    for vm in net.lab.vms:
        mac = vm.vnics[0].mac
        guest_tool(
            net, vm.name, "frames", "--src", mac, "--dst", "ff:ff:ff:ff:ff:ff", "--count", 1, "--tag", "prime"
        )


def measure_visibility(net: LabNetwork, work: Path, label: str, frames: int = 20) -> dict:
    """One row set of the seed's table for the spy's current uplink."""
    ctl = net.control
    spy = naming.vnic_port("spy", "eth0")
    pins = ctl.applied()["pinning"]["esx1"]
    flows = {
        "same-host -> same-host": ("a1", "a2"),
        "same-host -> outside": ("a1", "b1"),
        "outside -> same-host": ("b1", "a1"),
        "outside -> outside": ("b1", "b2"),
    }
    cap = ctl.capture(work / f"spy-{label}.pcap", port=spy, point="VnicRx")
    for row, (src, dst) in flows.items():
        tag = f"{label}:{row}"
        guest_tool(
            net,
            src,
            "frames",
            "--src",
            _vm(net, src).vnics[0].mac,
            "--dst",
            _vm(net, dst).vnics[0].mac,
            "--count",
            frames,
            "--tag",
            tag,
        )
    # Wait for every frame of the rows the seed predicts visible. A row
    # predicted invisible is judged once the capture is quiet: a frame still
    # in flight then could hide a wrong visibility, never invent one.
    match = pins[spy] == pins[naming.vnic_port("a1", "eth0")]
    for row, expected in SEED_TABLE.items():
        if match if expected is None else expected:
            settle.wait_frames(cap.pcap, frames, lambda p, t=f"{label}:{row}": t.encode() in bytes(p))
    quiesce([cap.pcap])
    pcap = cap.stop()
    rows = {}
    for row in flows:
        seen = count_frames(pcap, lambda p, t=f"{label}:{row}": t.encode() in bytes(p))
        rows[row] = {"frames": frames, "seen_by_spy": seen, "visible": seen > 0}
    return {
        "spy_port": ctl.placement()[spy].ofport,
        "spy_uplink": pins[spy],
        "a1_uplink": pins[naming.vnic_port("a1", "eth0")],
        "uplinks_match": pins[spy] == pins[naming.vnic_port("a1", "eth0")],
        "rows": rows,
    }


def matches_seed(assignment: dict) -> bool:
    for row, expected in SEED_TABLE.items():
        want = assignment["uplinks_match"] if expected is None else expected
        if assignment["rows"][row]["visible"] != want:
            return False
    return True


def measure_table(net: LabNetwork, work: Path, assignments: int = 2, frames: int = 20) -> dict:
    ctl = net.control
    spy = naming.vnic_port("spy", "eth0")
    net.node("spy").cmd("ip link set eth0 promisc on")
    ctl.wait_guest(spy, lambda g: g["promiscuous"])
    _prime(net)
    results = [measure_visibility(net, work, "assignment0", frames)]
    seen, reconnects = {results[0]["spy_uplink"]}, 0
    while len(results) < assignments and reconnects < 8:
        ctl.reconnect("spy")  # a new virtual port, perhaps a new uplink
        reconnects += 1
        pin = ctl.applied()["pinning"]["esx1"][spy]
        if pin in seen and len(seen) < 2:
            continue  # same uplink again: take another port
        seen.add(pin)
        results.append(measure_visibility(net, work, f"assignment{len(results)}", frames))
    for a in results:
        a["matches_seed"] = matches_seed(a)
    covered = {a["uplinks_match"] for a in results}
    return {
        "assignments": results,
        "reconnects": reconnects,
        "both_uplink_cases_covered": covered == {True, False},
        "verdict": all(a["matches_seed"] for a in results) and covered == {True, False},
    }


def run(params: dict | None = None) -> dict:
    p = {**DEFAULTS, **(params or {})}
    t0 = time.monotonic()
    work = RESULTS / NAME / "pcaps"
    work.mkdir(parents=True, exist_ok=True)
    cpu, drops, phase = CpuMeter(), {}, Progress(NAME)
    with lab_session(SPAN_LAB) as net:
        phase("SPAN lab: pings, captures at uplinks, PortOutput and VnicRx")
        cpu.start()
        duplicates = measure_duplicates(net, work, p["pings"])
        env = environment(net)
        cpu.stop()
        drops.update({f"span/{k}": v for k, v in shaping_drops(net).items()})
    with lab_session(PROMISC_LAB) as net:
        phase("promiscuous lab: the visibility table per uplink assignment")
        cpu.start()
        table = measure_table(net, work, p["assignments"], p["frames"])
        cpu.stop()
        drops.update({f"promisc/{k}": v for k, v in shaping_drops(net).items()})
    result = {
        "experiment": NAME,
        "seed": "002_ac0312c9dba5e18c.txt",
        "labs": [SPAN_LAB.name, PROMISC_LAB.name],
        "params": p,
        "environment": env,
        "seed_table": {k: ("only when the uplinks match" if v is None else v) for k, v in SEED_TABLE.items()},
        "claims": {"portoutput_duplicates_vnicrx_none": duplicates, "promiscuous_visibility_table": table},
        "fidelity": fidelity_summary(cpu, drops, frames_counted=True),
        "wall_s": round(time.monotonic() - t0, 1),
    }
    result["verdicts"] = verdicts_of(result["claims"])
    return result


def plot(result: dict, outdir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir.mkdir(parents=True, exist_ok=True)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [1, 1.4]})
    dup = result["claims"]["portoutput_duplicates_vnicrx_none"]
    names = list(dup["echo_requests_seen"])
    values = [dup["echo_requests_seen"][n] for n in names]
    colors = ["#56B4E9", "#56B4E9", "#E69F00", "#009E73"]
    ax1.bar([n.replace(" ", "\n", 1) for n in names], values, color=colors[: len(names)])
    ax1.axhline(
        dup["pings"], color="black", linestyle=":", linewidth=1, label=f"echo requests sent ({dup['pings']})"
    )
    ax1.set_ylabel("echo requests to vm12 captured")
    ax1.set_title("Capture points on esx1 (SPAN copies vmnic2 to vmnic3)")
    ax1.tick_params(axis="x", labelsize=8)
    ax1.legend(fontsize=8)

    table = result["claims"]["promiscuous_visibility_table"]
    rows = list(result["seed_table"])
    cols = [f"spy on {a['spy_uplink']}\n(a1 on {a['a1_uplink']})" for a in table["assignments"]]
    grid = [[1 if a["rows"][r]["visible"] else 0 for a in table["assignments"]] for r in rows]
    ax2.imshow(grid, cmap="cividis", vmin=0, vmax=1, aspect="auto")
    for i, r in enumerate(rows):
        for j, a in enumerate(table["assignments"]):
            cell = a["rows"][r]
            ax2.text(
                j,
                i,
                f"{'visible' if cell['visible'] else 'not visible'}\n{cell['seen_by_spy']}/{cell['frames']}",
                ha="center",
                va="center",
                fontsize=8,
                color="black" if cell["visible"] else "white",
            )
    ax2.set_xticks(range(len(cols)), cols, fontsize=8)
    seed = result["seed_table"]

    def seed_says(r):
        if isinstance(seed[r], str):
            return seed[r]
        return "visible" if seed[r] else "not visible"

    ax2.set_yticks(range(len(rows)), [f"{r}\n(seed: {seed_says(r)})" for r in rows], fontsize=7)
    ax2.set_title("What a promiscuous VM sees (frames seen / sent)")
    return save_figure(fig, outdir, NAME)


# Key numbers for `vlab run --repeat N` (mean and 95% CI).
METRICS = {
    "PortOutput / VnicRx": lambda r: (
        r["claims"]["portoutput_duplicates_vnicrx_none"]["echo_requests_seen"]["PortOutput"]
        / max(1, r["claims"]["portoutput_duplicates_vnicrx_none"]["echo_requests_seen"]["VnicRx"])
    ),
    "table rows matching the seed": lambda r: sum(
        a["matches_seed"] for a in r["claims"]["promiscuous_visibility_table"]["assignments"]
    ),
}

# One-line measured values for results/REPORT.md (experiments.report).
MEASURED = {
    "portoutput_duplicates_vnicrx_none": lambda r: (
        "{PortOutput} at PortOutput, {VnicRx} at VnicRx for {n} echo requests".format(
            n=r["claims"]["portoutput_duplicates_vnicrx_none"]["pings"],
            **r["claims"]["portoutput_duplicates_vnicrx_none"]["echo_requests_seen"],
        )
    ),
    "promiscuous_visibility_table": lambda r: "; ".join(
        "spy on {u}: {rows}".format(
            u=a["spy_uplink"],
            rows=", ".join(
                f"{row.split(' ')[0]}->{row.split(' ')[-1]} {cell['seen_by_spy']}/{cell['frames']}"
                for row, cell in a["rows"].items()
            ),
        )
        for a in r["claims"]["promiscuous_visibility_table"]["assignments"]
    ),
}

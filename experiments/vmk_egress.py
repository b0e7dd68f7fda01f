"""Experiment ``vmk-egress``: seed 000 (NBD backup traffic and vmknic egress).

A backup node (Rubrik, 172.17.28.12/22 behind a router) opens TCP to the
host's management vmk0 (172.17.4.102:902) and pulls a fixed amount of virtual
disk data (``experiments/tools/nbd.py``), in three labs:

* A   ``labs/vmk-egress-a.yaml``    only vmk0 (1 GbE active, 10 GbE unused);
* B   ``labs/vmk-egress-b.yaml``    plus vmk4 in 172.17.28.0/22 on VLAN 28
                                    (10 GbE active, 1 GbE unused);
* src ``labs/vmk-egress-src.yaml``  B with strict source-based egress.

And as the seed's author saw it (``labs/vmk-egress-span.yaml``: case B on a
distributed switch): the VMkernel ports mirrored to a Wireshark VM by three
Distributed Port Mirroring sessions, one per capture vNIC: vmk0 and vmk4,
vmk4 alone, vmk0 alone.

Measured in each: bytes and integrity (no reset), throughput, the data
packets each uplink transmitted (pcaps at the physical switch ports: their
source IP and source MAC tell which vmk sent them), and esxtop samples of
every port. Verdicts: the session stays intact everywhere; in B the replies
carry 172.17.4.102 yet leave through vmk4 and the 10 GbE uplinks; in B vmk0's
PKTRX/s tracks vmk4's PKTTX/s; throughput B/A is about the 10 GbE/1 GbE
ratio; with source-based egress the replies stay on vmk0 and 1 GbE; the
mirror of vmk4 alone carries only the host's packets to the backup node and
the mirror of vmk0 alone only the node's packets to the host.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from experiments import settle
from experiments.common import (
    RESULTS,
    Progress,
    environment,
    guest_tool,
    lab_session,
    quiesce,
    read_pcap,
    save_figure,
    stop_tool,
    wait_ready_line,
)
from experiments.fidelity import CpuMeter, checks, shaping_drops
from vlab.lab.resolve import find, link_mbps, switch_of_port_group
from vlab.shell import esxtop

if TYPE_CHECKING:
    from topologies.network import LabNetwork

NAME = "vmk-egress"
LABS = Path(__file__).resolve().parents[1] / "labs"
CASES = {
    "A": LABS / "vmk-egress-a.yaml",
    "B": LABS / "vmk-egress-b.yaml",
    "src": LABS / "vmk-egress-src.yaml",
}
SPAN_LAB = LABS / "vmk-egress-span.yaml"
# The Wireshark VM's capture vNIC of each mirror session (labs/vmk-egress-span.yaml).
SPAN_VNICS = {"eth0": "vmk0-and-vmk4", "eth1": "vmk4-only", "eth2": "vmk0-only"}
HOST, VMK0_IP, PORT = "esx1", "172.17.4.102", 902
DEFAULTS = {"bytes": 20_000_000, "second_node_bytes": 5_000_000, "sample_s": 0.25, "span_bytes": 5_000_000}


def _vmk_macs(net: LabNetwork) -> dict[str, str]:
    """Source MAC -> vmk name, from the running bridge."""
    b = next(b for b in net.bindings if b.host == HOST)
    return {p.mac.lower(): p.name for p in b.ports if p.kind == "vmk"}


def _data_packets(pcap: Path) -> list:
    from scapy.layers.inet import IP, TCP

    return [
        p
        for p in read_pcap(pcap)
        if IP in p and TCP in p and p[TCP].sport == PORT and len(p[TCP].payload) > 0
    ]


def _resets(pcap: Path) -> int:
    from scapy.layers.inet import TCP

    return sum(1 for p in read_pcap(pcap) if TCP in p and p[TCP].flags & 0x04)


def measure_transfer(net: LabNetwork, work: Path, client: str, nbytes: int, sample_s: float = 0.25) -> dict:
    """One NBD read from ``client`` to vmk0:902, with uplink pcaps and esxtop."""
    ctl = net.control
    uplinks = [u.name for h in net.lab.esxi_hosts if h.name == HOST for u in h.uplinks]
    macs = _vmk_macs(net)
    server = guest_tool(net, HOST, "nbd", "serve", "--bind", VMK0_IP, "--port", PORT, wait=False)
    caps = {}
    try:
        wait_ready_line(server, "NBD server on vmk0")
        caps = {
            u: ctl.capture(
                work / f"{net.lab.name}-{client}-{u}.pcap",
                uplink=(HOST, u),
                direction="tx",
                bpf=f"tcp port {PORT}",
                extra=["-s", "96"],
            )
            for u in uplinks
        }
        samples = [esxtop.sample(ctl, HOST)]
        reader = guest_tool(
            net, client, "nbd", "read", "--server", VMK0_IP, "--port", PORT, "--bytes", nbytes, wait=False
        )
        while reader.poll() is None:
            time.sleep(sample_s)  # esxtop's sampling period
            samples.append(esxtop.sample(ctl, HOST))
        out, err = reader.communicate()
        if reader.returncode != 0:
            raise RuntimeError(f"nbd read on {client} failed: {err[-500:]}")
        transfer = json.loads(out)
        # Counted on the uplinks: the connection is over at both ends first.
        settle.wait_tcp_finished(net, [HOST, client], PORT)
    finally:
        quiesce([c.pcap for c in caps.values()])
        pcaps = {u: c.stop() for u, c in caps.items()}
        stop_tool(server)
    per_uplink, sources, senders, resets = {}, set(), {}, 0
    for u, pcap in pcaps.items():
        data = _data_packets(pcap)
        per_uplink[u] = len(data)
        resets += _resets(pcap)
        for p in data:
            sources.add(p["IP"].src)
            vmk = macs.get(p.src.lower(), p.src.lower())
            senders[vmk] = senders.get(vmk, 0) + 1
        pcap.unlink()  # counted; the bulk pcaps are not kept
    series = [esxtop.rates(a, b) for a, b in zip(samples, samples[1:])]
    # Packets per port over the whole transfer (the counters' difference):
    # unlike the per-interval rates, independent of how a loaded machine
    # spread the samples.
    packets = {
        name: {"tx": c["tx_pkts"], "rx": c["rx_pkts"]}
        for name, c in esxtop.counts(samples[0], samples[-1]).items()
    }
    return {
        "client": client,
        "transfer": transfer,
        "data_packets_per_uplink": per_uplink,
        "reply_source_ips": sorted(sources),
        "reply_sender_vmk": senders,
        "resets_seen": resets,
        "esxtop": _series(series, samples[0].t),
        "esxtop_packets": packets,
    }


def _span_view(pcap: Path, vmk_macs: dict[str, str]) -> dict:
    """What one mirror session's capture vNIC saw of the NBD session: the
    host's packets (from port 902) and the node's (to it), and which vmk
    each was seen at: the sender's MAC for what a vmk sent, the receiver's
    for what was delivered to it."""
    from scapy.layers.inet import TCP

    out = {"from_host": 0, "from_host_data": 0, "to_host": 0, "seen_at": {}, "syn_at": [], "synack_by": []}
    for p in read_pcap(pcap):
        if TCP not in p:
            continue
        tcp = p[TCP]
        if tcp.sport == PORT:
            out["from_host"] += 1
            out["from_host_data"] += len(tcp.payload) > 0
            at = "sent by " + vmk_macs.get(p.src.lower(), p.src.lower())
            if tcp.flags & 0x12 == 0x12:
                out["synack_by"].append(vmk_macs.get(p.src.lower(), p.src.lower()))
        elif tcp.dport == PORT:
            out["to_host"] += 1
            at = "delivered to " + vmk_macs.get(p.dst.lower(), p.dst.lower())
            if tcp.flags & 0x12 == 0x02:
                out["syn_at"].append(vmk_macs.get(p.dst.lower(), p.dst.lower()))
        else:
            continue
        out["seen_at"][at] = out["seen_at"].get(at, 0) + 1
    return out


def measure_span(net: LabNetwork, work: Path, client: str, nbytes: int, sample_s: float) -> dict:
    """The seed's port-mirror view: one NBD read while the Wireshark VM's
    capture vNICs receive the mirror sessions' copies (-s 96: headers)."""
    ctl = net.control
    dropped_before = _copies_dropped(net)
    caps = {
        nic: ctl.tcpdump(
            "wireshark", nic, work / f"span-{nic}.pcap", f"tcp port {PORT}", ["-Q", "in", "-s", "96"]
        )
        for nic in SPAN_VNICS
    }
    try:
        transfer = measure_transfer(net, work, client, nbytes, sample_s)
    finally:
        quiesce([c.pcap for c in caps.values()])
        pcaps = {nic: c.stop() for nic, c in caps.items()}
    macs = _vmk_macs(net)
    dropped = _copies_dropped(net)
    views = {}
    for nic, session in SPAN_VNICS.items():
        views[session] = _span_view(pcaps[nic], macs)
        views[session]["ovs_tx_dropped"] = dropped[nic] - dropped_before[nic]
        pcaps[nic].unlink()
    return {"transfer": transfer, "sessions": views}


def _copies_dropped(net: LabNetwork) -> dict[str, int]:
    """Frames OVS could not hand to each capture vNIC (its tx_dropped): the
    userspace datapath drops a copy when the vNIC's socket is full, as
    ESXi counts dropped mirror packets."""
    inst = net.ovs[HOST]
    out = {}
    for nic in SPAN_VNICS:
        port = f"wireshark-{nic}"
        value = inst.vsctl("--if-exists", "get", "interface", port, "statistics:tx_dropped").strip()
        out[nic] = int(value) if value.isdigit() else 0
    return out


def _series(series: list[list[dict]], t0: float) -> dict:
    """Per port: the esxtop columns over time (one entry per interval)."""
    out: dict[str, dict[str, list]] = {}
    for i, rows in enumerate(series):
        for r in rows:
            port = out.setdefault(r["USED-BY"], {"TEAM-PNIC": r["TEAM-PNIC"], "t": []})
            port["t"].append(i)
            for col in ("PKTTX/s", "MbTX/s", "PKTRX/s", "MbRX/s", "%DRPTX", "%DRPRX"):
                port.setdefault(col, []).append(r[col])
    return out


def _team_mbps(lab, vmk_name: str) -> float:
    """Shaped rate of the uplinks a vmk's port group is active on."""
    host = find(lab.esxi_hosts, HOST)
    vmk = find(host.vmkernel, vmk_name)
    _, pg = switch_of_port_group(lab, host, vmk.port_group)
    return link_mbps(lab, min(find(host.uplinks, u).speed for u in pg.teaming.active))


def _busy_mean(values: list[float], floor: float) -> float:
    busy = [v for v in values if v >= floor]
    return round(statistics.mean(busy), 1) if busy else 0.0


def run(params: dict | None = None) -> dict:
    p = {**DEFAULTS, **(params or {})}
    t0 = time.monotonic()
    work = RESULTS / NAME / "pcaps"
    work.mkdir(parents=True, exist_ok=True)
    cases, env, cpu, drops, configured = {}, {}, CpuMeter(), {}, {}
    phase = Progress(NAME)
    for case, lab in CASES.items():
        phase(f"case {case} ({lab.name}): NBD reads with uplink pcaps and esxtop")
        with lab_session(lab) as net:
            cpu.start()
            cases[case] = {
                "lab": lab.name,
                "transfers": [measure_transfer(net, work, "rubrik1", p["bytes"], p["sample_s"])],
            }
            if case == "B":
                cases[case]["transfers"].append(
                    measure_transfer(net, work, "rubrik2", p["second_node_bytes"], p["sample_s"])
                )
                # The same read with the backup node ACKing every segment
                # (quickack on its route back to vmk0) instead of every second.
                net.node("rubrik1").cmd("ip route change default via 172.17.28.1 quickack 1")
                quick = measure_transfer(net, work, "rubrik1", p["bytes"], p["sample_s"])
                quick["receiver"] = "quickack"
                cases[case]["transfers"].append(quick)
            env = environment(net)
            # The replies' vmk: vmk4 where it exists and egress is by destination.
            configured[case] = _team_mbps(net.lab, "vmk4" if case == "B" else "vmk0")
            cpu.stop()
            drops.update({f"{case}/{k}": v for k, v in shaping_drops(net).items()})
    phase(f"case B on a vDS ({SPAN_LAB.name}): the VMkernel ports mirrored to a Wireshark VM")
    with lab_session(SPAN_LAB) as net:
        cpu.start()
        span = measure_span(net, work, "rubrik2", p["span_bytes"], p["sample_s"])
        cpu.stop()
        drops.update({f"span/{k}": v for k, v in shaping_drops(net).items()})
    result = {
        "experiment": NAME,
        "seed": "000_9aff30999f83c9dc.txt",
        "params": p,
        "environment": env,
        "cases": cases,
        "span": span,
    }
    result["summary"], result["verdicts"] = _verdicts(cases, span)
    result["fidelity"] = {
        "cpu_percent": cpu.percent,
        "shaping_drops": drops,
        "checks": checks(
            cpu.percent,
            drops,
            frames_counted=False,
            rates={c: (result["summary"]["mbps"][c], configured[c]) for c in configured},
        ),
    }
    result["wall_s"] = round(time.monotonic() - t0, 1)
    return result


def _span_verdict(span: dict) -> bool:
    """The seed's captures, read from the copies: with vmk0 and vmk4
    mirrored the node's SYN is delivered to vmk0 and the SYN/ACK sent by
    vmk4; vmk4 alone shows only the host's packets to the node ("all of the
    packets are being forwarded from the ESXi host to the Rubrik node"),
    vmk0 alone only the node's packets to the host. Counts are not compared
    across sessions: copies are taken before the uplink's shaper (a
    retransmitted segment is copied twice) and OVS drops a copy a busy
    capture vNIC cannot take (``ovs_tx_dropped``, reported)."""
    both, vmk4, vmk0 = (span["sessions"][s] for s in ("vmk0-and-vmk4", "vmk4-only", "vmk0-only"))
    t = span["transfer"]["transfer"]
    return (
        t["intact"]
        and t["end"] == "eof"
        # Sets: a retransmitted SYN is the same handshake.
        and set(both["syn_at"]) == {"vmk0"}
        and set(both["synack_by"]) == {"vmk4"}
        and set(both["seen_at"]) == {"sent by vmk4", "delivered to vmk0"}
        and vmk4["from_host_data"] > 0
        and vmk4["to_host"] == 0
        and set(vmk4["seen_at"]) == {"sent by vmk4"}
        and vmk0["to_host"] > 0
        and vmk0["from_host"] == 0
        and set(vmk0["seen_at"]) == {"delivered to vmk0"}
    )


def _verdicts(cases: dict, span: Optional[dict] = None) -> tuple[dict, dict]:
    """Summary and verdicts; the port-mirror verdict only with ``span``."""
    first = {c: v["transfers"][0] for c, v in cases.items()}
    mbps = {c: t["transfer"]["mbps"] for c, t in first.items()}
    ratio = mbps["B"] / mbps["A"] if mbps["A"] else float("inf")
    b = first["B"]["esxtop"]
    vmk0_rx = _busy_mean(b["vmk0"]["PKTRX/s"], 50)
    vmk4_tx = _busy_mean(b["vmk4"]["PKTTX/s"], 50)
    rx_tx = vmk0_rx / vmk4_tx if vmk4_tx else 0.0
    quick = next(t for t in cases["B"]["transfers"] if t.get("receiver") == "quickack")["esxtop"]
    q_tx = _busy_mean(quick["vmk4"]["PKTTX/s"], 50)
    q_rx_tx = _busy_mean(quick["vmk0"]["PKTRX/s"], 50) / q_tx if q_tx else 0.0
    # The other two columns of the seed's picture: vmk0 sends nothing and
    # vmk4 receives nothing (the ACKs are addressed to vmk0's IP).
    quiet = max(
        max(quick["vmk0"]["PKTTX/s"], default=0.0),
        max(b["vmk0"]["PKTTX/s"], default=0.0),
        max(quick["vmk4"]["PKTRX/s"], default=0.0),
        max(b["vmk4"]["PKTRX/s"], default=0.0),
    )
    ten, one = ("vmnic2", "vmnic3"), ("vmnic0", "vmnic1")

    def carried_by(t, uplinks):
        return sum(n for u, n in t["data_packets_per_uplink"].items() if u in uplinks)

    b_ok = all(
        carried_by(t, ten) > 0
        and carried_by(t, one) == 0
        and t["reply_source_ips"] == [VMK0_IP]
        and set(t["reply_sender_vmk"]) == {"vmk4"}
        for t in cases["B"]["transfers"]
    )
    src = first["src"]
    summary = {
        "mbps": mbps,
        "ratio_B_over_A": round(ratio, 2),
        "vmk0_pktrx_per_s": vmk0_rx,
        "vmk4_pkttx_per_s": vmk4_tx,
        "vmk0_rx_over_vmk4_tx": round(rx_tx, 2),
        "vmk0_rx_over_vmk4_tx_quickack": round(q_rx_tx, 2),
        "vmk0_tx_or_vmk4_rx_max_per_s": quiet,
    }
    verdicts = {
        "session_intact_in_every_case": all(
            t["transfer"]["intact"] and t["transfer"]["end"] == "eof" and t["resets_seen"] == 0
            for c in cases.values()
            for t in c["transfers"]
        ),
        "B_replies_from_vmk0_ip_leave_by_vmk4_on_10gbe": b_ok,
        # The seed: "vmk0 is receiving several thousand packets per second
        # (PKTRX/s) while vmk4 is transmitting (PKTTX/s) roughly the same
        # amount". vmk0 receives the ACK stream of vmk4's data. With a
        # receiver that ACKs every segment (quickack) that stream is one ACK
        # per data segment, ratio 1: "roughly the same" is read as within 20%
        # (an esxtop sample, 0.25 s here, can split a window of segments from
        # their ACKs). With Linux's default delayed ACK the receiver ACKs at most
        # once per segment and how much less depends on when its application
        # reads (0.39-0.45 seen), which the seed does not claim: that case
        # only needs 0 < ratio <= 1.2. Neither vmk0 transmits nor vmk4
        # receives more than a stray packet (ARP, at most 1% of the stream).
        "B_vmk0_pktrx_tracks_vmk4_pkttx": (
            0.8 <= q_rx_tx <= 1.2 and 0.0 < rx_tx <= 1.2 and quiet <= 0.01 * min(q_tx, vmk4_tx)
        ),
        # The 10 GbE and 1 GbE teams make 10; each side also has to reach 0.9
        # of its rate (fidelity gate), which alone keeps a fair run within
        # [9.4, 10.6]: 20% tells a wrong egress path from a slow machine.
        "throughput_B_over_A_about_10": 8.0 <= ratio <= 12.0,
        "source_egress_keeps_replies_on_vmk0_1gbe": (
            carried_by(src, one) > 0
            and carried_by(src, ten) == 0
            and set(src["reply_sender_vmk"]) == {"vmk0"}
            and 0.8 <= mbps["src"] / mbps["A"] <= 1.25
        ),
    }
    if span is not None:
        verdicts["port_mirror_splits_the_session_by_vmk"] = _span_verdict(span)
        summary["span"] = {
            s: {k: v[k] for k in ("from_host", "to_host", "ovs_tx_dropped")}
            for s, v in span["sessions"].items()
        }
        summary["span"]["uplink_data_packets"] = sum(span["transfer"]["data_packets_per_uplink"].values())
    return summary, verdicts


def plot(result: dict, outdir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    palette = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9"]
    fig, (ax1, ax2, ax3, ax4) = plt.subplots(1, 4, figsize=(20, 4.2))
    cases = result["cases"]
    names = {"A": "A: vmk0 only", "B": "B: + vmk4 (VLAN 28)", "src": "B, source egress"}
    mbps = result["summary"]["mbps"]
    ax1.bar([names[c] for c in mbps], list(mbps.values()), color=palette[: len(mbps)])
    ax1.set_ylabel("NBD read throughput (Mbit/s)")
    ax1.set_title(f"Backup read from vmk0:902, B/A = {result['summary']['ratio_B_over_A']:.2f}")
    ax1.tick_params(axis="x", labelsize=8)

    b = cases["B"]["transfers"][0]["esxtop"]
    dt = result["params"]["sample_s"]
    for i, (port, col, label) in enumerate(
        (
            ("vmk0", "PKTRX/s", "vmk0 PKTRX/s"),
            ("vmk4", "PKTTX/s", "vmk4 PKTTX/s"),
            ("vmk0", "PKTTX/s", "vmk0 PKTTX/s"),
        )
    ):
        series = b.get(port, {}).get(col, [])
        ax2.plot(
            [k * dt for k in range(len(series))],
            series,
            color=palette[i],
            label=label,
            marker="o",
            markersize=3,
        )
    quick = next((t for t in cases["B"]["transfers"] if t.get("receiver") == "quickack"), None)
    if quick:
        series = quick["esxtop"].get("vmk0", {}).get("PKTRX/s", [])
        ax2.plot(
            [k * dt for k in range(len(series))],
            series,
            color=palette[3],
            linestyle="--",
            label="vmk0 PKTRX/s, receiver ACKs every segment",
        )
    ax2.set_xlabel("time (s)")
    ax2.set_ylabel("packets per second")
    ax2.set_title("Case B, esxtop: vmk0 receives, vmk4 transmits")
    ax2.legend(fontsize=8)

    uplinks = sorted({u for c in cases.values() for u in c["transfers"][0]["data_packets_per_uplink"]})
    width = 0.8 / len(cases)
    for i, (case, c) in enumerate(cases.items()):
        counts = c["transfers"][0]["data_packets_per_uplink"]
        ax3.bar(
            [j + i * width for j in range(len(uplinks))],
            [counts.get(u, 0) for u in uplinks],
            width=width,
            color=palette[i],
            label=names[case],
        )
    ax3.set_xticks(
        [j + width * (len(cases) - 1) / 2 for j in range(len(uplinks))],
        [f"{u}\n({'10' if u in ('vmnic2', 'vmnic3') else '1'} GbE)" for u in uplinks],
    )
    ax3.set_ylabel("NBD data packets sent (uplink pcaps)")
    ax3.set_title("Which uplinks carry the replies")
    ax3.legend(fontsize=8)

    span = result.get("summary", {}).get("span")
    if span:
        sessions = ["vmk0-and-vmk4", "vmk4-only", "vmk0-only"]
        for i, (key, label) in enumerate(
            (("from_host", "host to node (port 902 ->)"), ("to_host", "node to host"))
        ):
            ax4.bar(
                [j + i * 0.4 for j in range(len(sessions))],
                [span[s][key] for s in sessions],
                width=0.4,
                color=palette[i],
                label=label,
            )
        ax4.set_xticks([j + 0.2 for j in range(len(sessions))], ["vmk0 + vmk4", "vmk4 alone", "vmk0 alone"])
        ax4.set_ylabel("packets at the Wireshark VM")
        ax4.set_title("Port mirror of the VMkernel ports (case B on a vDS)")
        ax4.legend(fontsize=8)
    else:
        ax4.set_visible(False)
    return save_figure(fig, outdir, NAME)


# The link-rate checks guard the claims made of throughput; which vmk and
# uplink carry the replies, the session and the esxtop packet ratio do not
# depend on the rate (experiments.fidelity.guards).
FIDELITY_SCOPE = {"link_rate": ("throughput_B_over_A_about_10", "source_egress_keeps_replies_on_vmk0_1gbe")}

# Key numbers for `vlab run --repeat N` (mean and 95% CI).
METRICS = {
    "throughput B/A": lambda r: r["summary"]["ratio_B_over_A"],
    "vmk0 RX / vmk4 TX": lambda r: r["summary"]["vmk0_rx_over_vmk4_tx"],
    "same, quickack": lambda r: r["summary"]["vmk0_rx_over_vmk4_tx_quickack"],
}

# One-line measured values for results/REPORT.md (experiments.report).
MEASURED = {
    "session_intact_in_every_case": lambda r: "all bytes verified, 0 resets in {} transfers".format(
        sum(len(c["transfers"]) for c in r["cases"].values())
    ),
    "B_replies_from_vmk0_ip_leave_by_vmk4_on_10gbe": lambda r: (
        "case B: {} data packets, all on {}, source {}, sent by {}".format(
            sum(r["cases"]["B"]["transfers"][0]["data_packets_per_uplink"].values()),
            "/".join(u for u, n in r["cases"]["B"]["transfers"][0]["data_packets_per_uplink"].items() if n),
            ", ".join(r["cases"]["B"]["transfers"][0]["reply_source_ips"]),
            ", ".join(r["cases"]["B"]["transfers"][0]["reply_sender_vmk"]),
        )
    ),
    "B_vmk0_pktrx_tracks_vmk4_pkttx": lambda r: (
        "vmk0 PKTRX/s {vmk0_pktrx_per_s:.0f} vs vmk4 PKTTX/s {vmk4_pkttx_per_s:.0f} "
        "(ratio {vmk0_rx_over_vmk4_tx}; {vmk0_rx_over_vmk4_tx_quickack} when the receiver "
        "ACKs every segment)".format(**r["summary"])
    ),
    "throughput_B_over_A_about_10": lambda r: (
        "A {A:.1f} Mbit/s, B {B:.1f} Mbit/s".format(**r["summary"]["mbps"])
        + f", ratio {r['summary']['ratio_B_over_A']}"
    ),
    "source_egress_keeps_replies_on_vmk0_1gbe": lambda r: "{:.1f} Mbit/s, replies by {}".format(
        r["summary"]["mbps"]["src"], ", ".join(r["cases"]["src"]["transfers"][0]["reply_sender_vmk"])
    ),
    "port_mirror_splits_the_session_by_vmk": lambda r: (
        "vmk4 alone: {} host-to-node, {} node-to-host packets; vmk0 alone: {} and {}; "
        "both: {} and {} (uplinks sent {} data packets; OVS dropped {} copies)".format(
            *(
                r["summary"]["span"][s][k]
                for s in ("vmk4-only", "vmk0-only", "vmk0-and-vmk4")
                for k in ("from_host", "to_host")
            ),
            r["summary"]["span"]["uplink_data_packets"],
            sum(v["ovs_tx_dropped"] for k, v in r["summary"]["span"].items() if isinstance(v, dict)),
        )
    ),
}

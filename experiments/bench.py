"""``vlab bench``: how fast, how big and how faithful the testbed is on this
machine, each number next to its target.

* **scale**: bring-up time (lab start until every switch holds its flows),
  time until every VM reaches every other VM (broadcast ping: each VM's
  echo is answered by all the others, so every ordered pair is exercised,
  ARP included) and peak memory, for 1, 4, 8 and 16 ESXi hosts x 8 VMs;
* **controller**: flow compile time and flow count for the largest lab;
  packet-ins during steady traffic on the NSX overlay lab (target 0: the
  only flows that reach the controller are IP-discovery copies);
* **failover**: uplink cable pulled -> first packet of a 1000 pps stream on
  the standby uplink, 20 trials (target: p95 under 100 ms);
* **vMotion**: a VM talking both ways at 1000 pps moves between hosts 10
  times; time without delivered packets minus the configured stun time
  (target under 50 ms);
* **shaping**: TCP throughput over 10..200 Mbit/s uplinks / configured
  rate (target 0.95 or better);
* **throughput**: raw veth pair, two VMs on one OVS bridge, VLAN-backed and
  VXLAN overlay between hosts at equal link rates;
* **controller resync**: on the largest scale lab (the most switches and
  flows the bench brings up), the controller is SIGKILLed 10 times while
  two VMs on different hosts stream UDP at 1000 pps, and restarted at once;
  per kill, the seconds from the new process's start (and from the kill)
  until every switch confirmed its resync (barrier), the stream's packets
  lost (sent on the sender's vNIC, never seen at the receiver's; kernel
  captures), and whether every bridge then holds exactly its compiled flows
  in one cookie epoch (target: resync within 1 s, nothing lost);
* **teaming**: beacon probing's detection time (an access-to-core link
  pulled -> the controller's verdict failing the uplink behind it; 20
  trials on ``labs/beacon-probing.yaml``; three missed beacons after the
  last one heard put it between 3 s less a beacon's travel and 4 s, the
  target allows 5), load-based teaming's reaction time (two VMs saturating
  one uplink -> the move; 3 trials, a fresh lab each, on
  ``labs/load-based-teaming.yaml``; 30 s above 75% put it just after 30 s),
  and LACP's member removal time (a port channel port stops sending
  LACPDUs -> the host's OVS takes the member out of the bundle; 10 trials
  on ``labs/lacp.yaml``, fast timeout: 2 to 3 s);
* **make run**: wall time of the last full ``vlab run``.

Results (with the machine's description) go to ``results/bench/result.json``,
figures next to it; every generated lab is kept in ``results/bench/labs``.
"""

from __future__ import annotations

import json
import os
import statistics
import struct
import subprocess
import threading
import time
from pathlib import Path

import yaml

from controller import beacon
from experiments import bench_labs, lacp
from experiments.common import (
    RESULTS,
    Progress,
    environment,
    guest_tool,
    iperf3,
    lab_session,
    quiesce,
    read_pcap,
    save_figure,
    stop_tool,
    udp_send,
    wait_ready_line,
)
from experiments.teaming_policies import LBT_MOVE_S
from experiments.vswitch_nuggets import _arrivals
from vlab import naming
from vlab.lab.reachability import endpoints
from vlab.waiting import Pending, wait_for

NAME = "bench"
OUT = RESULTS / NAME
LABS = OUT / "labs"
SCALE_HOSTS = (1, 4, 8, 16)
VMS_PER_HOST = 8
SHAPING_MBPS = (10, 20, 50, 100, 200)
TARGETS = {
    "packet_ins_steady": 0,
    "failover_p95_ms": 100,
    "vmotion_blackout_ms": 50,
    "shaping_ratio": 0.95,
    "controller_resync_s": 1.0,
    "config_change_median_ms": 50,
    "controller_kill_lost_packets": 0,
}
# Beacon probing fails an uplink in the first round more than
# MISSED_BEACONS intervals after the last beacon it heard. That beacon
# arrived at most one interval before the pull, so the verdict comes 3 to 4
# s after it; a pull that lands between a round's sending and its beacons'
# arrival makes it 3 s less that travel time (measured 2.998 s), for which
# 0.1 s is ample. The upper end allows one interval more for a controller
# round that starts late, as the teaming-policies experiment's limit does.
BEACON_DETECTION_S = (beacon.MISSED_BEACONS * beacon.BEACON_INTERVAL_S - 0.1, 5.0)
# Load-based teaming: the experiment's window (30 s above 75%, less the one
# sample that may straddle the load's start, up to the 40 s); the
# load runs LBT_LOAD_S so a move at the window's end is still seen.
LBT_REACTION_S = LBT_MOVE_S
LBT_LOAD_S = LBT_MOVE_S[1] + 2.0
# An LACP member whose partner fell silent (fast timeout): the lacp
# experiment's window (expired 3 s after the last LACPDU, which came at most
# 1 s before the silence; plus reading the state).
LACP_REMOVAL_S = lacp.removal_window_s("fast")


def write_lab(data: dict) -> Path:
    LABS.mkdir(parents=True, exist_ok=True)
    path = LABS / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (no interpolation: a value that was measured)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, -(-len(ordered) * p // 100) - 1))]


# -- memory ------------------------------------------------------------------------------
def _used_bytes() -> int:
    info = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            info[key] = int(value.split()[0]) * 1024
    return info["MemTotal"] - info["MemAvailable"]


def _rss_of_run(run_id: str) -> int:
    """Resident memory of every process carrying this run's marker."""
    from vlab.runtime import processes_of_run

    total = 0
    for pid in processes_of_run(run_id):
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            continue  # gone meanwhile
    return total


class MemoryPeak:
    """Samples system memory in use (and our processes' RSS) in a thread;
    ``peak_*`` are the highest values above the baseline taken at start."""

    def __init__(self, interval: float = 0.25):
        self.interval, self.baseline = interval, _used_bytes()
        self.peak_used, self.peak_rss, self.run_id = 0, 0, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self) -> None:
        """Freeze the peaks (what runs afterwards is not the lab's footprint)."""
        self._stop.set()
        self._thread.join()

    def _sample(self):
        while not self._stop.wait(self.interval):
            self.peak_used = max(self.peak_used, _used_bytes() - self.baseline)
            run_id = self.run_id or os.environ.get(naming.RUN_ENV)
            if run_id:
                self.peak_rss = max(self.peak_rss, _rss_of_run(run_id))


# -- scale ------------------------------------------------------------------------------
def mesh_missing(net, timeout_s: float = 60.0) -> tuple[float, int]:
    """Broadcast-ping from every VM at once, repeating for the VMs whose
    peers did not all answer yet; returns (seconds until every ordered pair
    answered, pairs still missing at the timeout)."""
    vms = [e for e in endpoints(net.lab) if "/" not in e.name]
    names = {str(e.ip.ip): e.name for e in vms}
    bcast = str(vms[0].ip.network.broadcast_address)
    for e in vms:
        net.node(e.node).cmd("sysctl -qw net.ipv4.icmp_echo_ignore_broadcasts=0")
    seen: dict[str, set[str]] = {e.name: set() for e in vms}
    want = len(vms) - 1
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        todo = [e for e in vms if len(seen[e.name]) < want]
        if not todo:
            return time.monotonic() - t0, 0
        procs = {
            e.name: net.node(e.node).popen(
                ["ping", "-n", "-b", "-c", "2", "-i", "0.5", "-w", "3", bcast],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            for e in todo
        }
        for name, proc in procs.items():
            out, _ = proc.communicate(timeout=30)
            for line in out.splitlines():
                if line.startswith("64 bytes from "):
                    ip = line.split()[3].rstrip(":")
                    if ip in names and names[ip] != name:
                        seen[name].add(names[ip])
    return time.monotonic() - t0, sum(want - len(s) for s in seen.values())


def measure_scale(hosts: int, progress, then=None) -> dict:
    """One scale lab; ``then(net)``, if given, runs on it afterwards (its
    processes are not counted in the lab's memory)."""
    lab = write_lab(bench_labs.scale_lab(hosts, VMS_PER_HOST))
    with MemoryPeak() as mem:
        t0 = time.monotonic()
        with lab_session(lab, timeout=300) as net:
            mem.run_id = net.run.id
            bringup = net.timings["bringup_s"]
            progress(f"{hosts} hosts up in {bringup:.1f}s; checking the full mesh")
            mesh_s, missing = mesh_missing(net)
            reach_s = time.monotonic() - t0
            vms = len(net.lab.vms)
            if then is not None:
                mem.stop()
                then(net)
    return {
        "hosts": hosts,
        "vms": vms,
        "bringup_s": round(bringup, 2),
        "mesh_s": round(mesh_s, 2),
        "reach_all_s": round(reach_s, 2),
        "pairs": vms * (vms - 1),
        "pairs_missing": missing,
        "peak_memory_mb": round(mem.peak_used / 2**20, 1),
        "peak_rss_of_our_processes_mb": round(mem.peak_rss / 2**20, 1),
    }


# -- controller ---------------------------------------------------------------------------
def measure_compile(lab_path: Path, repeats: int = 5) -> dict:
    """Compile every bridge's flows from scratch, ``repeats`` times."""
    from controller.state import ControllerState
    from vlab.lab.load import load_lab

    lab = load_lab(lab_path)
    times, counts = [], {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        state = ControllerState(lab)
        # Per bridge (dpid): a host has one bridge per vSwitch.
        counts = {d: len(state.flows(d)) for d in state.dpids}
        times.append(time.perf_counter() - t0)
    return {
        "lab": lab.name,
        "bridges": len(counts),
        "flows_total": sum(counts.values()),
        "flows_max_per_bridge": max(counts.values()),
        "compile_s_median": round(statistics.median(times), 4),
        "compile_s_all": [round(t, 4) for t in times],
    }


def controller_packets(net) -> int:
    """Packets the switches have sent to the controller so far (n_packets of
    every flow with a controller action; OpenFlow 1.3 table misses drop)."""
    total = 0
    for b in net.bindings:
        for line in net.ovs[b.host].ofctl("dump-flows", b.bridge).splitlines():
            if "CONTROLLER" in line and "n_packets=" in line:
                total += int(line.split("n_packets=")[1].split(",")[0])
    return total


def measure_steady_packet_ins(net, seconds: float = 5.0) -> dict:
    """Every VM pings every other VM and one TCP transfer runs, after one
    warm-up round; packet-ins counted over the steady part only."""
    vms = [e for e in endpoints(net.lab) if "/" not in e.name]

    def all_pairs(count: int, interval: float):
        procs = [
            net.node(a.node).popen(
                ["ping", "-n", "-q", "-c", str(count), "-i", str(interval), "-W", "1", str(b.ip.ip)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for a in vms
            for b in vms
            if a is not b
        ]
        for p in procs:
            p.wait(timeout=count * interval + 30)

    all_pairs(2, 0.2)  # warm-up: ARP, discovery
    before = controller_packets(net)
    pings = threading.Thread(target=all_pairs, args=(int(seconds / 0.2), 0.2))
    pings.start()
    eps = {e.name: e for e in vms}
    tcp = iperf3(net, eps["vm2"], eps["vm1"], seconds)
    pings.join()
    return {
        "lab": net.lab.name,
        "seconds": seconds,
        "vms": len(vms),
        "tcp_mbps": round(tcp["mbps"], 1),
        "packet_ins": controller_packets(net) - before,
    }


# -- failover and vMotion --------------------------------------------------------------------
def _udp_times(pcap: Path, dport: int) -> list[float]:
    from scapy.layers.inet import UDP

    return [float(p.time) for p in read_pcap(pcap) if UDP in p and p[UDP].dport == dport]


def measure_failover(net, work: Path, trials: int = 20, pps: int = 1000) -> dict:
    """``mover`` streams UDP to ``peer``; esx1's active uplink is pulled and
    plugged back ``trials`` times. Failover time: from just before the cable
    is pulled to the first packet of the stream arriving from the standby
    uplink at the physical switch."""
    ctl, port = net.control, 7001
    eps = {e.name: e for e in endpoints(net.lab)}
    vnic = naming.vnic_port("mover", "eth0")
    active = ctl.applied()["pinning"]["esx1"][vnic]
    standby = "vmnic1" if active == "vmnic0" else "vmnic0"
    cap = ctl.tcpdump(
        naming.FABRIC_NODE,
        ctl.fabric_port("esx1", standby),
        work / "failover-standby.pcap",
        f"udp dst port {port}",
        ["-Q", "in"],
    )
    recv = guest_tool(
        net,
        "peer",
        "udp",
        "recv",
        "--bind",
        eps["peer"].ip.ip,
        "--port",
        port,
        "--out",
        work / "failover-recv.txt",
        wait=False,
    )
    send = None
    downs = []
    try:
        wait_ready_line(recv, "receiver on peer")
        send = udp_send(
            net, "mover", eps["mover"].ip.ip, eps["peer"].ip.ip, port, pps, pps * (trials * 3 + 10)
        )
        from vlab.waiting import wait_for

        wait_for(lambda: len(_arrivals(work / "failover-recv.txt")) > pps // 10, 10, "stream reaching peer")
        for _ in range(trials):
            t_down = time.time()
            ctl.uplink("esx1", active, up=False)
            command_s = time.time() - t_down
            wait_for(
                lambda: ctl.applied()["pinning"]["esx1"][vnic] == standby,
                10,
                "failover to the standby uplink",
            )
            downs.append((t_down, command_s))
            ctl.uplink("esx1", active, up=True)
            wait_for(
                lambda: ctl.applied()["pinning"]["esx1"][vnic] == active, 10, "failback to the active uplink"
            )
            # The stream is back on the active uplink before the next pull.
            t_back = time.time()
            wait_for(
                lambda: any(t > t_back for t in _arrivals(work / "failover-recv.txt")),
                10,
                "stream after failback",
            )
        quiesce([cap.pcap])
    finally:
        if send is not None:
            stop_tool(send)
        stop_tool(recv)
        cap.stop()
    arrivals = _udp_times(cap.pcap, port)
    samples = []
    for t_down, _command_s in downs:
        first = min((t for t in arrivals if t >= t_down), default=None)
        samples.append(None if first is None else round((first - t_down) * 1000, 2))
    ok = [s for s in samples if s is not None]
    p95 = percentile(ok, 95) if ok else None
    return {
        "trials": trials,
        "pps": pps,
        "active": active,
        "standby": standby,
        "failover_ms": samples,
        "median_ms": statistics.median(ok) if ok else None,
        "p95_ms": p95,
        "pull_command_ms_median": round(statistics.median(c for _, c in downs) * 1000, 2),
        "target_p95_ms": TARGETS["failover_p95_ms"],
        "met": p95 is not None and len(ok) == trials and p95 < TARGETS["failover_p95_ms"],
    }


def longest_silence(times: list[float], since: float) -> float:
    """The longest time without an arrival from ``since`` on (a 1000 pps
    stream on a busy 2-core machine has millisecond jitter, so the sum of
    every small gap would overstate a blackout)."""
    after = [since] + [t for t in times if t > since]
    return max((b - a for a, b in zip(after, after[1:])), default=float("inf"))


def measure_vmotion(net, work: Path, moves: int = 10, pps: int = 1000, stun_s: float = 0.1) -> dict:
    """``mover`` and ``peer`` stream UDP to each other; ``mover`` vMotions
    esx1 -> esx2 -> esx1 ... ``moves`` times. Blackout per move and
    direction: time without packets arriving at the receiving guest's vNIC
    (kernel capture timestamps) after the stun starts, minus the configured
    stun time."""
    ctl = net.control
    eps = {e.name: e for e in endpoints(net.lab)}
    streams = {"peer": ("mover", 7101), "mover": ("peer", 7102)}  # receiver: (sender, port)
    caps = {
        rx: ctl.tcpdump(rx, "eth0", work / f"vmotion-{rx}.pcap", f"udp dst port {port}", ["-Q", "in"])
        for rx, (_, port) in streams.items()
    }
    # Receivers, so the streams end in a socket (no ICMP port unreachable).
    recvs = {
        rx: guest_tool(
            net,
            rx,
            "udp",
            "recv",
            "--bind",
            eps[rx].ip.ip,
            "--port",
            port,
            "--out",
            work / f"vmotion-{rx}.txt",
            wait=False,
        )
        for rx, (_, port) in streams.items()
    }
    sends, results = [], []
    gap = 1.5  # seconds of traffic between moves
    try:
        for rx, proc in recvs.items():
            wait_ready_line(proc, f"receiver on {rx}")
        sends = [
            udp_send(net, tx, eps[tx].ip.ip, eps[rx].ip.ip, port, pps, int(pps * (moves * (gap + 1) + 10)))
            for rx, (tx, port) in streams.items()
        ]
        from vlab.waiting import wait_for

        files = [work / f"vmotion-{rx}.txt" for rx in streams]
        for f in files:
            wait_for(lambda f=f: len(_arrivals(f)) > pps // 10, 10, f"stream into {f.stem}")
        for i in range(moves):
            dest = "esx2" if i % 2 == 0 else "esx1"
            move = ctl.vmotion("mover", dest, stun_s=stun_s)
            t_next = time.time() + gap
            wait_for(
                lambda: (
                    time.time() >= t_next
                    and all(any(t > move["resumed"] for t in _arrivals(f)) for f in files)
                ),
                gap + 10,
                "traffic after the move",
            )
            results.append(move)
        quiesce([c.pcap for c in caps.values()])
    finally:
        for s in sends:
            stop_tool(s)
        for proc in recvs.values():
            stop_tool(proc)
        for c in caps.values():
            c.stop()
    arrivals = {rx: sorted(_udp_times(caps[rx].pcap, port)) for rx, (_, port) in streams.items()}
    per_move = []
    for move in results:
        row = {
            "to": move["to"],
            "stun_s": stun_s,
            "resumed_after_ms": round((move["resumed"] - move["stun_start"]) * 1000, 1),
        }
        for rx, times in arrivals.items():
            window = [t for t in times if move["stun_start"] - 0.05 <= t < move["stun_start"] + gap]
            outage = longest_silence(window, move["stun_start"])
            row[f"to_{rx}_blackout_ms"] = round((outage - stun_s) * 1000, 1)
            # Raw evidence: every silence over 5 ms (start relative to the stun start).
            row[f"to_{rx}_gaps_ms"] = [
                (round((a - move["stun_start"]) * 1000, 1), round((b - a) * 1000, 1))
                for a, b in zip(window, window[1:])
                if b - a > 0.005
            ]
        per_move.append(row)
    worst = [max(r["to_peer_blackout_ms"], r["to_mover_blackout_ms"]) for r in per_move]
    return {
        "moves": moves,
        "pps": pps,
        "stun_s": stun_s,
        "per_move": per_move,
        "median_ms": statistics.median(worst),
        "p95_ms": percentile(worst, 95),
        "max_ms": max(worst),
        "target_ms": TARGETS["vmotion_blackout_ms"],
        "met": max(worst) < TARGETS["vmotion_blackout_ms"],
    }


# -- controller resync -------------------------------------------------------------------------
def udp_seqs(pcap: Path, dport: int) -> dict[int, float]:
    """seq -> capture time of the first frame carrying it, for a UDP stream of
    ``experiments.tools.udp`` (8-byte sequence number first in the payload),
    read straight from a pcap file: Ethernet (VLAN tags skipped) and IPv4.
    Tens of thousands of frames; scapy's dissection would take minutes."""
    path = Path(pcap)
    data = path.read_bytes() if path.exists() else b""
    if len(data) < 24:
        return {}
    magic = data[:4]
    order = {
        b"\xd4\xc3\xb2\xa1": "<",
        b"\x4d\x3c\xb2\xa1": "<",
        b"\xa1\xb2\xc3\xd4": ">",
        b"\xa1\xb2\x3c\x4d": ">",
    }.get(magic)
    if order is None:
        raise ValueError(f"{pcap}: not a pcap file")
    unit = 1e-9 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e-6
    record = struct.Struct(order + "IIII")
    seqs: dict[int, float] = {}
    off = 24
    while off + record.size <= len(data):
        sec, frac, caplen, _ = record.unpack_from(data, off)
        off += record.size
        frame, off = data[off : off + caplen], off + caplen
        l3, ethertype = 14, frame[12:14]
        while ethertype in (b"\x81\x00", b"\x88\xa8") and len(frame) >= l3 + 4:
            ethertype, l3 = frame[l3 + 2 : l3 + 4], l3 + 4
        if ethertype != b"\x08\x00" or len(frame) < l3 + 20 or frame[l3 + 9] != 17:
            continue
        udp = l3 + (frame[l3] & 0x0F) * 4
        if len(frame) < udp + 16 or int.from_bytes(frame[udp + 2 : udp + 4], "big") != dport:
            continue
        seqs.setdefault(int.from_bytes(frame[udp + 8 : udp + 16], "big"), sec + frac * unit)
    return seqs


def flows_after_resync(net) -> dict[str, list[int]]:
    """Per bridge: [flows it holds (ovs-ofctl), flows a fresh compile of the
    lab and the guests' reported vNIC filters gives, cookie epochs among its
    flows]. Exact: the first two are equal and there is one epoch (each
    resync re-adds every flow under a fresh epoch and deletes the others, so
    a flow of an earlier controller would show as a second epoch)."""
    from controller.ofdriver import EPOCH_BITS
    from controller.state import ControllerState
    from vlab.bindings import GuestNic

    state = ControllerState(net.lab)
    state.set_guests(
        {port: GuestNic.from_json(g) for port, g in (net.control.applied().get("guests") or {}).items()}
    )
    tables = state.nsx_tables()
    out = {}
    for b in net.bindings:
        lines = [
            line for line in net.ovs[b.host].ofctl("dump-flows", b.bridge).splitlines() if "actions=" in line
        ]
        epochs = {
            int(line.split("cookie=")[1].split(",")[0], 16) & ((1 << EPOCH_BITS) - 1)
            for line in lines
            if "cookie=" in line
        }
        out[f"{b.host}/{b.bridge}"] = [len(lines), len(state.flows(b.dpid, tables)), len(epochs)]
    return out


def _vms_on_two_hosts(lab):
    """The first VM and the first VM on another ESXi host (any other VM if
    every VM is on one host)."""
    first = lab.vms[0]
    return first, next((vm for vm in lab.vms if vm.host != first.host), lab.vms[-1])


def measure_controller_resync(
    net, work: Path, kills: int = 10, pps: int = 1000, steady_s: float = 1.0, after_s: float = 0.5
) -> dict:
    """One VM streams UDP to a VM on another host; ``kills`` times, after
    ``steady_s`` of traffic, the controller is SIGKILLed and a new one
    started at once (``LabNetwork.restart_controller``). Per kill: seconds
    from the new process's start, and from the kill, until the last switch
    confirmed its resync (barrier reply; the mtimes of ``synced/<dpid>``);
    packets the stream lost from the kill until ``after_s`` after that (sent:
    kernel capture on the sender's vNIC; lost: never captured on the
    receiver's); and whether every bridge then holds exactly its flows."""
    from topologies.readiness import NotReady
    from vlab.waiting import wait_for

    ctl, port = net.control, 7201
    src, dst = _vms_on_two_hosts(net.lab)
    snic, dnic = src.vnics[0], dst.vnics[0]
    caps = {
        "sent": ctl.tcpdump(
            src.name, snic.name, work / "resync-sent.pcap", f"udp dst port {port}", ["-Q", "out"]
        ),
        "received": ctl.tcpdump(
            dst.name, dnic.name, work / "resync-received.pcap", f"udp dst port {port}", ["-Q", "in"]
        ),
    }
    recv = guest_tool(
        net,
        dst.name,
        "udp",
        "recv",
        "--bind",
        dnic.ip.ip,
        "--port",
        port,
        "--out",
        work / "resync-recv.txt",
        wait=False,
    )
    send, trials, error = None, [], None
    markers = [naming.synced_marker(net.run.dir, b.dpid) for b in net.bindings]
    try:
        wait_ready_line(recv, f"receiver on {dst.name}")
        send = udp_send(
            net, src.name, snic.ip.ip, dnic.ip.ip, port, pps, int(pps * (kills * (steady_s + 30) + 30))
        )
        wait_for(
            lambda: len(_arrivals(work / "resync-recv.txt")) > pps // 10, 10, f"stream reaching {dst.name}"
        )
        for _ in range(kills):
            time.sleep(steady_s)  # steady traffic before the kill (a schedule)
            t_kill = time.time()
            try:
                returned = net.restart_controller(kill=True)
            except NotReady as exc:
                error = str(exc)
                break
            # restart_controller times from just before the new process starts.
            t_start = time.time() - returned
            trials.append(
                {
                    "kill": t_kill,
                    "start": t_start,
                    "returned_s": returned,
                    "listening_s": net.last_restart["listening_s"],
                    "synced": [m.stat().st_mtime_ns / 1e9 for m in markers],
                    "flows": flows_after_resync(net),
                }
            )
        time.sleep(after_s)  # the stream goes on after the last resync
    finally:
        if send is not None:
            stop_tool(send)
        quiesce([c.pcap for c in caps.values()])
        stop_tool(recv)
        for c in caps.values():
            c.stop()
    sent = udp_seqs(caps["sent"].pcap, port)
    received = udp_seqs(caps["received"].pcap, port)
    arrivals = sorted(received.values())
    rows = []
    for t in trials:
        done = max(t["synced"])
        start, end = t["kill"], done + after_s
        window = [seq for seq, ts in sent.items() if start <= ts <= end]
        lost = [seq for seq in window if seq not in received]
        rows.append(
            {
                "resync_from_start_s": round(done - t["start"], 3),
                "listening_from_start_s": round(t["listening_s"], 3),
                "first_switch_from_start_s": round(min(t["synced"]) - t["start"], 3),
                "resync_from_kill_s": round(done - t["kill"], 3),
                "restart_returned_s": round(t["returned_s"], 3),
                "sent_in_window": len(window),
                "lost": len(lost),
                "longest_gap_ms": round(longest_silence([a for a in arrivals if a <= end], start) * 1000, 1),
                "flows_exact": all(
                    have == want and epochs == 1 for have, want, epochs in t["flows"].values()
                ),
                "flows": t["flows"],
            }
        )
    from_start = [r["resync_from_start_s"] for r in rows]
    from_kill = [r["resync_from_kill_s"] for r in rows]
    lost_total = sum(r["lost"] for r in rows)
    ok = error is None and len(rows) == kills
    return {
        "lab": net.lab.name,
        "why_this_lab": "the largest scale lab the bench brings up: the most switches and "
        "flows to resync, and already up",
        "bridges": len(net.bindings),
        "flows_total": sum(want for _, want, _ in rows[0]["flows"].values()) if rows else None,
        "stream": {
            "from": f"{src.name} ({src.host})",
            "to": f"{dst.name} ({dst.host})",
            "pps": pps,
            "sent": len(sent),
            "received": len(received),
            "lost": len(set(sent) - set(received)),
        },
        "kills": kills,
        "steady_s": steady_s,
        "window_after_resync_s": after_s,
        "trials": rows,
        "error": error,
        "listening_median_s": statistics.median(r["listening_from_start_s"] for r in rows) if rows else None,
        "median_s": statistics.median(from_start) if rows else None,
        "max_s": max(from_start) if rows else None,
        "from_kill_median_s": statistics.median(from_kill) if rows else None,
        "from_kill_max_s": max(from_kill) if rows else None,
        "lost_in_windows": lost_total,
        "flows_exact_every_time": ok and all(r["flows_exact"] for r in rows),
        "target_s": TARGETS["controller_resync_s"],
        "met": ok and max(from_start) < TARGETS["controller_resync_s"],
        "none_lost": ok and lost_total == TARGETS["controller_kill_lost_packets"],
    }


# -- configuration changes ------------------------------------------------------------------
def _vlan_of(frame: bytes) -> int | None:
    """The 802.1Q VLAN of an Ethernet frame (None: untagged)."""
    return int.from_bytes(frame[14:16], "big") & 0xFFF if frame[12:14] == b"\x81\x00" else None


def measure_config_change(net, work: Path, changes: int = 10, pps: int = 1000) -> dict:
    """A VM streams UDP at ``pps`` to a VM on another host while vCenter
    changes the VLAN of their distributed port group (``change_config``,
    what ``esxcli ... portgroup set --vlan-id`` does on a standard one),
    ``changes`` times, back and forth between its VLAN and the next. In
    effect: from the request to the first frame of the stream reaching the
    physical switch tagged with the new VLAN (1 ms resolution at 1000 pps;
    the physical switch port's kernel capture, same clock). Also how long
    the request took to return (every switch's barrier)."""
    from vlab.lab.edits import set_edit
    from vlab.operations.capture import PcapFollower
    from vlab.waiting import wait_for

    ctl, port = net.control, 7301
    src, dst = _vms_on_two_hosts(net.lab)
    snic = src.vnics[0]
    dvs = next(
        d for d in net.lab.distributed_switches if any(p.name == snic.port_group for p in d.port_groups)
    )
    path = ["distributed_switches", dvs.name, "port_groups", snic.port_group, "vlan"]
    home = next(p.vlan for p in dvs.port_groups if p.name == snic.port_group)
    uplink = ctl.applied()["pinning"][src.host][naming.vnic_port(src.name, snic.name)]
    cap = ctl.tcpdump(
        naming.FABRIC_NODE,
        ctl.fabric_port(src.host, uplink),
        work / "config-change.pcap",
        f"vlan and udp dst port {port}",
        ["-Q", "in"],
    )
    frames = PcapFollower(cap.pcap)
    send, samples, vlan = None, [], home
    try:
        send = udp_send(net, src.name, snic.ip.ip, dst.vnics[0].ip.ip, port, pps, pps * (changes * 10 + 10))
        wait_for(lambda: any(_vlan_of(f) == home for _, f in frames.read()), 10, "the stream at the switch")
        for _ in range(changes):
            new = home + 1 if vlan == home else home
            seen = len(frames.read())
            t0 = time.time()
            ctl.change_config([set_edit(path, new)])
            returned = time.time() - t0
            first = wait_for(
                lambda: next((t for t, f in frames.read()[seen:] if _vlan_of(f) == new), None),
                10,
                f"the stream on VLAN {new}",
            )
            samples.append(
                {"in_effect_ms": round((first - t0) * 1000, 2), "returned_ms": round(returned * 1000, 2)}
            )
            vlan = new
    finally:
        if vlan != home:
            ctl.change_config([set_edit(path, home)])
        if send is not None:
            stop_tool(send)
        cap.stop()
    effect = [x["in_effect_ms"] for x in samples]
    median = statistics.median(effect) if effect else None
    return {
        "changes": changes,
        "pps": pps,
        "lab": net.lab.name,
        "change": f"{dvs.name} port group {snic.port_group}: VLAN {home} <-> {home + 1}",
        "in_effect_ms": effect,
        "returned_ms": [x["returned_ms"] for x in samples],
        "median_ms": median,
        "max_ms": max(effect) if effect else None,
        "target_median_ms": TARGETS["config_change_median_ms"],
        "met": len(effect) == changes and median is not None and median <= TARGETS["config_change_median_ms"],
    }


# -- throughput ---------------------------------------------------------------------------
def measure_shaping(seconds: float, progress) -> list[dict]:
    rows = []
    for rate in SHAPING_MBPS:
        lab = write_lab(bench_labs.shaping_lab(rate))
        with lab_session(lab) as net:
            eps = {e.name: e for e in endpoints(net.lab)}
            r = iperf3(net, eps["sb"], eps["sa"], seconds)
        rows.append(
            {
                "configured_mbps": rate,
                "measured_mbps": round(r["mbps"], 2),
                "ratio": round(r["mbps"] / rate, 3),
                "retransmits": r["retransmits"],
            }
        )
        progress(f"shaping {rate} Mbit/s: {r['mbps']:.1f}")
    return rows


def measure_veth_ceiling(seconds: float) -> dict:
    """iperf3 between two namespaces joined by a bare veth pair (Mininet
    hosts, our run marker on their processes)."""
    from mininet.log import setLogLevel
    from mininet.net import Mininet

    from vlab.runtime import Run

    run = Run().create()
    net = None
    try:
        setLogLevel("error")
        net = Mininet(topo=None, build=False, controller=None)
        a, b = net.addHost("va", ip="10.99.0.1/24"), net.addHost("vb", ip="10.99.0.2/24")
        net.addLink(a, b)
        net.build()
        for h in (a, b):
            # As in every lab: no TX checksum offload (userspace OVS, README "Design notes").
            h.cmd("ethtool -K %s tx off >/dev/null 2>&1" % h.defaultIntf())
        server = b.popen(
            ["iperf3", "-s", "-1", "-B", "10.99.0.2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            from vlab.waiting import Pending, wait_for

            wait_for(
                lambda: "LISTEN" in b.cmd("ss -Hltn 'sport = :5201'") or Pending("iperf3 not listening"),
                10,
                "iperf3 on vb",
                interval=0.05,
            )
            data = json.loads(a.cmd(f"iperf3 -c 10.99.0.2 -t {seconds} -J"))
        finally:
            stop_tool(server)
        return {"mbps": round(data["end"]["sum_received"]["bits_per_second"] / 1e6, 1)}
    finally:
        if net is not None:
            net.stop()
        run.remove()


def measure_throughputs(seconds: float, progress) -> dict:
    from experiments import nsx_packet_walk as walk

    out = {"veth": measure_veth_ceiling(seconds)}
    progress(f"veth ceiling {out['veth']['mbps']} Mbit/s")
    with lab_session(write_lab(bench_labs.single_host_lab())) as net:
        eps = {e.name: e for e in endpoints(net.lab)}
        out["ovs_bridge"] = {"mbps": round(iperf3(net, eps["b2"], eps["b1"], seconds)["mbps"], 1)}
    progress(f"OVS bridge ceiling {out['ovs_bridge']['mbps']} Mbit/s")
    for key, lab in (("vlan", walk.VLAN_LAB), ("overlay", walk.OVERLAY_LAB)):
        with lab_session(lab) as net:
            out[key] = {"mbps": round(walk.measure_throughput(net, seconds)["mbps"], 1)}
            if key == "overlay":
                out["steady_packet_ins"] = measure_steady_packet_ins(net)
        progress(f"{key} {out[key]['mbps']} Mbit/s")
    out["overlay_over_vlan"] = round(out["overlay"]["mbps"] / out["vlan"]["mbps"], 3)
    return out


# -- make run --------------------------------------------------------------------------------
def last_make_run() -> dict:
    """What the last full ``vlab run`` recorded (results/run.json)."""
    path = RESULTS / "run.json"
    if path.exists():
        return {"measured": True, "source": "results/run.json", **json.loads(path.read_text())}
    # No full run recorded yet: the stored results' own wall times, labelled as such.
    import experiments

    walls = {}
    for name in experiments.REGISTRY:
        try:
            env = json.loads((RESULTS / name / "result.json").read_text())["environment"]
            walls[name] = {"wall_s": env.get("wall_s"), "git": env.get("git")}
        except (OSError, KeyError, ValueError):
            walls[name] = None
    known = [w["wall_s"] for w in walls.values() if w and w.get("wall_s")]
    return {
        "measured": False,
        "source": "sum of the stored results' wall times "
        "(no full `vlab run` recorded in results/run.json yet)",
        "wall_s": round(sum(known), 1) if len(known) == len(walls) else None,
        "experiments": walls,
    }


# -- the whole bench ------------------------------------------------------------------------
def run(params: dict | None = None, work: Path | None = None) -> dict:
    params = params or {}
    hosts = params.get("hosts", SCALE_HOSTS)
    trials = params.get("failover_trials", 20)
    moves = params.get("vmotion_moves", 10)
    seconds = params.get("iperf_s", 4.0)
    kills = params.get("controller_kills", 10)
    changes = params.get("config_changes", 10)
    beacon_trials = params.get("beacon_trials", 20)
    lbt_trials = params.get("lbt_trials", 3)
    lacp_trials = params.get("lacp_trials", 10)
    progress = Progress(NAME)
    work = work or Path(os.environ.get("TMPDIR", "/tmp")) / f"vlab-bench-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    result = {
        "experiment": NAME,
        "params": {
            "hosts": list(hosts),
            "vms_per_host": VMS_PER_HOST,
            "failover_trials": trials,
            "vmotion_moves": moves,
            "controller_kills": kills,
            "config_changes": changes,
            "beacon_trials": beacon_trials,
            "lbt_trials": lbt_trials,
            "iperf_s": seconds,
            "shaping_mbps": list(SHAPING_MBPS),
        },
        "targets": TARGETS,
    }
    result["scale"] = []

    def controller_kills(net):
        progress(f"controller resync: {kills} kills on {net.lab.name}")
        result["controller_resync"] = measure_controller_resync(net, work, kills)
        progress(f"controller resync max {result['controller_resync']['max_s']} s")
        progress(f"configuration change -> in effect: {changes} changes on {net.lab.name}")
        result["config_change"] = measure_config_change(net, work, changes)
        progress(f"configuration change median {result['config_change']['median_ms']} ms")

    for n in hosts:
        progress(f"scale: {n} hosts x {VMS_PER_HOST} VMs")
        result["scale"].append(measure_scale(n, progress, then=controller_kills if n == max(hosts) else None))
    largest = LABS / f"bench-{max(hosts)}x{VMS_PER_HOST}.yaml"
    result["compile"] = measure_compile(largest)
    progress(f"compile: {result['compile']}")
    with lab_session(write_lab(bench_labs.operations_lab())) as net:
        progress("failover trials")
        result["failover"] = measure_failover(net, work, trials)
        progress(f"failover p95 {result['failover']['p95_ms']} ms; vMotion moves")
        result["vmotion"] = measure_vmotion(net, work, moves)
    with lab_session(REPO / "labs" / "beacon-probing.yaml") as net:
        progress(f"beacon probing detection, {beacon_trials} trials")
        result["beacon_detection"] = measure_beacon_detection(net, beacon_trials)
    result["lbt_reaction"] = measure_lbt_reaction(lbt_trials, progress)
    with lab_session(lacp.LAB) as net:
        progress(f"LACP member removal, {lacp_trials} trials")
        result["lacp_removal"] = measure_lacp_removal(net, lacp_trials)
    result["shaping"] = measure_shaping(seconds, progress)
    result["throughput"] = measure_throughputs(seconds, progress)
    result["make_run"] = last_make_run()
    steady = result["throughput"]["steady_packet_ins"]["packet_ins"]
    worst_ratio = min(r["ratio"] for r in result["shaping"])
    result["verdicts"] = {
        "packet-ins in steady state: 0": steady == TARGETS["packet_ins_steady"],
        "uplink failover p95 under 100 ms": result["failover"]["met"],
        "vMotion blackout minus stun under 50 ms": result["vmotion"]["met"],
        "shaping fidelity 0.95 or better at every rate": worst_ratio >= TARGETS["shaping_ratio"],
        "every VM reaches every VM at every scale": all(r["pairs_missing"] == 0 for r in result["scale"]),
        "controller resync under 1 s from its restart, every kill": result["controller_resync"]["met"],
        "no packet of established traffic lost across controller kills": result["controller_resync"][
            "none_lost"
        ],
        "every switch holds exactly its flows after every resync": result["controller_resync"][
            "flows_exact_every_time"
        ],
        "a configuration change is in effect within 50 ms (median)": result["config_change"]["met"],
        "beacon probing fails the uplink %g to %g s after the pull, every trial" % BEACON_DETECTION_S: all(
            BEACON_DETECTION_S[0] <= d <= BEACON_DETECTION_S[1]
            for d in result["beacon_detection"]["detected_s"]
        ),
        "load-based teaming moves within %g to %g s of saturation, every trial" % LBT_REACTION_S: all(
            m is not None and LBT_REACTION_S[0] <= m <= LBT_REACTION_S[1]
            for m in result["lbt_reaction"]["moved_after_s"]
        ),
        "an LACP member leaves %g to %g s after its partner fell silent, every trial" % LACP_REMOVAL_S: all(
            LACP_REMOVAL_S[0] <= d <= LACP_REMOVAL_S[1] for d in result["lacp_removal"]["removed_s"]
        ),
    }
    result["environment"] = environment()
    result["environment"]["machine"] = machine()
    result["environment"]["wall_s"] = round(time.monotonic() - t0, 1)
    return result


# -- teaming ---------------------------------------------------------------------------------
REPO = Path(__file__).resolve().parents[1]


def measure_beacon_detection(net, trials: int) -> dict:
    """Pull acc1-core ``trials`` times: seconds from the pull to the beacon
    verdict that fails vmnic0 of esx1's vSwitch0, and from the plug to the
    verdict that restores it (the controller's events)."""
    ctl = net.control

    def verdict(since: float, failed: bool) -> float:
        def found():
            for e in ctl.events():
                if e["event"] == "beacon" and e["vswitch"] == "vSwitch0" and e["t"] >= since:
                    if ("vmnic0" in e["failed"]) == failed:
                        return e["t"] - since
            return Pending("no beacon verdict yet")

        return wait_for(found, 15, "the beacon verdict on vmnic0")

    detected, restored = [], []
    for _ in range(trials):
        t_down = time.time()
        ctl.dci_link("acc1-core", up=False)
        try:
            detected.append(round(verdict(t_down, True), 3))
        finally:
            t_up = time.time()
            ctl.dci_link("acc1-core", up=True)
        restored.append(round(verdict(t_up, False), 3))
    return {
        "trials": trials,
        "detected_s": detected,
        "restored_s": restored,
        "detected_median_s": statistics.median(detected),
        "detected_p95_s": percentile(detected, 95),
        "detected_max_s": max(detected),
    }


def measure_lacp_removal(net, trials: int) -> dict:
    """Silence vmnic1's partner port ``trials`` times (lagA: fast timeout):
    seconds until esx1's OVS takes vmnic1 out of the bundle, and until it
    is back once the partner speaks again (OVS's own LACP state)."""
    removed, returned = [], []
    limit = LACP_REMOVAL_S[1] + 5
    for _ in range(trials):
        try:
            removed.append(lacp.silence(net, "lagA", "vmnic1", limit))
        finally:
            returned.append(lacp.speak_again(net, "lagA", "vmnic1"))
    return {
        "trials": trials,
        "timeout": "fast",
        "removed_s": removed,
        "returned_s": returned,
        "removed_median_s": statistics.median(removed),
        "removed_max_s": max(removed),
    }


def measure_lbt_reaction(trials: int, progress) -> dict:
    """Two VMs saturate one uplink (fresh lab each trial): seconds from the
    load's start to load-based teaming's move (the controller's event)."""
    from experiments.teaming_policies import LABS as TEAMING_LABS
    from experiments.teaming_policies import measure_load_based

    moved = []
    for i in range(trials):
        progress(f"load-based teaming, trial {i + 1}/{trials}")
        with lab_session(TEAMING_LABS["lbt"]) as net:
            r = measure_load_based(net, LBT_LOAD_S)
        moved.append(r["moved_after_s"][0] if r["moved_after_s"] else None)
    got = [m for m in moved if m is not None]
    return {
        "trials": trials,
        "moved_after_s": moved,
        "median_s": statistics.median(got) if got else None,
        "max_s": max(got) if got else None,
    }


def machine() -> dict:
    cpu = "unknown"
    try:
        cpu = next(
            line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    with open("/proc/meminfo") as f:
        total = int(f.readline().split()[1]) * 1024
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": round(total / 2**30, 1),
        "virtualized": subprocess.run(["systemd-detect-virt"], capture_output=True, text=True).stdout.strip()
        or "unknown",
    }


# -- figures --------------------------------------------------------------------------------
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9"]  # Okabe-Ito


def _plot_teaming(plt, result: dict, outdir: Path) -> list[Path]:
    """Beacon probing's detection times, load-based teaming's reaction
    times and LACP's member removal times, trials counted per bin, against
    their target ranges."""
    from matplotlib.ticker import MaxNLocator

    lr = result.get("lacp_removal")  # absent from results before it was measured
    fig, axes = plt.subplots(1, 3 if lr else 2, figsize=(15 if lr else 10, 3.2))
    ax1, ax2 = axes[0], axes[1]
    bd, lbt = result["beacon_detection"], result["lbt_reaction"]
    panels = (
        (
            ax1,
            bd["detected_s"],
            BEACON_DETECTION_S,
            0.1,
            f"Beacon probing: pull -> failed ({bd['trials']} trials)",
        ),
        (
            ax2,
            [m for m in lbt["moved_after_s"] if m is not None],
            LBT_REACTION_S,
            0.5,
            f"Load-based teaming: load -> move ({lbt['trials']} trials)",
        ),
    )
    if lr:
        panels += (
            (
                axes[2],
                lr["removed_s"],
                LACP_REMOVAL_S,
                0.1,
                f"LACP: silence -> removed ({lr['trials']} trials)",
            ),
        )
    for ax, values, target, width, title in panels:
        lo = min(target[0], min(values, default=target[0])) - 1
        hi = max(target[1], max(values, default=0)) + 1
        ax.axvspan(*target, color="#EEEEEE", label="target")
        bins = [lo + i * width for i in range(int(round((hi - lo) / width)) + 1)]
        ax.hist(values, bins=bins, color=PALETTE[0], label="trials")
        ax.set(xlabel="seconds", ylabel="trials", title=title, xlim=(lo, hi))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, outdir, "teaming")


def plot(result: dict, outdir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    plt.rcParams.update({"font.size": 11})
    paths = []

    scale = result["scale"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    hosts = [r["hosts"] for r in scale]
    ax1.plot(hosts, [r["bringup_s"] for r in scale], "o-", color=PALETTE[0], label="bring-up")
    ax1.plot(
        hosts,
        [r["reach_all_s"] for r in scale],
        "s--",
        color=PALETTE[1],
        label="until every VM reaches every VM",
    )
    ax1.set(
        xlabel=f"ESXi hosts ({VMS_PER_HOST} VMs each)", ylabel="time (s)", title="Bring-up time", xticks=hosts
    )
    ax1.legend()
    ax2.plot(
        hosts,
        [r["peak_memory_mb"] for r in scale],
        "o-",
        color=PALETTE[2],
        label="system memory in use (peak - before)",
    )
    ax2.plot(
        hosts,
        [r["peak_rss_of_our_processes_mb"] for r in scale],
        "s--",
        color=PALETTE[3],
        label="RSS of our processes (peak)",
    )
    ax2.set(
        xlabel=f"ESXi hosts ({VMS_PER_HOST} VMs each)",
        ylabel="memory (MiB)",
        title="Peak memory",
        xticks=hosts,
    )
    ax2.legend()
    paths += save_figure(fig, outdir, "scale")

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    fo = result["failover"]
    vals = [v for v in fo["failover_ms"] if v is not None]
    ax1.plot(range(1, len(vals) + 1), vals, "o", color=PALETTE[0], label="trial")
    ax1.axhline(fo["target_p95_ms"], color=PALETTE[3], ls="--", label="target (p95)")
    ax1.axhline(fo["p95_ms"], color=PALETTE[1], ls=":", label=f"p95 = {fo['p95_ms']:.0f} ms")
    ax1.set(
        xlabel="trial",
        ylabel="link down -> first packet on standby (ms)",
        title="Uplink failover",
        ylim=(0, max(vals + [fo["target_p95_ms"]]) * 1.15),
    )
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))  # trials are whole numbers
    ax1.legend()
    vm = result["vmotion"]
    moves = range(1, len(vm["per_move"]) + 1)
    ax2.plot(
        moves, [r["to_peer_blackout_ms"] for r in vm["per_move"]], "o", color=PALETTE[0], label="VM -> peer"
    )
    ax2.plot(
        moves, [r["to_mover_blackout_ms"] for r in vm["per_move"]], "s", color=PALETTE[2], label="peer -> VM"
    )
    ax2.axhline(vm["target_ms"], color=PALETTE[3], ls="--", label="target")
    ax2.set(
        xlabel="vMotion",
        ylabel="blackout - stun (ms)",
        title=f"vMotion blackout (stun {vm['stun_s'] * 1000:.0f} ms)",
    )
    ax2.legend()
    paths += save_figure(fig, outdir, "failover-vmotion")

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    sh = result["shaping"]
    ax1.plot(
        [r["configured_mbps"] for r in sh],
        [r["ratio"] for r in sh],
        "o-",
        color=PALETTE[0],
        label="TCP measured / configured",
    )
    ax1.axhline(TARGETS["shaping_ratio"], color=PALETTE[3], ls="--", label="target")
    ax1.set(
        xscale="log",
        xlabel="configured link rate (Mbit/s)",
        ylabel="ratio",
        title="Link shaping fidelity",
        ylim=(0.8, 1.02),
    )
    ax1.set_xticks([r["configured_mbps"] for r in sh], [str(r["configured_mbps"]) for r in sh])
    ax1.legend()
    tp = result["throughput"]
    bars = [
        ("veth pair", tp["veth"]["mbps"]),
        ("OVS bridge", tp["ovs_bridge"]["mbps"]),
        ("VLAN", tp["vlan"]["mbps"]),
        ("VXLAN overlay", tp["overlay"]["mbps"]),
    ]
    ax2.bar([b[0] for b in bars], [b[1] for b in bars], color=PALETTE[:4])
    ax2.set(
        yscale="log",
        ylabel="TCP throughput (Mbit/s)",
        title=f"Throughput (VLAN/overlay on 100 Mbit/s links: ratio {tp['overlay_over_vlan']})",
    )
    for i, (_, v) in enumerate(bars):
        ax2.text(i, v, f"{v:.0f}", ha="center", va="bottom")
    paths += save_figure(fig, outdir, "throughput")
    if "beacon_detection" in result:
        paths += _plot_teaming(plt, result, outdir)

    cr = result.get("controller_resync")  # absent from results before it was measured
    if cr and cr["trials"]:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        rows = cr["trials"]
        kills = range(1, len(rows) + 1)
        ax1.plot(
            kills,
            [r["resync_from_start_s"] for r in rows],
            "o",
            color=PALETTE[0],
            label="new start -> all synced",
        )
        ax1.plot(
            kills,
            [r["resync_from_kill_s"] for r in rows],
            "s",
            color=PALETTE[1],
            mfc="none",
            ms=10,
            label="kill -> all synced",
        )
        ax1.plot(
            kills,
            [r["first_switch_from_start_s"] for r in rows],
            "^",
            color=PALETTE[2],
            label="new start -> first synced",
        )
        if all("listening_from_start_s" in r for r in rows):  # recorded since 2026-11
            ax1.plot(
                kills,
                [r["listening_from_start_s"] for r in rows],
                "v",
                color=PALETTE[4],
                label="new start -> listening",
            )
        ax1.axhline(cr["target_s"], color=PALETTE[3], ls="--", label="target")
        top = max([cr["target_s"]] + [r["resync_from_kill_s"] for r in rows])
        ax1.set(
            xlabel="controller kill (SIGKILL)",
            ylabel="time (s)",
            ylim=(0, top * 1.45),
            title=f"Controller resync: {cr['bridges']} switches, {cr['flows_total']} flows",
            xticks=list(kills),
        )
        ax1.legend(fontsize=8, ncol=3, loc="upper center")  # above the points
        lost = [r["lost"] for r in rows]
        ax2.bar(kills, lost, color=PALETTE[0])
        for k, n, r in zip(kills, lost, rows):
            ax2.text(k, n, f"{n}/{r['sent_in_window']}", ha="center", va="bottom", fontsize=8, rotation=90)
        exact = "exact" if cr["flows_exact_every_time"] else "NOT exact"
        ax2.set(
            xlabel="controller kill (SIGKILL)",
            ylabel="packets lost / sent meanwhile",
            ylim=(0, max(lost + [1]) * 1.6),
            xticks=list(kills),
            title=f"{cr['stream']['pps']} pps stream: lost / sent (flows {exact})",
        )
        paths += save_figure(fig, outdir, "controller-resync")
    return paths

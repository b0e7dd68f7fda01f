"""Experiment ``nsx-packet-walk``: seed 004 (NSX packet walks), VLAN-backed
vs overlay.

Labs: ``labs/nsx-vlan.yaml`` (VMs on VLAN port groups, a physical router)
and ``labs/nsx-overlay.yaml`` (the same VMs on VXLAN logical switches with
a distributed router, four hosts in two VTEP subnets); variants of the
overlay lab (ARP suppression off, transport MTU 1500) and generated scale
labs are written next to the result, so each case can be brought up again
with ``vlab lab up``.

Every frame entering the physical network is captured where it arrives (the
physical switch port of every ESXi uplink and router interface), so "seen on
the physical network" means exactly that. Measured:

(a) physical switch MAC table entries as the number of VMs grows (VM MACs
    with VLAN backing, VTEP MACs only with the overlay);
(b) ARP requests on the physical network when a VM resolves a neighbour:
    VLAN (flooded), overlay without suppression (replicated), with
    suppression (answered on the source host);
(c) routed traffic same-host and cross-host: IP hops (TTL at the
    destination), how many times each packet entered the physical network,
    bytes it put there, round-trip time;
(d) bulk TCP through the overlay at transport MTU 1600 vs 1500, with ping
    at 1500; and TCP throughput overlay vs VLAN at equal link rate;
plus the packet walk of both diagrams as numbered steps, one per frame seen
at a capture point, in time order.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from experiments.common import (
    RESULTS,
    Progress,
    environment,
    lab_session,
    quiesce,
    read_pcap,
    save_figure,
)
from experiments.fidelity import CpuMeter, checks, shaping_drops
from vlab import naming
from vlab.lab.reachability import endpoints
from vlab.lab.resolve import link_mbps
from vlab.shell.snapshot import nsx_tables
from vlab.waiting import Pending, wait_for

if TYPE_CHECKING:
    from topologies.network import LabNetwork

NAME = "nsx-packet-walk"
LABS = Path(__file__).resolve().parents[1] / "labs"
VLAN_LAB, OVERLAY_LAB = LABS / "nsx-vlan.yaml", LABS / "nsx-overlay.yaml"
DEFAULTS = {
    "scale_vms": [4, 8, 16, 32, 64],
    "arp_rounds": 5,
    "pings": 20,
    "iperf_s": 4.0,
    "bulk_bytes": 2_000_000,
}
VXLAN_PORT = 4789
IP = {"vm1": "10.1.1.11", "vm2": "10.1.1.12", "vm3": "10.1.2.13", "vm4": "10.1.2.14"}


# -- capturing the physical network --------------------------------------------------
class Underlay:
    """Captures of every frame entering the physical network: at the switch
    port of each ESXi uplink and of each router/host interface."""

    def __init__(self, net: LabNetwork, work: Path, tag: str):
        self.net, self.caps, self.pcaps = net, [], []
        ports = [(f"{h.name}/{u.name}", u.switch, u.port) for h in net.lab.esxi_hosts for u in h.uplinks]
        ports += [(f"{h.name}/{i.name}", i.switch, i.port) for h in net.lab.hosts for i in h.interfaces]
        for where, switch, port in ports:
            pcap = work / f"{tag}-{where.replace('/', '-')}.pcap"
            self.caps.append(
                net.control.tcpdump(
                    naming.FABRIC_NODE, naming.fabric_port(switch, port), pcap, direction=["-Q", "in"]
                )
            )
            self.pcaps.append((where, pcap))

    def stop(self) -> list[tuple[str, object]]:
        """(capture point, frame) for every captured frame, in time order."""
        quiesce([p for _, p in self.pcaps])
        for c in self.caps:
            c.stop()
        frames = [(where, f) for where, pcap in self.pcaps for f in read_pcap(pcap)]
        self.frames = sorted(frames, key=lambda wf: float(wf[1].time))
        return self.frames

    # ``with Underlay(...) as under: ...`` then ``under.frames``.
    def __enter__(self) -> "Underlay":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _inner(frame):
    """The frame a VXLAN packet carries, or the frame itself."""
    from scapy.layers.vxlan import VXLAN

    return frame[VXLAN].payload if VXLAN in frame else frame


def _is_vxlan(frame) -> bool:
    from scapy.layers.vxlan import VXLAN

    return VXLAN in frame


def arp_requests(frames, target: str) -> dict:
    """ARP requests for ``target`` that entered the physical network, bare
    (VLAN-backed) or inside VXLAN. The underlay's own ARP (VTEPs and the
    transport gateway refreshing each other) is not counted."""
    from scapy.layers.l2 import ARP

    asks = lambda f: ARP in f and f[ARP].op == 1 and f[ARP].pdst == target  # noqa: E731
    raw = sum(1 for _, f in frames if not _is_vxlan(f) and asks(f))
    enc = sum(1 for _, f in frames if _is_vxlan(f) and asks(_inner(f)))
    return {"raw": raw, "encapsulated": enc, "total": raw + enc}


# -- (a) MAC tables vs number of VMs ---------------------------------------------------
def scale_lab(vms: int, overlay: bool) -> dict:
    """Two hosts on one physical switch with ``vms`` VMs split between them,
    all in one segment: VLAN 10, or logical switch web over VTEPs."""
    host = lambda i: {  # noqa: E731
        "name": f"esx{i}",
        "uplinks": [{"name": "vmnic0", "speed": 10, "switch": "pswitch1", "port": i}],
        "distributed_switches": [{"name": "dvs", "uplinks": {"dvUplink1": "vmnic0"}}],
        **(
            {
                "vmkernel": [
                    {"name": "vmk3", "port_group": "VTEP", "stack": "vxlan", "ip": f"172.16.200.{10 + i}/24"}
                ]
            }
            if overlay
            else {}
        ),
    }
    nic = (lambda n: {"logical_switch": "web"}) if overlay else (lambda n: {"port_group": "web"})
    lab = {
        "name": f"scale-{'ovl' if overlay else 'vlan'}-{vms}",
        "description": f"{vms} VMs on 2 hosts, {'VXLAN' if overlay else 'VLAN 10'}",
        "physical_switches": [{"name": "pswitch1"}],
        "distributed_switches": [
            {
                "name": "dvs",
                "uplinks": ["dvUplink1"],
                "port_groups": [{"name": "VTEP", "vlan": 200} if overlay else {"name": "web", "vlan": 10}],
            }
        ],
        "esxi_hosts": [host(1), host(2)],
        "vms": [
            {
                "name": f"v{n}",
                "host": f"esx{1 + n % 2}",
                "vnics": [
                    {
                        **nic(n),
                        "mac": f"00:50:56:b0:{n // 256:02x}:{n % 256:02x}",
                        "ip": f"10.9.{n // 250}.{n % 250 + 2}/16",
                    }
                ],
            }
            for n in range(vms)
        ],
    }
    if overlay:
        lab["nsx"] = {"logical_switches": [{"name": "web", "vni": 5001}]}
    return lab


def measure_mac_tables(net: LabNetwork) -> dict:
    """Every VM pings the next VM (on the other host); then the physical
    switch's MAC table is read."""
    vms = [e for e in endpoints(net.lab) if "/" not in e.name]
    for a, b in zip(vms, vms[1:] + vms[:1]):
        # Two pings: with the overlay the first may be spent resolving the
        # next hop of the VTEP (OVS's tunnel neighbour cache).
        net.node(a.node).cmd(f"ping -n -q -c 2 -i 0.2 -W 1 {b.ip.ip} >/dev/null 2>&1")
    table = net.mac_table("pswitch1")
    vm_macs = {nic.mac for vm in net.lab.vms for nic in vm.vnics}
    return {
        "vms": len(vms),
        "entries": len(table),
        "vm_macs": sum(1 for r in table if r["mac"] in vm_macs),
        "other_macs": sum(1 for r in table if r["mac"] not in vm_macs),
    }


# -- (b) ARP ---------------------------------------------------------------------------
def measure_arp(net: LabNetwork, work: Path, tag: str, rounds: int) -> dict:
    """vm1 forgets vm2's MAC and resolves it again, ``rounds`` times; count
    the ARP requests that entered the physical network and how often the
    resolution (and the ping after it) succeeded."""
    vm1 = net.node("vm1")
    replies = 0
    with Underlay(net, work, f"arp-{tag}") as under:
        for _ in range(rounds):
            # With the neighbour entry gone the guest's kernel broadcasts an
            # ARP request before its echo request can leave.
            vm1.cmd("ip neigh flush dev eth0")
            out = vm1.cmd(f"ping -n -c 1 -W 2 {IP['vm2']} >/dev/null 2>&1; echo rc=$?")
            replies += out.strip().endswith("rc=0")
    return {
        "rounds": rounds,
        "replies": replies,
        "arp_requests_on_wire": arp_requests(under.frames, IP["vm2"]),
    }


# -- (c) routing -----------------------------------------------------------------------
def measure_route(net: LabNetwork, work: Path, tag: str, src: str, dst: str, pings: int) -> dict:
    """``pings`` echo requests src -> dst (warm ARP caches first): RTT, TTL
    at the destination, and what the physical network carried."""
    from scapy.layers.inet import ICMP
    from scapy.layers.inet import IP as IPL

    net.node(src).cmd(f"ping -n -q -c 3 -i 0.2 -W 1 {IP[dst]} >/dev/null 2>&1")
    dst_pcap = work / f"route-{tag}-{dst}.pcap"
    at_dst = net.control.tcpdump(dst, "eth0", dst_pcap, "icmp", ["-Q", "in"])
    try:
        with Underlay(net, work, f"route-{tag}") as under:
            out = net.node(src).cmd(f"ping -n -c {pings} -i 0.05 -W 1 {IP[dst]}")
    finally:
        quiesce([dst_pcap])
        at_dst.stop()
    frames = under.frames
    rtts = [float(line.split("time=")[1].split()[0]) for line in out.splitlines() if "time=" in line]
    requests = [f for f in read_pcap(dst_pcap) if ICMP in f and f[ICMP].type == 8]
    on_wire = [
        (w, f)
        for w, f in frames
        if IPL in _inner(f)
        and ICMP in _inner(f)
        and _inner(f)[ICMP].type == 8
        and _inner(f)[IPL].src == IP[src]
        and _inner(f)[IPL].dst == IP[dst]
    ]
    return {
        "pings": pings,
        "replies": len(rtts),
        "rtt_ms": {
            "mean": round(statistics.mean(rtts), 3) if rtts else None,
            "median": round(statistics.median(rtts), 3) if rtts else None,
        },
        "ttl_at_destination": sorted({f[IPL].ttl for f in requests}),
        "ip_hops": sorted({64 - f[IPL].ttl for f in requests}),
        "requests_entering_physical_network": len(on_wire),
        "times_each_request_entered": round(len(on_wire) / pings, 2),
        "bytes_on_physical_network": sum(len(f) for _, f in on_wire),
        "encapsulated": sum(1 for _, f in on_wire if _is_vxlan(f)),
        "capture_points": sorted({w for w, _ in on_wire}),
    }


# -- (d) MTU and throughput ------------------------------------------------------------
def measure_bulk(net: LabNetwork, nbytes: int, timeout_s: float = 8.0) -> dict:
    """Ping (small) and a bulk TCP transfer vm1 -> vm2 of ``nbytes``."""
    ping = net.node("vm1").cmd(f"ping -n -q -c 3 -i 0.2 -W 1 {IP['vm2']} | tail -2")
    ok_ping = " 0% packet loss" in ping or ", 0% packet loss" in ping
    vm2 = net.node("vm2")
    server = vm2.popen(
        ["iperf3", "-s", "-1", "-p", "5301"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(
            lambda: "LISTEN" in vm2.cmd("ss -Hltn 'sport = :5301'") or Pending("iperf3 not listening"),
            10,
            "iperf3 on vm2",
            interval=0.05,
        )
        t0 = time.monotonic()
        out = net.node("vm1").cmd(
            f"timeout {timeout_s} iperf3 -c {IP['vm2']} -p 5301 "
            f"-n {nbytes} --connect-timeout 2000 -J; echo rc=$?"
        )
        wall = time.monotonic() - t0
    finally:
        if server.poll() is None:
            server.terminate()
        server.wait(10)
    completed = out.strip().endswith("rc=0")
    return {
        "ping_ok": ok_ping,
        "bulk_bytes": nbytes,
        "bulk_completed": completed,
        "bulk_wall_s": round(wall, 2),
        "bulk_mbps": round(nbytes * 8 / wall / 1e6, 2) if completed else 0.0,
    }


def measure_throughput(net: LabNetwork, seconds: float) -> dict:
    from experiments.common import iperf3

    eps = {e.name: e for e in endpoints(net.lab)}
    return iperf3(net, eps["vm2"], eps["vm1"], seconds)


# -- the packet walk ---------------------------------------------------------------------
def _summary(frame) -> str:
    """Headers of a frame, outer first, in the seed's vocabulary."""
    from scapy.layers.inet import ICMP, UDP
    from scapy.layers.inet import IP as IPL
    from scapy.layers.l2 import ARP, Dot1Q, Ether
    from scapy.layers.vxlan import VXLAN

    parts = []
    layer = frame
    while layer is not None and layer.name != "NoPayload":
        if isinstance(layer, Ether):
            parts.append(f"Ether {layer.src} -> {layer.dst}")
        elif isinstance(layer, Dot1Q):
            parts.append(f"802.1Q vlan {layer.vlan}")
        elif isinstance(layer, ARP):
            what = f"who-has {layer.pdst}" if layer.op == 1 else f"{layer.psrc} is-at {layer.hwsrc}"
            parts.append(f"ARP {what}")
            break
        elif isinstance(layer, IPL):
            parts.append(f"IP {layer.src} -> {layer.dst} ttl {layer.ttl}")
        elif isinstance(layer, UDP) and VXLAN in layer:
            parts.append(f"UDP {layer.dport}")
        elif isinstance(layer, VXLAN):
            parts.append(f"VXLAN vni {layer.vni} |")
        elif isinstance(layer, ICMP):
            parts.append(f"ICMP echo-{'request' if layer.type == 8 else 'reply'}")
            break
        layer = layer.payload
    return ", ".join(parts)


def packet_walk(net: LabNetwork, work: Path, tag: str, src: str, dst: str) -> list[dict]:
    """One ping src -> dst from cold ARP caches: every ARP and ICMP frame at
    the guests' vNICs and where it entered the physical network, in time order."""
    from scapy.layers.inet import ICMP
    from scapy.layers.l2 import ARP

    for node in (src, dst, *(h.name for h in net.lab.hosts if h.kind == "router")):
        for intf in net.node(node).intfNames():
            if intf != "lo":
                net.node(node).cmd(f"ip neigh flush dev {intf}")
    guest_pcaps = {g: work / f"walk-{tag}-{g}.pcap" for g in (src, dst)}
    guests = [net.control.tcpdump(g, "eth0", p, "arp or icmp") for g, p in guest_pcaps.items()]
    try:
        with Underlay(net, work, f"walk-{tag}") as under:
            net.node(src).cmd(f"ping -n -c 1 -W 2 {IP[dst]}")
    finally:
        quiesce(list(guest_pcaps.values()))
        for g in guests:
            g.stop()
    frames = under.frames + [(f"{g} vNIC", f) for g, p in guest_pcaps.items() for f in read_pcap(p)]
    wanted = [(w, f) for w, f in frames if ARP in _inner(f) or ICMP in _inner(f)]
    wanted.sort(key=lambda wf: float(wf[1].time))
    steps = [
        {
            "t_ms": round((float(f.time) - float(wanted[0][1].time)) * 1000, 3),
            "where": w,
            "headers": _summary(f),
        }
        for w, f in wanted
    ]
    for i, s in enumerate(steps, 1):
        s["step"] = i
    return steps


def _walk_checks(steps: list[dict], overlay: bool) -> dict:
    """The seed's steps, checked against the walk."""
    phys = [s for s in steps if "vNIC" not in s["where"]]
    vm_macs = ("00:50:56:a1:00:01", "00:50:56:a1:00:02", "00:50:56:a1:00:03", "00:50:56:a1:00:04")
    outer_vm_mac = [s for s in phys if any(m in s["headers"].split(", ")[0] for m in vm_macs)]
    if overlay:
        return {
            "vm_arp_then_icmp_at_vnics": any(
                "ARP who-has" in s["headers"] for s in steps if s["where"] == "vm1 vNIC"
            ),
            "physical_network_sees_only_vtep_addresses": bool(phys)
            and not outer_vm_mac
            and all("VXLAN" in s["headers"] for s in phys),
            "delivered_to_destination": any(
                "echo-request" in s["headers"] for s in steps if s["where"].startswith("vm2")
            ),
        }
    return {
        "arp_for_gateway_on_the_wire": any("ARP who-has 10.1.1.1" in s["headers"] for s in phys),
        "vm_macs_on_the_wire": bool(outer_vm_mac),
        "delivered_to_destination": any(
            "echo-request" in s["headers"] for s in steps if s["where"].startswith("vm")
        ),
    }


def print_walk(title: str, steps: list[dict]) -> str:
    lines = [title]
    for s in steps:
        lines.append(f"  {s['step']:2d}. +{s['t_ms']:8.3f} ms  {s['where']:<16} {s['headers']}")
    return "\n".join(lines)


# -- the experiment ----------------------------------------------------------------------
def _variant(base: Path, out: Path, edit) -> Path:
    data = yaml.safe_load(base.read_text())
    edit(data)
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def run(params: dict | None = None) -> dict:
    p = {**DEFAULTS, **(params or {})}
    t0 = time.monotonic()
    outdir = RESULTS / NAME
    work, labdir = outdir / "pcaps", outdir / "labs"
    work.mkdir(parents=True, exist_ok=True)
    labdir.mkdir(parents=True, exist_ok=True)
    phase, cpu, drops, env = Progress(NAME), CpuMeter(), {}, {}
    result = {"experiment": NAME, "seed": "004_6019cda390e34379.txt", "params": p}

    no_suppression = _variant(
        OVERLAY_LAB,
        labdir / "nsx-overlay-no-arp-suppression.yaml",
        lambda d: [ls.update(arp_suppression=False) for ls in d["nsx"]["logical_switches"]],
    )
    mtu1500 = _variant(
        OVERLAY_LAB, labdir / "nsx-overlay-mtu1500.yaml", lambda d: d["nsx"].update(transport_mtu=1500)
    )

    designs = {}
    for design, lab in (("vlan", VLAN_LAB), ("overlay", OVERLAY_LAB)):
        phase(f"{design}: packet walk, ARP, routing, throughput ({lab.name})")
        with lab_session(lab) as net:
            cpu.start()
            walk = packet_walk(net, work, design, "vm1", "vm2" if design == "overlay" else "vm4")
            d = {
                "lab": lab.name,
                "walk": walk,
                "walk_checks": _walk_checks(walk, design == "overlay"),
                "arp": measure_arp(net, work, design, p["arp_rounds"]),
                "routed_same_host": measure_route(net, work, design + "-same", "vm1", "vm3", p["pings"]),
                "routed_cross_host": measure_route(net, work, design + "-cross", "vm1", "vm4", p["pings"]),
                "tcp_vm1_to_vm2": measure_throughput(net, p["iperf_s"]),
                "configured_mbps": link_mbps(net.lab, 10),
            }
            if design == "overlay":
                d["nsx_tables"] = nsx_tables(net.control)
            env = environment(net)
            cpu.stop()
            drops.update({f"{design}/{k}": v for k, v in shaping_drops(net).items()})
        designs[design] = d
        if not _quiet():
            print(print_walk(f"packet walk, {design}:", walk), flush=True)

    phase("overlay without ARP suppression")
    with lab_session(no_suppression) as net:
        designs["overlay"]["arp_no_suppression"] = measure_arp(net, work, "overlay-nosupp", p["arp_rounds"])
        walk = packet_walk(net, work, "overlay-nosupp", "vm1", "vm2")
        designs["overlay"]["walk_no_suppression"] = walk

    mtu = {}
    for label, lab in (("1600", OVERLAY_LAB), ("1500", mtu1500)):
        phase(f"overlay at transport MTU {label}: ping and bulk TCP")
        with lab_session(lab) as net:
            mtu[label] = measure_bulk(net, p["bulk_bytes"])

    scale = {"vlan": [], "overlay": []}
    for n in p["scale_vms"]:
        for design in ("vlan", "overlay"):
            phase(f"MAC tables: {design}, {n} VMs")
            lab = labdir / f"scale-{design}-{n}.yaml"
            lab.write_text(yaml.safe_dump(scale_lab(n, design == "overlay"), sort_keys=False))
            with lab_session(lab, timeout=180) as net:
                scale[design].append(measure_mac_tables(net))

    result.update({"environment": env, "designs": designs, "mtu": mtu, "scale": scale})
    result["summary"], result["verdicts"] = _verdicts(result)
    rates = {d: (designs[d]["tcp_vm1_to_vm2"]["mbps"], designs[d]["configured_mbps"]) for d in designs}
    result["fidelity"] = {
        "cpu_percent": cpu.percent,
        "shaping_drops": drops,
        "checks": checks(cpu.percent, drops, frames_counted=False, rates={"vlan": rates["vlan"]}),
    }
    result["wall_s"] = round(time.monotonic() - t0, 1)
    return result


def _quiet() -> bool:
    import os

    return bool(os.environ.get("VLAB_QUIET"))


def _verdicts(r: dict) -> tuple[dict, dict]:
    d, mtu, scale = r["designs"], r["mtu"], r["scale"]
    vlan, ovl = d["vlan"], d["overlay"]
    summary = {
        "mac_entries": {k: [(s["vms"], s["entries"]) for s in v] for k, v in scale.items()},
        "arp_requests_on_wire": {
            "vlan": vlan["arp"]["arp_requests_on_wire"]["total"],
            "overlay_no_suppression": ovl["arp_no_suppression"]["arp_requests_on_wire"]["total"],
            "overlay_suppression": ovl["arp"]["arp_requests_on_wire"]["total"],
        },
        "times_each_routed_packet_entered_physical_network": {
            f"{k}/{w}": d[k][f"routed_{w}"]["times_each_request_entered"]
            for k in d
            for w in ("same_host", "cross_host")
        },
        "routed_rtt_ms": {
            f"{k}/{w}": d[k][f"routed_{w}"]["rtt_ms"]["mean"] for k in d for w in ("same_host", "cross_host")
        },
        "tcp_mbps": {k: round(d[k]["tcp_vm1_to_vm2"]["mbps"], 2) for k in d},
        "tcp_overlay_over_vlan": round(ovl["tcp_vm1_to_vm2"]["mbps"] / vlan["tcp_vm1_to_vm2"]["mbps"], 3),
    }
    largest = {k: v[-1] for k, v in scale.items()}
    verdicts = {
        "physical_switches_learn_only_vtep_macs": (
            all(s["vm_macs"] == 0 for s in scale["overlay"])
            and all(s["vm_macs"] == s["vms"] for s in scale["vlan"])
            and largest["overlay"]["entries"] < largest["vlan"]["entries"]
        ),
        "arp_suppressed_on_source_host": (
            ovl["arp"]["arp_requests_on_wire"]["total"] == 0
            and ovl["arp"]["replies"] == ovl["arp"]["rounds"]
            and vlan["arp"]["arp_requests_on_wire"]["raw"] >= vlan["arp"]["rounds"]
            and ovl["arp_no_suppression"]["arp_requests_on_wire"]["encapsulated"]
            >= ovl["arp_no_suppression"]["rounds"]
        ),
        "dlr_keeps_same_host_routing_on_host": (
            ovl["routed_same_host"]["requests_entering_physical_network"] == 0
            and ovl["routed_same_host"]["replies"] == ovl["routed_same_host"]["pings"]
            and vlan["routed_same_host"]["times_each_request_entered"] >= 2
            and ovl["routed_cross_host"]["times_each_request_entered"] == 1
            and ovl["routed_cross_host"]["encapsulated"] == ovl["routed_cross_host"]["pings"]
        ),
        "transport_mtu_1500_breaks_bulk_tcp_not_ping": (
            mtu["1600"]["ping_ok"]
            and mtu["1600"]["bulk_completed"]
            and mtu["1500"]["ping_ok"]
            and not mtu["1500"]["bulk_completed"]
        ),
        "walk_matches_seed_steps": (all(vlan["walk_checks"].values()) and all(ovl["walk_checks"].values())),
    }
    return summary, verdicts


def plot(result: dict, outdir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"vlan": "#0072B2", "overlay": "#E69F00", "overlay_no_suppression": "#009E73"}
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 4.2))
    for design, rows in result["scale"].items():
        ax1.plot(
            [r["vms"] for r in rows],
            [r["entries"] for r in rows],
            marker="o",
            color=colours[design],
            label={"vlan": "VLAN-backed", "overlay": "VXLAN overlay"}[design],
        )
    ax1.set_xlabel("VMs")
    ax1.set_ylabel("physical switch MAC table entries")
    ax1.set_title("(a) What the physical switch learns")
    ax1.legend(fontsize=8)
    arp = result["summary"]["arp_requests_on_wire"]
    labels = ["VLAN", "overlay,\nno suppression", "overlay,\nARP suppression"]
    ax2.bar(
        labels,
        [arp["vlan"], arp["overlay_no_suppression"], arp["overlay_suppression"]],
        color=[colours["vlan"], colours["overlay_no_suppression"], colours["overlay"]],
    )
    ax2.set_ylabel(
        f"ARP requests on the physical network\n"
        f"({result['params']['arp_rounds']} resolutions of one neighbour)"
    )
    ax2.set_title("(b) ARP broadcasts")
    times = result["summary"]["times_each_routed_packet_entered_physical_network"]
    rtt = result["summary"]["routed_rtt_ms"]
    keys = ["vlan/same_host", "overlay/same_host", "vlan/cross_host", "overlay/cross_host"]
    x = range(len(keys))
    ax3.bar(x, [times[k] for k in keys], color=[colours[k.split("/")[0]] for k in keys])
    ax3.set_xticks(
        list(x),
        ["VLAN +\nrouter\nsame host", "DLR\nsame host", "VLAN +\nrouter\ncross host", "DLR\ncross host"],
        fontsize=8,
    )
    ax3.set_ylabel("times each routed packet entered\nthe physical network")
    for i, k in enumerate(keys):
        ax3.text(i, times[k] + 0.05, f"{rtt[k]:.2f} ms", ha="center", fontsize=8)
    ax3.set_title("(c) Routed traffic (label: mean RTT)")
    fig.tight_layout()
    return save_figure(fig, outdir, NAME)


# Which claims each fidelity check guards (experiments.fidelity.guards): the
# link-rate check is of the overlay-vs-VLAN TCP comparison, which is no
# claim; the walks, MAC tables, ARP counts, hops and the MTU stall do not
# depend on how fast a link runs.
FIDELITY_SCOPE = {"link_rate": ()}


METRICS = {
    "overlay/VLAN TCP": lambda r: r["summary"]["tcp_overlay_over_vlan"],
    "ARP on wire, suppressed": lambda r: r["summary"]["arp_requests_on_wire"]["overlay_suppression"],
}

MEASURED = {
    "physical_switches_learn_only_vtep_macs": lambda r: "MAC entries for {} VMs: VLAN {}, overlay {}".format(
        ", ".join(str(s["vms"]) for s in r["scale"]["vlan"]),
        ", ".join(str(s["entries"]) for s in r["scale"]["vlan"]),
        ", ".join(str(s["entries"]) for s in r["scale"]["overlay"]),
    ),
    "arp_suppressed_on_source_host": lambda r: (
        "ARP requests on the wire for {n} resolutions: VLAN {vlan}, overlay {overlay_no_suppression}"
        " without suppression, {overlay_suppression} with it".format(
            n=r["params"]["arp_rounds"], **r["summary"]["arp_requests_on_wire"]
        )
    ),
    "dlr_keeps_same_host_routing_on_host": lambda r: (
        "times each routed packet entered the physical network: same host VLAN {} / DLR {}; "
        "cross host VLAN {} / DLR {}".format(
            *(
                r["summary"]["times_each_routed_packet_entered_physical_network"][k]
                for k in ("vlan/same_host", "overlay/same_host", "vlan/cross_host", "overlay/cross_host")
            )
        )
    ),
    "transport_mtu_1500_breaks_bulk_tcp_not_ping": lambda r: (
        "MTU 1600: ping {}, {} MB TCP {}; MTU 1500: ping {}, TCP {}".format(
            "ok" if r["mtu"]["1600"]["ping_ok"] else "fails",
            r["mtu"]["1600"]["bulk_bytes"] / 1e6,
            "completes" if r["mtu"]["1600"]["bulk_completed"] else "fails",
            "ok" if r["mtu"]["1500"]["ping_ok"] else "fails",
            "completes" if r["mtu"]["1500"]["bulk_completed"] else "stalls",
        )
    ),
    "walk_matches_seed_steps": lambda r: "{} steps (VLAN), {} steps (overlay)".format(
        len(r["designs"]["vlan"]["walk"]), len(r["designs"]["overlay"]["walk"])
    ),
}

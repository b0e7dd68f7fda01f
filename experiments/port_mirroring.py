"""Experiment ``port-mirroring``: the port mirroring sessions vSphere offers
beyond a vNIC source and ERSPAN type II (vSphere Networking, "Port
Mirroring"), with real frames.

Lab ``labs/port-mirroring.yaml``: on esx1's distributed switch,

1. **A VMkernel adapter as a source** (Distributed Port Mirroring): vmk0's
   distributed port is mirrored to a capture VM on the same host. The
   gateway pings vmk0: the capture VM gets every echo request (what the
   switch delivered to vmk0) and every reply (what vmk0 sent), untagged, as
   the vmk sees them.
2. **Remote Mirroring Source (RSPAN)**: VM a's frames are sent out of
   dvUplink1 (vmnic0) in the RSPAN VLAN 999, their own VLAN 20 tag kept
   inside (preserve original VLAN). vmnic0 is also a's own uplink, so the
   copies of what a receives leave by the uplink their frames came in by. The physical switch floods VLAN 999
   (``rspan_vlans``, Cisco's ``remote-span``) to an analyser on an access
   port of it. Counted on the wire (two tags) and at the analyser (the inner
   tag); b, not a source, is never seen there.
3. **ERSPAN type III**: VM b mirrored to a monitor on another subnet. Each
   copy's header (GRE protocol 0x22EB, version 2) has session ID 3, the
   direction bit (0: a frame b sent, 1: one it received) and VLAN 20, b's
   port group's; the inner frames are untagged, as b sent and received them.

Every count is of the pings the experiment sent, finished before the
captures stop.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from experiments import settle
from experiments.common import (
    RESULTS,
    Progress,
    environment,
    lab_session,
    read_pcap,
    save_figure,
    verdicts_of,
)
from experiments.erspan_capture import decapsulate, decapsulated
from experiments.fidelity import CpuMeter, shaping_drops
from experiments.fidelity import summary as fidelity_summary

if TYPE_CHECKING:
    from topologies.network import LabNetwork

NAME = "port-mirroring"
LAB = Path(__file__).resolve().parents[1] / "labs" / "port-mirroring.yaml"
DEFAULTS = {"pings": 5}
VMK0, GW_MGMT, GW_VM, A, B = "10.2.0.11", "10.2.0.1", "10.2.2.1", "10.2.2.10", "10.2.2.20"
RSPAN_VLAN, VM_VLAN, ERSPAN_SESSION = 999, 20, 3
RSPAN_UPLINK = "vmnic0"  # dvUplink1, the session's destination, and a's own uplink


def _ping(net: LabNetwork, node: str, dst: str, count: int) -> None:
    out = net.node(node).cmd(f"ping -n -q -c {count} -i 0.2 -W 1 {dst}")
    if f"{count} received" not in out:
        raise RuntimeError(f"{node} -> {dst}: {out.strip()[-300:]}")


def echoes(frames, src: str, dst: str) -> dict[str, int]:
    """Echo requests from ``src`` to ``dst`` among ``frames``, and the replies back."""
    from scapy.layers.inet import ICMP, IP

    out = {"requests": 0, "replies": 0}
    for f in frames:
        if IP not in f or ICMP not in f:
            continue
        key = (f[IP].src, f[IP].dst, f[ICMP].type)
        if key == (src, dst, 8):
            out["requests"] += 1
        elif key == (dst, src, 0):
            out["replies"] += 1
    return out


def _is_echo(src: str, dst: str):
    """A frame predicate: an echo request from ``src`` to ``dst`` or its reply."""
    return lambda f: bool(sum(echoes([f], src, dst).values()))


def _echo_frames(frames, src: str, dst: str) -> list:
    return list(filter(_is_echo(src, dst), frames))


def tags(frame) -> tuple[int, ...]:
    """A frame's 802.1Q VIDs, outermost first."""
    from scapy.layers.l2 import Dot1Q

    out, layer = [], frame
    while Dot1Q in layer:
        layer = layer[Dot1Q]
        out.append(layer.vlan)
        layer = layer.payload
    return tuple(out)


def _icmp_tags(frames) -> list[tuple[int, ...]]:
    return sorted({tags(f) for f in frames if "ICMP" in f})


def measure_vmk_source(net: LabNetwork, work: Path, pings: int) -> dict:
    cap = net.control.tcpdump("wireshark", "eth0", work / "vmk0-copies.pcap", "icmp", ["-Q", "in"])
    try:
        _ping(net, "gw", VMK0, pings)
        # The last reply's copy may still be on its way when ping returns.
        settle.wait_frames(cap.pcap, 2 * pings, _is_echo(GW_MGMT, VMK0), timeout=5)
    finally:
        frames = read_pcap(cap.stop())
    seen = echoes(frames, GW_MGMT, VMK0)
    mine = _echo_frames(frames, GW_MGMT, VMK0)
    return {
        "pings": pings,
        "at_capture_vm": seen,
        "tags": _icmp_tags(mine),
        "verdict": seen == {"requests": pings, "replies": pings} and _icmp_tags(mine) == [()],
    }


def measure_rspan(net: LabNetwork, work: Path, pings: int) -> dict:
    ctl = net.control
    wire = ctl.capture(
        work / "rspan-uplink.pcap", uplink=("esx1", RSPAN_UPLINK), direction="tx", bpf=f"vlan {RSPAN_VLAN}"
    )
    analyser = ctl.tcpdump("analyser", "eth0", work / "analyser.pcap", "", ["-Q", "in"])
    try:
        _ping(net, "a", GW_VM, pings)
        _ping(net, "b", GW_VM, pings)
        for c in (wire, analyser):
            settle.wait_frames(c.pcap, 2 * pings, _is_echo(A, GW_VM), timeout=5)
    finally:
        at_analyser = read_pcap(analyser.stop())
        on_wire = read_pcap(wire.stop())
    both = {"requests": pings, "replies": pings}
    r = {
        "pings": pings,
        "uplink": RSPAN_UPLINK,
        "a_pinned_to": net.control.applied()["pinning"]["esx1"].get("a-eth0"),
        "on_uplink": echoes(on_wire, A, GW_VM),
        "tags_on_uplink": _icmp_tags(_echo_frames(on_wire, A, GW_VM)),
        "at_analyser": echoes(at_analyser, A, GW_VM),
        "tags_at_analyser": _icmp_tags(_echo_frames(at_analyser, A, GW_VM)),
        "not_a_source_at_analyser": echoes(at_analyser, B, GW_VM),
    }
    r["verdict"] = (
        r["a_pinned_to"] == RSPAN_UPLINK
        and r["on_uplink"] == both
        and r["tags_on_uplink"] == [(RSPAN_VLAN, VM_VLAN)]
        and r["at_analyser"] == both
        and r["tags_at_analyser"] == [(VM_VLAN,)]
        and r["not_a_source_at_analyser"] == {"requests": 0, "replies": 0}
    )
    return r


def measure_erspan3(net: LabNetwork, work: Path, pings: int) -> dict:
    from scapy.layers.l2 import Ether

    cap = net.control.tcpdump("monitor", "eth0", work / "monitor.pcap", "ip proto 47", ["-Q", "in"])
    try:
        _ping(net, "b", GW_VM, pings)
        copy_of_b = _is_echo(B, GW_VM)
        settle.wait_frames(
            cap.pcap,
            2 * pings,
            lambda f: (d := decapsulate(bytes(f))) is not None and copy_of_b(Ether(d["inner"])),
            5,
        )
    finally:
        copies = [d for d in decapsulated(cap.stop()) if d["kind"] == "erspan"]
    by_direction = {
        way: echoes([Ether(d["inner"]) for d in copies if d.get("direction") == way], B, GW_VM)
        for way in ("ingress", "egress")
    }
    r = {
        "pings": pings,
        "headers": sorted(
            {(d["version"], d["session"], d["outer_src"], d["header_vlan"]) for d in copies}, key=str
        ),
        "by_direction": by_direction,
        "inner_tags": sorted({tags(Ether(d["inner"])) for d in copies}),
    }
    r["verdict"] = (
        r["headers"] == [(2, ERSPAN_SESSION, VMK0, VM_VLAN)]
        and by_direction
        == {"ingress": {"requests": pings, "replies": 0}, "egress": {"requests": 0, "replies": pings}}
        and r["inner_tags"] == [()]
    )
    return r


def run(params: dict | None = None) -> dict:
    p = {**DEFAULTS, **(params or {})}
    t0 = time.monotonic()
    work = RESULTS / NAME / "pcaps"
    work.mkdir(parents=True, exist_ok=True)
    cpu, phase = CpuMeter(), Progress(NAME)
    with lab_session(LAB) as net:
        cpu.start()
        phase("vmk0 mirrored to the capture VM; the gateway pings vmk0")
        vmk = measure_vmk_source(net, work, p["pings"])
        phase("a's frames to the RSPAN VLAN; a and b ping the gateway")
        rspan = measure_rspan(net, work, p["pings"])
        phase("b mirrored as ERSPAN type III; b pings the gateway")
        erspan3 = measure_erspan3(net, work, p["pings"])
        cpu.stop()
        env, drops = environment(net), shaping_drops(net)
    claims = {
        "vmk_source_mirrored_both_ways": vmk,
        "rspan_copies_reach_the_analyser_in_the_rspan_vlan": rspan,
        "erspan_type_iii_headers_carry_direction_and_vlan": erspan3,
    }
    return {
        "experiment": NAME,
        "lab": str(LAB.relative_to(LAB.parents[1])),
        "params": p,
        "environment": env,
        "claims": claims,
        "verdicts": verdicts_of(claims),
        "fidelity": fidelity_summary(cpu, drops, frames_counted=True),
        "wall_s": round(time.monotonic() - t0, 1),
    }


def plot(result: dict, outdir: Path) -> list[Path]:
    """Echo requests and replies seen at each session's destination."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = result["claims"]
    views = [
        ("vmk0 -> capture VM\n(local)", c["vmk_source_mirrored_both_ways"]["at_capture_vm"]),
        (
            f"a -> analyser\n(RSPAN VLAN {RSPAN_VLAN})",
            c["rspan_copies_reach_the_analyser_in_the_rspan_vlan"]["at_analyser"],
        ),
        (
            "b not a source\n(at the analyser)",
            c["rspan_copies_reach_the_analyser_in_the_rspan_vlan"]["not_a_source_at_analyser"],
        ),
        (
            "b -> monitor, D=0\n(ERSPAN III)",
            c["erspan_type_iii_headers_carry_direction_and_vlan"]["by_direction"]["ingress"],
        ),
        (
            "b -> monitor, D=1\n(ERSPAN III)",
            c["erspan_type_iii_headers_carry_direction_and_vlan"]["by_direction"]["egress"],
        ),
    ]
    fig, ax = plt.subplots(figsize=(9, 3.4))
    for k, (key, label, color) in enumerate(
        (("requests", "echo requests", "#0072B2"), ("replies", "echo replies", "#E69F00"))
    ):
        ax.bar(
            [i + 0.38 * k for i in range(len(views))],
            [v[key] for _, v in views],
            0.36,
            label=label,
            color=color,
        )
    ax.set_xticks([i + 0.19 for i in range(len(views))], [name for name, _ in views], fontsize=8)
    ax.set_ylabel(f"copies (of {result['params']['pings']} pings)")
    ax.set_title("Mirror copies at each session's destination", fontsize=9)
    ax.legend(fontsize=8)
    return save_figure(fig, outdir, NAME)


def _counts(e: dict) -> str:
    return f"{e['requests']} requests / {e['replies']} replies"


MEASURED = {
    "vmk_source_mirrored_both_ways": lambda r: "capture VM: {} of {} pings to vmk0, untagged".format(
        _counts(r["claims"]["vmk_source_mirrored_both_ways"]["at_capture_vm"]),
        r["claims"]["vmk_source_mirrored_both_ways"]["pings"],
    ),
    "rspan_copies_reach_the_analyser_in_the_rspan_vlan": lambda r: (
        "{u} (a's own uplink): {w} tagged {wt}; analyser: {a} tagged {at}; b (not a source): {b}".format(
            u=r["claims"]["rspan_copies_reach_the_analyser_in_the_rspan_vlan"]["uplink"],
            w=_counts(r["claims"]["rspan_copies_reach_the_analyser_in_the_rspan_vlan"]["on_uplink"]),
            wt="/".join(
                map(
                    str, r["claims"]["rspan_copies_reach_the_analyser_in_the_rspan_vlan"]["tags_on_uplink"][0]
                )
            ),
            a=_counts(r["claims"]["rspan_copies_reach_the_analyser_in_the_rspan_vlan"]["at_analyser"]),
            at="/".join(
                map(
                    str,
                    r["claims"]["rspan_copies_reach_the_analyser_in_the_rspan_vlan"]["tags_at_analyser"][0],
                )
            ),
            b=_counts(
                r["claims"]["rspan_copies_reach_the_analyser_in_the_rspan_vlan"]["not_a_source_at_analyser"]
            ),
        )
    ),
    "erspan_type_iii_headers_carry_direction_and_vlan": lambda r: (
        "headers (version, session, from, VLAN) {h}; D=0: {i}; D=1: {e}; inner frames untagged".format(
            h=", ".join(
                str(tuple(x))
                for x in r["claims"]["erspan_type_iii_headers_carry_direction_and_vlan"]["headers"]
            ),
            i=_counts(
                r["claims"]["erspan_type_iii_headers_carry_direction_and_vlan"]["by_direction"]["ingress"]
            ),
            e=_counts(
                r["claims"]["erspan_type_iii_headers_carry_direction_and_vlan"]["by_direction"]["egress"]
            ),
        )
    ),
}

# Key numbers for `vlab run --repeat N`: the copies each destination got.
METRICS = {
    "vmk0 copies": lambda r: sum(r["claims"]["vmk_source_mirrored_both_ways"]["at_capture_vm"].values()),
    "RSPAN copies at the analyser": lambda r: sum(
        r["claims"]["rspan_copies_reach_the_analyser_in_the_rspan_vlan"]["at_analyser"].values()
    ),
    "ERSPAN III copies": lambda r: sum(
        sum(v.values())
        for v in r["claims"]["erspan_type_iii_headers_carry_direction_and_vlan"]["by_direction"].values()
    ),
}

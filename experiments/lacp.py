"""Experiment ``lacp``: LACP on a distributed switch (link aggregation
groups) against LACP port channels, as vSphere Networking ("LACP Support on
a vSphere Distributed Switch") documents it, with real LACPDUs.

Lab ``labs/lacp.yaml``: esx1 has three LAGs of two vmnics, each to its own
port channel on pswitch1. LACP runs where ESXi runs it, in the host: each
host's Open vSwitch bonds a LAG's vmnics with LACP; the physical switch's
port channel is an OVS bond with LACP too. Each side's state and LACPDU
counts are read from OVS (``lacp/show``, ``lacp/show-stats``).

1. The bundle forms when at least one end is active: lagA (active) with po1
   (active), lagP (passive) with po2 (active): every member is collecting
   and distributing on both ends, LACPDUs flow both ways, a ping through
   each LAG gets every reply.
2. Passive with passive never forms (lagPP with po3): neither end sends an
   LACPDU, every member stays defaulted, and a ping gets no reply; read
   again at the end of the run, still not one LACPDU.
3. Traffic hashes across the members: 16 UDP flows from va (the LAG's load
   balancing mode, vSphere's default, hashes IP addresses and ports), each
   flow's frames all on one member (counted at the switch ports), the flows
   spread over both.
4. A member whose partner goes silent leaves the bundle after the LAG's
   timeout: po1 stops sending LACPDUs on one port (link and data up: only
   LACP can notice); lagA (fast: the partner sends every second, expired
   after 3 s) removes that member 2-3 s later and its flows move to the
   other member; when the partner speaks again the member returns and the
   flows go back. With lagP (slow: every 30 s, expired after 90 s) the
   member leaves 60-90 s after its partner fell silent.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from experiments.common import (
    RESULTS,
    Progress,
    count_frames,
    environment,
    lab_session,
    save_figure,
    send_frames,
    tagged,
    verdicts_of,
    vm_mac,
)
from experiments.fidelity import CpuMeter, shaping_drops
from experiments.fidelity import summary as fidelity_summary
from vlab import naming
from vlab.waiting import Pending, wait_for

if TYPE_CHECKING:
    from topologies.network import LabNetwork

NAME = "lacp"
LAB = Path(__file__).resolve().parents[1] / "labs" / "lacp.yaml"
FABRIC = naming.FABRIC_NODE
# LAG -> (its port channel, its members, the VM on it, ext's address there)
LAGS = {
    "lagA": ("po1", ("vmnic0", "vmnic1"), "va", "10.0.10.100"),
    "lagP": ("po2", ("vmnic2", "vmnic3"), "vp", "10.0.20.100"),
    "lagPP": ("po3", ("vmnic4", "vmnic5"), "vpp", "10.0.30.100"),
}
EXT_MAC = {"lagA": "00:50:56:0e:0a:01", "lagP": "00:50:56:0e:0a:02"}  # ext's NIC in each LAG's VLAN
FLOW_PORTS = tuple(range(40001, 40017))  # 16 UDP flows, by source port
DST_OCTETS = tuple(range(101, 117))  # or by destination address
DEFAULTS = {"frames": 10, "pings": 5}
# When a member whose partner fell silent leaves the bundle, after the
# silence began: the partner sends every interval the LAG asked for (fast
# 1 s, slow 30 s), and the member expires 3 intervals after the last LACPDU
# it heard, which came at most one interval before the silence. 0.5 s on
# top for reading the state (one ovs-appctl call per poll).
INTERVAL_S = {"fast": 1.0, "slow": 30.0}
READ_S = 0.5


def removal_window_s(timeout: str) -> tuple[float, float]:
    i = INTERVAL_S[timeout]
    return (2 * i - 0.1, 3 * i + READ_S)


# -- reading both ends -----------------------------------------------------------------
def ends(net: LabNetwork, lag: str) -> dict:
    """LACP state of ``lag`` on esx1 and of its port channel on pswitch1."""
    ctl = net.control
    return {
        "esx1": ctl.lacp("esx1", "dvs1", lag),
        "pswitch1": ctl.lacp(FABRIC, "pswitch1", LAGS[lag][0]),
    }


def pdus(net: LabNetwork, lag: str) -> dict:
    """LACPDUs each end sent and received, per member."""
    ctl = net.control
    return {
        "esx1": ctl.lacp_stats("esx1", "dvs1", lag),
        "pswitch1": ctl.lacp_stats(FABRIC, "pswitch1", LAGS[lag][0]),
    }


def bundled(state: dict) -> list[str]:
    """Members collecting and distributing (OVS: may_enable)."""
    return sorted(m for m, s in state["members"].items() if s["may_enable"])


def _ping(net: LabNetwork, vm: str, ip: str, n: int) -> int:
    out = net.node(vm).cmd(f"ping -n -c {n} -i 0.2 -W 1 {ip}")
    return sum(1 for line in out.splitlines() if "bytes from" in line)


# -- 1 and 2. which pairs of modes form ------------------------------------------------
def measure_negotiation(net: LabNetwork, n: int) -> dict:
    """Wait for the bundles that can form; then each LAG's state at both
    ends, its LACPDU counts and a ping through it."""
    formed = {"lagA": None, "lagP": None}
    t0 = time.monotonic()

    def both_formed():
        for lag in formed:
            if formed[lag] is None and all(len(bundled(e)) == 2 for e in ends(net, lag).values()):
                formed[lag] = round(time.monotonic() - t0, 2)
        return all(v is not None for v in formed.values()) or Pending(f"bundles so far: {formed}")

    wait_for(both_formed, 30, "lagA and lagP bundled at both ends")
    out = {}
    for lag, (_, _, vm, ip) in LAGS.items():
        state = ends(net, lag)
        out[lag] = {
            "bundled": {end: bundled(s) for end, s in state.items()},
            "status": {end: {m: v["status"] for m, v in s["members"].items()} for end, s in state.items()},
            "pdus": pdus(net, lag),
            "ping_replies": _ping(net, vm, ip, n),
            "pings": n,
        }
    for lag in formed:
        # When polling first saw it bundled (the lab was up long before):
        # not a negotiation time.
        out[lag]["seen_bundled_after_s"] = formed[lag]
    return out


def _exchanged(c: dict) -> bool:
    return all(m["tx_pdus"] > 0 and m["rx_pdus"] > 0 for end in c["pdus"].values() for m in end.values())


def _silent(counts: dict) -> bool:
    return all(m["tx_pdus"] == 0 and m["rx_pdus"] == 0 for end in counts.values() for m in end.values())


# -- 3 and 4. hashing, and a silent partner --------------------------------------------
def flows_per_member(
    net: LabNetwork, work: Path, step: str, n: int, lag: str = "lagA", vary: str = "sport"
) -> dict[int, dict[str, int]]:
    """{flow: {member: frames}} for 16 flows of ``n`` frames from the LAG's
    VM to ext, counted where each member enters pswitch1. The flows differ
    in their UDP source port (``vary`` sport, the flow is that port) or in
    their destination address (``dst``: 16 addresses in ext's subnet, the
    flow is the last octet)."""
    ctl = net.control
    _, members, vm, ext_ip = LAGS[lag]
    src_ip = ext_ip.rsplit(".", 1)[0] + ".1"
    caps = {u: ctl.capture(work / f"{step}-{u}.pcap", uplink=("esx1", u), direction="tx") for u in members}

    def flow_args(flow: int) -> list:
        if vary == "sport":
            return ["--ip-src", src_ip, "--ip-dst", ext_ip, "--sport", flow]
        return [
            "--ip-src",
            src_ip,
            "--ip-dst",
            ext_ip.rsplit(".", 1)[0] + f".{flow}",
            "--sport",
            FLOW_PORTS[0],
        ]

    flows = FLOW_PORTS if vary == "sport" else DST_OCTETS
    try:
        for flow in flows:
            send_frames(net, vm, vm_mac(net, vm), EXT_MAC[lag], f":{step}-{flow};", n, extra=flow_args(flow))
        for flow in flows:
            tag = tagged(f":{step}-{flow};")
            wait_for(
                lambda tag=tag: (
                    sum(count_frames(c.pcap, tag) for c in caps.values()) >= n
                    or Pending("frames still on their way")
                ),
                10,
                f"flow {flow}'s {n} frames out of {lag}",
            )
    finally:
        for c in caps.values():
            c.stop()
    return {
        flow: {u: count_frames(c.pcap, tagged(f":{step}-{flow};")) for u, c in caps.items()} for flow in flows
    }


def measure_load_balancing_mode(net: LabNetwork, work: Path, n: int) -> dict:
    """lagP hashes srcDestIp: 16 flows between the same two addresses that
    differ in their ports all leave by one member; 16 flows to 16 addresses
    spread over both."""
    return {
        "mode": "srcDestIp",
        "same_ips_by_port": _member_of(flows_per_member(net, work, "ip-ports", n, "lagP", "sport")),
        "by_destination": _member_of(flows_per_member(net, work, "ip-dsts", n, "lagP", "dst")),
    }


def _member_of(counts: dict[int, dict[str, int]]) -> dict[int, str]:
    """Each flow's member, when all its frames left by one (else "split")."""
    return {
        s: next((u for u, k in c.items() if k == sum(c.values())), "split") if sum(c.values()) else "none"
        for s, c in counts.items()
    }


def time_to_leave(net: LabNetwork, lag: str, member: str, limit_s: float, t0: float) -> float:
    """Seconds from ``t0`` (monotonic) until ``member`` of esx1's ``lag`` is out of the bundle."""

    def gone():
        s = net.control.lacp("esx1", "dvs1", lag)["members"][member]
        return not s["may_enable"] or Pending(f"{member} still {s['status']} and in the bundle")

    wait_for(gone, limit_s, f"{member} of {lag} leaving the bundle", interval=0.05)
    return round(time.monotonic() - t0, 3)


def _partner_port(net: LabNetwork, member: str) -> int:
    """The pswitch1 port esx1's vmnic ``member`` plugs into."""
    return next(u.port for u in net.lab.esxi_hosts[0].uplinks if u.name == member)


def silence(net: LabNetwork, lag: str, member: str, limit_s: float) -> float:
    """Silence ``member``'s partner port; seconds until the member left."""
    port = _partner_port(net, member)
    # From before the filter goes in: it drops from some moment inside the
    # call, and READ_S covers the call's length at the window's top.
    t0 = time.monotonic()
    net.control.lacp_silence("pswitch1", port)
    return time_to_leave(net, lag, member, limit_s, t0)


def speak_again(net: LabNetwork, lag: str, member: str) -> float:
    """Let ``member``'s partner port speak; seconds until the member is back."""
    net.control.lacp_silence("pswitch1", _partner_port(net, member), silent=False)
    t0 = time.monotonic()

    def back():
        return member in bundled(net.control.lacp("esx1", "dvs1", lag)) or Pending(f"{member} not back")

    wait_for(back, 3 * INTERVAL_S["slow"] + 10, f"{member} back in {lag}", interval=0.05)
    return round(time.monotonic() - t0, 3)


def measure_hashing_and_fast_timeout(net: LabNetwork, work: Path, n: int) -> dict:
    lo, hi = removal_window_s("fast")
    before = flows_per_member(net, work, "before", n)
    try:
        removed = silence(net, "lagA", "vmnic1", hi + 5)
        during = flows_per_member(net, work, "silent", n)
    finally:
        returned = speak_again(net, "lagA", "vmnic1")
    after = flows_per_member(net, work, "after", n)
    members = {k: _member_of(v) for k, v in (("before", before), ("silent", during), ("after", after))}
    return {
        "frames_per_flow": n,
        "members": members,
        "counts": {"before": before, "silent": during, "after": after},
        "removed_after_s": removed,
        "returned_after_s": returned,
        "window_s": [lo, hi],
    }


def measure_slow_timeout(net: LabNetwork) -> dict:
    lo, hi = removal_window_s("slow")
    try:
        removed = silence(net, "lagP", "vmnic3", hi + 10)
        still = bundled(net.control.lacp("esx1", "dvs1", "lagP"))
    finally:
        returned = speak_again(net, "lagP", "vmnic3")
    return {
        "removed_after_s": removed,
        "bundled_while_silent": still,
        "returned_after_s": returned,
        "window_s": [lo, hi],
    }


def run(params: dict | None = None) -> dict:
    p = {**DEFAULTS, **(params or {})}
    t0 = time.monotonic()
    work = RESULTS / NAME / "pcaps"
    work.mkdir(parents=True, exist_ok=True)
    cpu, phase = CpuMeter(), Progress(NAME)
    with lab_session(LAB) as net:
        cpu.start()
        phase("negotiation: active/active, passive/active, passive/passive")
        neg = measure_negotiation(net, p["pings"])
        phase("16 flows over lagA; po1 falls silent on vmnic1's port (fast timeout), then speaks again")
        hashing = measure_hashing_and_fast_timeout(net, work, p["frames"])
        phase("lagP (srcDestIp): 16 flows between two addresses, then to 16 addresses")
        mode = measure_load_balancing_mode(net, work, p["frames"])
        phase("po2 falls silent on vmnic3's port (slow timeout: up to 90 s)")
        slow = measure_slow_timeout(net)
        pp_end = pdus(net, "lagPP")
        cpu.stop()
        env, drops = environment(net), shaping_drops(net)
    claims = {
        "bundle_forms_when_one_end_is_active": {
            **{lag: neg[lag] for lag in ("lagA", "lagP")},
            "verdict": all(
                all(len(members) == 2 for members in neg[lag]["bundled"].values())
                and _exchanged(neg[lag])
                and neg[lag]["ping_replies"] == neg[lag]["pings"]
                for lag in ("lagA", "lagP")
            ),
        },
        "passive_passive_never_forms": {
            **neg["lagPP"],
            "pdus_at_end": pp_end,
            "verdict": neg["lagPP"]["bundled"] == {"esx1": [], "pswitch1": []}
            and _silent(neg["lagPP"]["pdus"])
            and _silent(pp_end)
            and neg["lagPP"]["ping_replies"] == 0,
        },
        "frames_hash_across_members": _hash_claim(hashing),
        "load_balancing_mode_decides_what_spreads": _mode_claim(mode),
        "silent_partner_leaves_after_fast_timeout": _fast_claim(hashing),
        "silent_partner_leaves_after_slow_timeout": {
            **slow,
            "verdict": slow["window_s"][0] <= slow["removed_after_s"] <= slow["window_s"][1]
            and slow["bundled_while_silent"] == ["vmnic2"],
        },
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


def _hash_claim(h: dict) -> dict:
    # One flow, one member: every flow's frames all left by one member. Both
    # members used: with OVS's hash uniform, 16 flows all land on one of two
    # members with probability 2 * 2^-16.
    before = h["members"]["before"]
    return {
        "members": before,
        "flows_per_member": {u: sum(1 for m in before.values() if m == u) for u in LAGS["lagA"][1]},
        "verdict": all(m in LAGS["lagA"][1] for m in before.values()) and len(set(before.values())) == 2,
    }


def _mode_claim(m: dict) -> dict:
    # Ports are not in srcDestIp's hash: one member for all 16. Addresses
    # are: 16 destinations all on one of two members has probability 2^-15.
    members = LAGS["lagP"][1]
    by_port, by_dst = set(m["same_ips_by_port"].values()), set(m["by_destination"].values())
    return {
        **m,
        "flows_per_member": {
            kind: {u: sum(1 for x in m[kind].values() if x == u) for u in members}
            for kind in ("same_ips_by_port", "by_destination")
        },
        "verdict": len(by_port) == 1 and by_port <= set(members) and by_dst == set(members),
    }


def _fast_claim(h: dict) -> dict:
    lo, hi = h["window_s"]
    during, before, after = h["members"]["silent"], h["members"]["before"], h["members"]["after"]
    return {
        "removed_after_s": h["removed_after_s"],
        "window_s": h["window_s"],
        "members_while_silent": during,
        "returned_after_s": h["returned_after_s"],
        "members_after": after,
        # Highest random weight: the survivor keeps its own flows and takes
        # the silent member's; when it returns each flow is back where it was.
        "verdict": lo <= h["removed_after_s"] <= hi
        and set(during.values()) == {"vmnic0"}
        and after == before,
    }


def plot(result: dict, outdir: Path) -> list[Path]:
    """Flows per member before, while vmnic1's partner is silent, and after;
    and each removal time against its documented window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = result["claims"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [1, 1.2]})
    steps = [("before", "before"), ("silent", "vmnic1's partner silent"), ("after", "partner back")]
    members = LAGS["lagA"][1]
    fast = c["silent_partner_leaves_after_fast_timeout"]
    per_step = {
        "before": c["frames_hash_across_members"]["members"],
        "silent": fast["members_while_silent"],
        "after": fast["members_after"],
    }
    for k, u in enumerate(members):
        ax1.bar(
            [i + 0.38 * k for i in range(len(steps))],
            [sum(1 for m in per_step[s].values() if m == u) for s, _ in steps],
            0.36,
            label=u,
            color=["#0072B2", "#E69F00"][k],
        )
    ax1.set_xticks([i + 0.19 for i in range(len(steps))], [label for _, label in steps], fontsize=8)
    ax1.set_ylabel(f"flows (of {len(FLOW_PORTS)})")
    ax1.set_title("(a) lagA: 16 UDP flows per member", fontsize=9)
    ax1.legend(fontsize=8)
    slow = c["silent_partner_leaves_after_slow_timeout"]
    for y, claim in enumerate((fast, slow)):
        lo, hi = claim["window_s"]
        ax2.barh(y, hi - lo, left=lo, color="#DDDDDD", height=0.5, label="documented" if y == 0 else None)
        ax2.plot([claim["removed_after_s"]], [y], "o", color="#D55E00", label="measured" if y == 0 else None)
    ax2.set_yticks([0, 1], ["fast (lagA)", "slow (lagP)"])
    ax2.set_xscale("log")
    ax2.set_ylim(-0.6, 1.6)
    ax2.set_xlabel("seconds from the partner's silence to the member leaving")
    ax2.set_title("(b) member removal after the LACP timeout", fontsize=9)
    ax2.legend(fontsize=8, loc="lower right")
    return save_figure(fig, outdir, NAME)


def _formed_line(r: dict) -> str:
    c = r["claims"]["bundle_forms_when_one_end_is_active"]
    return "; ".join(
        f"{lag}: both members bundled at both ends, ping {c[lag]['ping_replies']}/{c[lag]['pings']}"
        for lag in ("lagA", "lagP")
    )


def _never_line(r: dict) -> str:
    c = r["claims"]["passive_passive_never_forms"]
    sent = sum(m["tx_pdus"] for end in c["pdus_at_end"].values() for m in end.values())
    return f"lagPP/po3: members {', '.join(sorted(set(c['status']['esx1'].values())))}, " + (
        f"{sent} LACPDUs sent by either end, ping {c['ping_replies']}/{c['pings']}"
    )


def _hash_line(r: dict) -> str:
    c = r["claims"]["frames_hash_across_members"]["flows_per_member"]
    return " / ".join(f"{n} flows on {u}" for u, n in c.items()) + ", each flow on one member"


def _fast_line(r: dict) -> str:
    c = r["claims"]["silent_partner_leaves_after_fast_timeout"]
    lo, hi = c["window_s"]
    return (
        f"vmnic1 left {c['removed_after_s']} s after its partner fell silent (window {lo:g}-{hi:g} s), "
        f"its flows on vmnic0; back {c['returned_after_s']} s after the partner spoke, flows as before"
    )


def _slow_line(r: dict) -> str:
    c = r["claims"]["silent_partner_leaves_after_slow_timeout"]
    lo, hi = c["window_s"]
    return f"vmnic3 left {c['removed_after_s']} s after its partner fell silent (window {lo:g}-{hi:g} s)"


def _mode_line(r: dict) -> str:
    c = r["claims"]["load_balancing_mode_decides_what_spreads"]["flows_per_member"]

    def per(kind):
        return " / ".join(f"{n} on {u}" for u, n in c[kind].items())

    return (
        f"lagP (srcDestIp): 16 flows between two addresses {per('same_ips_by_port')}; "
        f"to 16 addresses {per('by_destination')}"
    )


MEASURED = {
    "bundle_forms_when_one_end_is_active": _formed_line,
    "load_balancing_mode_decides_what_spreads": _mode_line,
    "passive_passive_never_forms": _never_line,
    "frames_hash_across_members": _hash_line,
    "silent_partner_leaves_after_fast_timeout": _fast_line,
    "silent_partner_leaves_after_slow_timeout": _slow_line,
}

METRICS = {
    "fast member removal (s)": lambda r: r["claims"]["silent_partner_leaves_after_fast_timeout"][
        "removed_after_s"
    ],
    "slow member removal (s)": lambda r: r["claims"]["silent_partner_leaves_after_slow_timeout"][
        "removed_after_s"
    ],
}

"""Experiment ``vmsc-asymmetry``: seed 003, stateful firewalls vs a stretched DCI.

Users hold TCP connections to vm1's application (``tools.tcpapp``) and keep
opening new ones while vm1 vMotions from DC1 (esx11) to DC2 (esx21). The WAN
sends every packet for the VMs into DC1 (no site awareness). Three designs,
all derived from ``labs/vmsc.yaml`` (written to ``results/vmsc-asymmetry/labs``):

* ``perimeter-local``: a stateful perimeter firewall per site and local
  egress (both gateways own 10.10.10.1, the DCI isolates it). After the move,
  requests enter by fw1 and replies leave by fw2: each firewall sees half of
  every flow.
* ``perimeter-trombone``: the same firewalls, but only DC1 has a gateway on
  the stretched VLAN: vm1's replies cross the DCI back to DC1 and leave by
  fw1. Symmetric again, at the price of DCI bandwidth.
* ``dfw-local``: local egress, the perimeter boxes only route, and the
  distributed firewall enforces the same policy at vm1's vNIC; its state
  moves with the VM.

Measured per design: held connections that still complete requests after the
move, new connections succeeding before/after, drops (invalid and default)
and half-open entries at each perimeter firewall, bytes carried by the DCI
(both directions, kernel counters of its port), and a timeline of completed
requests across the vMotion. The DCI's rate is shaped; the testbed adds no delay
to it (the result records the qdiscs it found on the DCI and any delay).
"""

from __future__ import annotations

import copy
import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from experiments.common import (
    RESULTS,
    Progress,
    environment,
    guest_tool,
    lab_session,
    repo_paths,
    save_figure,
    stop_tool,
    verdicts_of,
    wait_ready_line,
)
from experiments.fidelity import CpuMeter, shaping_drops
from experiments.fidelity import summary as fidelity_summary
from vlab import naming, perimeter

if TYPE_CHECKING:
    from topologies.network import LabNetwork

NAME = "vmsc-asymmetry"
LAB = Path(__file__).resolve().parents[1] / "labs" / "vmsc.yaml"
DESIGNS = ("perimeter-local", "perimeter-trombone", "dfw-local")
# timeout_s: how long a user waits for a new connection's reply. Linux
# retransmits a SYN after 1 s and again 2 s later (RFC 6298's 1 s initial
# RTO, doubled): 7 s lets both retransmissions count, so a connection opened
# during a switchover blackout of up to 3 s still succeeds, as it would for a
# user, while a firewall that drops the handshake fails it every time.
DEFAULTS = {
    "before_s": 4.0,
    "after_s": 8.0,
    "held_per_user": 4,
    "new_every_s": 0.25,
    "interval_s": 0.05,
    "reply_bytes": 2048,
    "stun_s": 0.1,
    "timeout_s": 7.0,
}
VM, SOURCE_HOST, DEST_HOST, VM_IP, PORT = "vm1", "esx11", "esx21", "10.10.10.11", 8080
USERS = ("u1", "u2")
FIREWALLS = ("fw1", "fw2")
DCI_ENDS = ("psw1-24", "psw2-24")  # the DCI's two ends (fabric node interfaces)
# The policy the perimeter firewalls enforce, as distributed firewall rules.
DFW_POLICY = {
    "applied_to": [VM],
    "rules": [
        {
            "name": "users-to-app",
            "sources": ["198.51.100.0/24"],
            "destinations": [VM],
            "services": ["tcp/8080", "icmp"],
            "action": "allow",
        },
        {"name": "app-out", "sources": [VM], "action": "allow"},
    ],
    "default_action": "drop",
}


# -- the three designs ------------------------------------------------------------------
def design_data(base: dict, design: str) -> dict:
    """The lab of ``design`` as YAML data, derived from the base (local egress
    with perimeter firewalls)."""
    data = copy.deepcopy(base)
    data["name"] = {
        "perimeter-local": "vmsc-local",
        "perimeter-trombone": "vmsc-trombone",
        "dfw-local": "vmsc-dfw",
    }[design]
    hosts = {h["name"]: h for h in data["hosts"]}
    if design == "perimeter-trombone":
        # Only DC1 routes the stretched VLAN: drop DC2's gateway interface
        # and with it the need to isolate the gateway address.
        hosts["gw2"]["interfaces"] = [i for i in hosts["gw2"]["interfaces"] if i.get("vlan") != 10]
        for link in data["dci_links"]:
            link.pop("isolate", None)
        data["description"] = "two sites, perimeter firewalls, egress back through DC1"
    elif design == "dfw-local":
        for name in FIREWALLS:
            hosts[name]["kind"] = "router"
            hosts[name].pop("firewall", None)
        data["distributed_firewall"] = copy.deepcopy(DFW_POLICY)
        data["description"] = "two sites, local egress, distributed firewall at the vNIC"
    data.pop("expect", None)  # the base lab's expectations describe the base design
    return data


def write_design_labs(outdir: Path) -> dict[str, Path]:
    base = yaml.safe_load(LAB.read_text())
    outdir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for design in DESIGNS:
        path = outdir / f"{design}.yaml"
        path.write_text(
            f"# Generated by experiments/vmsc_asymmetry.py from labs/{LAB.name}\n"
            + yaml.safe_dump(design_data(base, design), sort_keys=False)
        )
        paths[design] = path
    return paths


# -- measurements --------------------------------------------------------------------------
def dci_bytes(net: LabNetwork) -> int:
    """Bytes the DCI has carried, both directions: what each end received.
    (A userspace OVS sends through a packet socket, which the sending veth's
    tx counters do not see; the receiving end counts every frame.)"""
    total = 0
    for end in DCI_ENDS:
        data = json.loads(net.node("fabric").cmd(f"ip -j -s link show dev {end}"))[0]
        total += data["stats64"]["rx"]["bytes"]
    return total


def firewall_state(net: LabNetwork) -> dict:
    """Per perimeter firewall: rule counters and the conntrack summary."""
    out = {}
    for name in FIREWALLS:
        host = next(h for h in net.lab.hosts if h.name == name)
        if host.firewall is None:
            continue
        node = net.node(name)
        out[name] = {
            "counters": perimeter.rule_counters(node.cmd(f"nft -j list table inet {perimeter.TABLE}")),
            "conntrack": perimeter.conntrack_summary(node.cmd("conntrack -L 2>/dev/null")),
        }
    return out


def _delta(after: dict, before: dict) -> dict:
    out = {}
    for fw, state in after.items():
        counters = {
            k: v["packets"] - before.get(fw, {}).get("counters", {}).get(k, {}).get("packets", 0)
            for k, v in state["counters"].items()
        }
        out[fw] = {
            "packets_by_rule": counters,
            "dropped_invalid": counters.get(perimeter.INVALID, 0),
            "dropped_default": counters.get(perimeter.DEFAULT, 0),
            "conntrack_at_end": state["conntrack"],
        }
    return out


def summarize(users: dict[str, dict], moved: dict, p: dict) -> dict:
    """Survival and new-connection success from the users' records."""
    held = [times for u in users.values() for times in u["held"]]
    survived = sum(1 for times in held if any(t > moved["resumed"] for t in times))
    new = [r for u in users.values() for r in u["new"]]
    before = [r for r in new if r["start"] < moved["stun_start"]]
    # A connection opened during the stun is judged with those after it.
    after = [r for r in new if r["start"] >= moved["stun_start"]]
    last = max((t for times in held for t in times if t > moved["resumed"]), default=None)
    first_after = min((t for times in held for t in times if t > moved["resumed"]), default=None)
    return {
        "held": len(held),
        "held_survived": survived,
        "held_survival_rate": survived / len(held) if held else 0.0,
        "new_before": len(before),
        "new_before_ok": sum(r["ok"] for r in before),
        "new_after": len(after),
        "new_after_ok": sum(r["ok"] for r in after),
        "new_after_success_rate": (sum(r["ok"] for r in after) / len(after)) if after else 0.0,
        "first_reply_after_resume_s": (round(first_after - moved["resumed"], 3) if first_after else None),
        "last_reply_after_resume_s": round(last - moved["resumed"], 3) if last else None,
    }


def timeline(users: dict[str, dict], t0: float, bin_s: float = 0.25) -> dict:
    """Completed requests on held connections and successful new connections
    per ``bin_s`` from ``t0``."""
    end = max(
        [t for u in users.values() for ts in u["held"] for t in ts]
        + [r["start"] for u in users.values() for r in u["new"]]
        + [t0]
    )
    bins = int((end - t0) / bin_s) + 1
    held, new_ok, new_fail = [0] * bins, [0] * bins, [0] * bins
    for u in users.values():
        for ts in u["held"]:
            for t in ts:
                if t >= t0:
                    held[int((t - t0) / bin_s)] += 1
        for r in u["new"]:
            if r["start"] >= t0:
                (new_ok if r["ok"] else new_fail)[int((r["start"] - t0) / bin_s)] += 1
    return {"bin_s": bin_s, "held_replies": held, "new_ok": new_ok, "new_failed": new_fail}


def measure_design(net: LabNetwork, work: Path, design: str, p: dict) -> dict:
    server = guest_tool(
        net, VM, "tcpapp", "serve", "--bind", VM_IP, "--port", PORT, "--reply", p["reply_bytes"], wait=False
    )
    procs = {}
    try:
        wait_ready_line(server, f"tcpapp server on {VM}")
        # The users open new connections until timeout_s before they stop
        # (each gets its full wait): add it, so they open them for the whole
        # after_s after the move.
        seconds = p["before_s"] + p["after_s"] + p["timeout_s"]
        outs = {u: work / f"{design}-{u}.json" for u in USERS}
        fw0, dci0 = firewall_state(net), dci_bytes(net)
        for u in USERS:
            procs[u] = guest_tool(
                net,
                u,
                "tcpapp",
                "users",
                "--dst",
                VM_IP,
                "--port",
                PORT,
                "--reply",
                p["reply_bytes"],
                "--held",
                p["held_per_user"],
                "--interval",
                p["interval_s"],
                "--new-every",
                p["new_every_s"],
                "--seconds",
                seconds,
                "--timeout",
                p["timeout_s"],
                "--out",
                outs[u],
                wait=False,
            )
        for u in USERS:
            wait_ready_line(procs[u], f"tcpapp users on {u}")
        t0 = time.time()
        time.sleep(p["before_s"])  # the workload's steady phase (a parameter)
        dci_at_move = dci_bytes(net)
        moved = net.control.vmotion(VM, DEST_HOST, stun_s=p["stun_s"])
        for u in USERS:
            procs[u].communicate(timeout=seconds + 30)
            if procs[u].returncode != 0:
                raise RuntimeError(f"tcpapp users on {u} failed")
        dci_end = dci_bytes(net)
        users = {u: json.loads(outs[u].read_text()) for u in USERS}
        before_s = moved["stun_start"] - t0
        after_s = max(1e-3, time.time() - moved["resumed"])
        return {
            "design": design,
            "vmotion": {k: moved[k] for k in ("from", "to", "stun_start", "resumed", "stun_s")},
            "t0": t0,
            **summarize(users, moved, p),
            "dci": {
                "bytes_before_move": dci_at_move - dci0,
                "bytes_after_move": dci_end - dci_at_move,
                "bytes_per_s_before": round((dci_at_move - dci0) / before_s),
                "bytes_per_s_after": round((dci_end - dci_at_move) / after_s),
            },
            "firewalls": _delta(firewall_state(net), fw0),
            "timeline": timeline(users, t0),
            "users": users,
        }
    finally:
        for proc in [server, *procs.values()]:
            stop_tool(proc)


def verdicts(designs: dict) -> dict:
    local, trombone, dfw = (designs[d] for d in DESIGNS)
    fw_local = local["firewalls"]
    dropped = sum(f["dropped_invalid"] + f["dropped_default"] for f in fw_local.values())
    half_open = sum(f["conntrack_at_end"]["half_open"] for f in fw_local.values())
    return {
        "perimeter_local_egress_breaks_flows": {
            "held_survival_rate": local["held_survival_rate"],
            "new_after_success_rate": local["new_after_success_rate"],
            "perimeter_drops": dropped,
            "half_open_at_end": half_open,
            "verdict": (
                local["held_survival_rate"] == 0.0 and local["new_after_success_rate"] == 0.0 and dropped > 0
            ),
        },
        "dfw_keeps_connections": {
            "held_survival_rate": dfw["held_survival_rate"],
            "new_after_success_rate": dfw["new_after_success_rate"],
            "verdict": (dfw["held_survival_rate"] == 1.0 and dfw["new_after_success_rate"] == 1.0),
        },
        "trombone_loads_dci": {
            "trombone_bytes_per_s_after": trombone["dci"]["bytes_per_s_after"],
            "local_egress_bytes_per_s_after": dfw["dci"]["bytes_per_s_after"],
            "ratio": round(trombone["dci"]["bytes_per_s_after"] / max(1, dfw["dci"]["bytes_per_s_after"]), 2),
            "trombone_survival_rate": trombone["held_survival_rate"],
            # Replies are 2 KiB per 4-byte request: when they cross the DCI
            # too, it carries several times the local-egress traffic.
            "verdict": (
                trombone["held_survival_rate"] == 1.0
                and trombone["dci"]["bytes_per_s_after"] > 2 * dfw["dci"]["bytes_per_s_after"]
            ),
        },
    }


def run(params: dict | None = None) -> dict:
    p = {**DEFAULTS, **(params or {})}
    t0 = time.monotonic()
    work = RESULTS / NAME / "raw"
    work.mkdir(parents=True, exist_ok=True)
    labs = write_design_labs(RESULTS / NAME / "labs")
    cpu, drops, phase, designs, env = CpuMeter(), {}, Progress(NAME), {}, {}
    for design in DESIGNS:
        with lab_session(labs[design]) as net:
            phase(f"{design}: users hold and open connections while {VM} moves DC1 -> DC2")
            cpu.start()
            designs[design] = measure_design(net, work, design, p)
            cpu.stop()
            env = environment(net)
            drops.update({f"{design}/{k}": v for k, v in shaping_drops(net).items()})
            dci_delay = applied_dci_delay(net)
    claims = verdicts(designs)
    result = {
        "experiment": NAME,
        "seed": "003_41155c6ca9cde2fe.txt",
        "labs": repo_paths(labs),
        "params": p,
        "environment": env,
        "dci_delay": dci_delay,
        "designs": designs,
        "claims": claims,
        "verdicts": verdicts_of(claims),
        "fidelity": fidelity_summary(cpu, drops, frames_counted=False),
        "wall_s": round(time.monotonic() - t0, 1),
    }
    return result


def applied_dci_delay(net) -> dict:
    """What the run really did to the DCI's timing, read off its interfaces
    (``tc qdisc show`` on both ends). The testbed configures no delay
    (issue 20 adds link delay), so this says "none" unless something on the
    machine put a netem there."""
    fabric = net.node(naming.FABRIC_NODE)
    devs = [
        naming.fabric_port(end.switch, end.port) for link in net.lab.dci_links for end in (link.a, link.b)
    ]
    return dci_delay_from_qdiscs({dev: fabric.cmd(f"tc qdisc show dev {dev}") for dev in devs})


def dci_delay_from_qdiscs(shown: dict[str, str]) -> dict:
    """``tc qdisc show`` output per DCI interface -> the qdisc kinds on each
    and the largest netem delay among them (0 when there is no netem)."""
    qdiscs = {
        dev: sorted({line.split()[1] for line in out.splitlines() if len(line.split()) > 1})
        for dev, out in shown.items()
    }
    delays = [float(m) for out in shown.values() for m in re.findall(r"netem .*?delay ([\d.]+)ms", out)]
    return {
        "applied_ms": max(delays, default=0.0),
        "qdiscs": qdiscs,
        "how": (
            f"netem, {max(delays):g} ms"
            if delays
            else "none: the DCI is rate-shaped (htb) and no delay is configured"
        ),
    }


PALETTE = {"held": "#0072B2", "new_ok": "#009E73", "new_failed": "#D55E00"}


def plot(result: dict, outdir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(DESIGNS), 1, figsize=(10, 8.5), sharex=True)
    for ax, design in zip(axes, DESIGNS):
        d = result["designs"][design]
        tl, bin_s = d["timeline"], d["timeline"]["bin_s"]
        xs = [i * bin_s for i in range(len(tl["held_replies"]))]
        ax.plot(
            xs,
            [n / bin_s for n in tl["held_replies"]],
            color=PALETTE["held"],
            label="replies on held connections /s",
        )
        ax.bar(
            xs,
            [n / bin_s for n in tl["new_ok"]],
            width=bin_s * 0.8,
            align="edge",
            color=PALETTE["new_ok"],
            alpha=0.7,
            label="new connections succeeding /s",
        )
        ax.bar(
            xs,
            [-n / bin_s for n in tl["new_failed"]],
            width=bin_s * 0.8,
            align="edge",
            color=PALETTE["new_failed"],
            alpha=0.7,
            label="new connections failing /s (below 0)",
        )
        stun = d["vmotion"]["stun_start"] - d["t0"]
        ax.axvspan(stun, d["vmotion"]["resumed"] - d["t0"], color="grey", alpha=0.4)
        ax.axvline(stun, color="black", ls=":", lw=1)
        ax.set_ylabel("per second")
        ax.set_title(
            f"{design}: {d['held_survived']}/{d['held']} held connections survive, "
            f"{d['new_after_ok']}/{d['new_after']} new ones succeed after the move; "
            f"DCI {d['dci']['bytes_per_s_after'] * 8 / 1e6:.2f} Mbit/s after",
            fontsize=9,
        )
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper right")
    axes[-1].set_xlabel(f"time (s); dotted line and grey band: vMotion of {VM} DC1 -> DC2")
    return save_figure(fig, outdir, NAME)


METRICS = {f"{d} held survival": (lambda r, d=d: r["designs"][d]["held_survival_rate"]) for d in DESIGNS}

MEASURED = {
    "perimeter_local_egress_breaks_flows": lambda r: (
        "{s:.0%} of held connections survive, {n:.0%} of new ones succeed after the move; "
        "{drops} packets dropped and {half} half-open entries at the perimeter firewalls".format(
            s=r["claims"]["perimeter_local_egress_breaks_flows"]["held_survival_rate"],
            n=r["claims"]["perimeter_local_egress_breaks_flows"]["new_after_success_rate"],
            drops=r["claims"]["perimeter_local_egress_breaks_flows"]["perimeter_drops"],
            half=r["claims"]["perimeter_local_egress_breaks_flows"]["half_open_at_end"],
        )
    ),
    "dfw_keeps_connections": lambda r: (
        "{s:.0%} of held connections survive, {n:.0%} of new ones succeed after the move".format(
            s=r["claims"]["dfw_keeps_connections"]["held_survival_rate"],
            n=r["claims"]["dfw_keeps_connections"]["new_after_success_rate"],
        )
    ),
    "trombone_loads_dci": lambda r: (
        "DCI after the move: {t:.2f} Mbit/s with trombone vs {l:.2f} Mbit/s with local "
        "egress ({x}x); trombone keeps {s:.0%} of held connections".format(
            t=r["claims"]["trombone_loads_dci"]["trombone_bytes_per_s_after"] * 8 / 1e6,
            l=r["claims"]["trombone_loads_dci"]["local_egress_bytes_per_s_after"] * 8 / 1e6,
            x=r["claims"]["trombone_loads_dci"]["ratio"],
            s=r["claims"]["trombone_loads_dci"]["trombone_survival_rate"],
        )
    ),
}

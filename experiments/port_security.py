"""Experiment ``port-security``: MAC address changes and forged transmits
against the effective MAC, on a standard port group, a distributed port group
and an NSX logical switch alike.

Lab ``labs/port-security.yaml``. Each guest on esx1 loads a new MAC into its
NIC (``ip link set eth0 address``, as a guest OS does), then

* sends frames from its configured (.vmx) MAC and from the new one to a VM
  on the far host (counted where that VM receives them), and
* receives frames that VM sends to each of the two addresses (counted in the
  guest), then changes its MAC back and receives again.

What vSphere documents ("Security Policy", vSphere Networking): MAC address
changes = reject refuses the guest's change, so the effective MAC stays the
.vmx MAC and, while the guest's address differs from it, "all inbound frames
are dropped"; = accept makes the new MAC the effective one ("frames to the
new MAC address are received"). Forged transmits = reject drops "any outbound
frame with a source MAC address that is different from the one currently
set on the adapter", the effective MAC. ``documented`` writes that table
down from the policy alone; the verdicts compare it with the counts.
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
from vlab.bindings import switch_bindings
from vlab.waiting import wait_for

if TYPE_CHECKING:
    from topologies.network import LabNetwork

NAME = "port-security"
LAB = Path(__file__).resolve().parents[1] / "labs" / "port-security.yaml"
# guest on esx1 -> (kind of port, the VM on esx2 it talks to)
CASES = {
    "vss-strict": ("standard port group", "far-vlan"),
    "vss-change": ("standard port group", "far-vlan"),
    "vds-strict": ("distributed port group", "far-vlan"),
    "vds-change": ("distributed port group", "far-vlan"),
    "ls-strict": ("NSX logical switch", "far-strict"),
    "ls-change": ("NSX logical switch", "far-change"),
}
# The claims: one per kind of port, each over its two policies.
CLAIMS = {
    "standard_port_group_security_against_effective_mac": ("vss-strict", "vss-change"),
    "distributed_port_group_security_against_effective_mac": ("vds-strict", "vds-change"),
    "logical_switch_security_against_effective_mac": ("ls-strict", "ls-change"),
}
COUNTS = ("from_vmx_mac", "from_new_mac", "to_vmx_mac", "to_new_mac", "to_vmx_mac_after_change_back")
DEFAULTS = {"frames": 20}


def _nic(net: LabNetwork, vm: str):
    return next(v for v in net.lab.vms if v.name == vm).vnics[0]


def _arrived(caps: dict, tag: str, n: int) -> bool:
    """All ``n`` frames with ``tag`` are in one of ``caps`` (a flooded
    frame is in several)."""
    return any(count_frames(c.pcap, tagged(tag)) >= n for c in caps.values())


def new_mac(vm: str) -> str:
    """The address the guest changes to: locally administered, one per guest."""
    return "02:00:5e:7e:00:%02x" % (list(CASES).index(vm) + 1)


def policy(net: LabNetwork, vm: str) -> dict:
    """The effective security policy of ``vm``'s vNIC, from the lab."""
    port = naming.vnic_port(vm, _nic(net, vm).name)
    for b in switch_bindings(net.lab):
        for p in b.ports:
            if p.name == port:
                s = b.security(p)
                return {"mac_changes": s.mac_changes, "forged_transmits": s.forged_transmits}
    raise KeyError(port)


def documented(mac_changes: str, forged_transmits: str, n: int) -> dict:
    """What vSphere documents for a guest that changed its MAC (see the
    module docstring), as frame counts out of ``n`` sent each way."""
    effective = "new" if mac_changes == "accept" else "vmx"
    sends = {mac: n if forged_transmits == "accept" or mac == effective else 0 for mac in ("vmx", "new")}
    # Inbound: only to the effective MAC, and nothing at all while a
    # rejected change is in place.
    receives = {mac: n if mac_changes == "accept" and mac == effective else 0 for mac in ("vmx", "new")}
    return {
        "from_vmx_mac": sends["vmx"],
        "from_new_mac": sends["new"],
        "to_vmx_mac": receives["vmx"],
        "to_new_mac": receives["new"],
        "to_vmx_mac_after_change_back": n,
    }


def _set_mac(net: LabNetwork, vm: str, mac: str) -> None:
    net.node(vm).cmd(f"ip link set eth0 address {mac}")
    net.control.wait_guest(naming.vnic_port(vm, "eth0"), lambda g: (g["effective_mac"] or "") == mac.lower())


def measure(net: LabNetwork, work: Path, vm: str, n: int = DEFAULTS["frames"]) -> dict:
    """One guest's case: counts of ``COUNTS``, what vSphere documents, and
    the verdict. Every count is final when read: frames the policy must let
    through are sent last on the same path and waited for; the frames to the
    guest are all at its host (its uplinks' receive side) before it changes
    its MAC back, and that is followed by frames that must arrive (a path
    keeps its order)."""
    ctl, (_, far) = net.control, CASES[vm]
    vmx, new, far_mac = vm_mac(net, vm), new_mac(vm), vm_mac(net, far)
    pol = policy(net, vm)
    expect = documented(pol["mac_changes"], pol["forged_transmits"], n)
    tag = {k: f"{vm}:{k};" for k in COUNTS}  # ';' ends it: no tag is a prefix of another
    at_far = ctl.capture(work / f"{vm}-at-{far}.pcap", port=naming.vnic_port(far, "eth0"))
    at_guest = ctl.capture(work / f"{vm}-at-guest.pcap", port=naming.vnic_port(vm, "eth0"))
    into_host = {
        u.name: ctl.capture(work / f"{vm}-into-{u.name}.pcap", uplink=("esx1", u.name), direction="rx")
        for u in next(h for h in net.lab.esxi_hosts if h.name == "esx1").uplinks
    }
    try:
        _set_mac(net, vm, new)
        try:
            # Out: what may pass goes last, so once it is all at the far VM
            # anything let through before it is there too.
            sources = sorted([("vmx", vmx), ("new", new)], key=lambda s: expect[f"from_{s[0]}_mac"])
            for label, src in sources:
                send_frames(net, vm, src, far_mac, tag[f"from_{label}_mac"], n)
            last = sources[-1][0]
            settle.wait_frames(at_far.pcap, expect[f"from_{last}_mac"], tagged(tag[f"from_{last}_mac"]))
            # In: the frames to each address, all at the guest's host before
            # the change back, so the changed MAC's policy decides them all.
            for label, dst in (("vmx", vmx), ("new", new)):
                send_frames(net, far, far_mac, dst, tag[f"to_{label}_mac"], n)
            wait_for(
                lambda: all(_arrived(into_host, tag[f"to_{m}_mac"], n) for m in ("vmx", "new")),
                10,
                f"the frames to {vm} at esx1's uplinks",
            )
        finally:
            _set_mac(net, vm, vmx)
        send_frames(net, far, far_mac, vmx, tag["to_vmx_mac_after_change_back"], n)
        settle.wait_frames(at_guest.pcap, n, tagged(tag["to_vmx_mac_after_change_back"]))
    finally:
        pcaps = {"far": at_far.stop(), "guest": at_guest.stop()}
        for c in into_host.values():
            c.stop()
    counts = {
        k: count_frames(pcaps["far" if k.startswith("from") else "guest"], tagged(t)) for k, t in tag.items()
    }
    return {
        "port": CASES[vm][0],
        "policy": pol,
        "vmx_mac": vmx,
        "new_mac": new,
        "sent_each": n,
        "measured": counts,
        "documented": expect,
        "verdict": counts == expect,
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
        for vm in CASES:
            phase(f"{vm}: the guest changes its MAC, sends from both, receives to both")
            cases[vm] = measure(net, work, vm, p["frames"])
        cpu.stop()
        env, drops = environment(net), shaping_drops(net)
    claims = {
        claim: {"cases": list(vms), "verdict": all(cases[vm]["verdict"] for vm in vms)}
        for claim, vms in CLAIMS.items()
    }
    return {
        "experiment": NAME,
        "lab": str(LAB.relative_to(LAB.parents[1])),
        "params": p,
        "environment": env,
        "cases": cases,
        "claims": claims,
        "verdicts": verdicts_of(claims),
        "fidelity": fidelity_summary(cpu, drops, frames_counted=True),
        "wall_s": round(time.monotonic() - t0, 1),
    }


def plot(result: dict, outdir: Path) -> list[Path]:
    """Frames counted per case against what vSphere documents."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = result["cases"]
    fig, axes = plt.subplots(1, len(cases), figsize=(2.6 * len(cases), 4.2), sharey=True)
    labels = ["from .vmx", "from new", "to .vmx", "to new", "to .vmx\nafter back"]
    for ax, (vm, c) in zip(axes, cases.items()):
        xs = range(len(COUNTS))
        ax.bar(xs, [c["documented"][k] for k in COUNTS], 0.8, color="#DDDDDD", label="documented")
        ax.bar(xs, [c["measured"][k] for k in COUNTS], 0.45, color="#0072B2", label="measured")
        ax.set_xticks(list(xs), labels, rotation=60, ha="right", fontsize=8)
        pol = c["policy"]
        ax.set_title(
            f"{vm}\n{c['port']}\nMAC changes {pol['mac_changes']}, forged {pol['forged_transmits']}",
            fontsize=8,
        )
    axes[0].set_ylabel(f"frames (of {result['params']['frames']} sent each)")
    axes[0].legend(loc="center", fontsize=8)
    fig.suptitle("Security policy against the effective MAC, after the guest changed its MAC", fontsize=10)
    return save_figure(fig, outdir, NAME)


def _case_line(r: dict, vm: str) -> str:
    m = r["cases"][vm]["measured"]
    return "{}: out {}/{} (.vmx/new), in {}/{}".format(
        vm, m["from_vmx_mac"], m["from_new_mac"], m["to_vmx_mac"], m["to_new_mac"]
    )


MEASURED = {
    claim: (lambda r, vms=vms: "; ".join(_case_line(r, vm) for vm in vms)) for claim, vms in CLAIMS.items()
}

# Key number for `vlab run --repeat N`: frames counted off the documented
# table, summed over every case and count (0 on every run of a correct vSwitch).
METRICS = {
    "frames off the documented table": lambda r: sum(
        abs(c["measured"][k] - c["documented"][k]) for c in r["cases"].values() for k in COUNTS
    ),
}

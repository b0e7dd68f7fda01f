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
5. Route based on physical NIC load (``labs/load-based-teaming.yaml``): two
   VMs whose port IDs share an uplink each send TCP as fast as they can;
   the uplink is saturated, and 30 s later (vSphere: load above 75% for
   30 s) one of them is moved to the idle uplink, where both then run at
   full speed; a team under the threshold (one VM at half its uplink's
   speed) moves nothing.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from controller import loadbalance
from experiments import pings, settle
from experiments.common import (
    RESULTS,
    Progress,
    count_frames,
    environment,
    lab_session,
    read_pcap,
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
from vlab.lab.resolve import link_mbps
from vlab.waiting import Pending, wait_for

if TYPE_CHECKING:
    from topologies.network import LabNetwork

NAME = "teaming-policies"
REPO = Path(__file__).resolve().parents[1]
LABS = {
    "teaming": REPO / "labs" / "teaming.yaml",
    "two-vswitches": REPO / "labs" / "two-vswitches.yaml",
    "beacon": REPO / "labs" / "beacon-probing.yaml",
    "lbt": REPO / "labs" / "load-based-teaming.yaml",
}
EXT_VLAN20, EXT_VLAN40 = "00:50:56:0e:0e:02", "00:50:56:0e:0e:04"
MAC_HASH_TEAM = ("vmnic0", "vmnic1")  # PG-MacHash's active uplinks, in order (labs/teaming.yaml)
IH_IP, LAG = "10.0.40.5", ("vmnic3", "vmnic4")
DEFAULTS = {"frames": 10, "trials": 3, "ping_interval_s": 0.1, "failure_s": 8.0, "lbt_s": 45.0}


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


# -- 2b. EST and VGT port groups, source MAC hash ------------------------------------------
def measure_vlan_modes(net: LabNetwork, work: Path, n: int = 3) -> dict:
    """EST (VLAN 0): the guest's frames leave untagged. VGT (VLAN 4095): the
    guest tags its frames itself (scapy: this kernel has no 8021q module,
    so a guest VLAN interface cannot exist), they leave with its tag 30 and
    ext's replies on its VLAN 30 access port reach the guest still tagged."""
    from scapy.layers.inet import ICMP
    from scapy.layers.l2 import Dot1Q

    ctl = net.control
    cap = ctl.capture(work / "est.pcap", uplink=("esx1", "vmnic2"), direction="tx")
    out = net.node("est").cmd(f"ping -n -c {n} -i 0.2 -W 2 10.0.0.100")
    frames = [f for f in read_pcap(cap.stop()) if ICMP in f and f[ICMP].type == 8]
    est = {
        "replies": " 0% packet loss" in out,
        "sent": len(frames),
        "tagged": sum(Dot1Q in f for f in frames),
    }
    ext, vgt_mac = net.node("ext"), vm_mac(net, "vgt")
    ext.cmd(f"ip neigh replace 10.0.30.2 lladdr {vgt_mac} dev eth2")  # no ARP without a VLAN interface
    try:
        up = ctl.capture(work / "vgt-uplink.pcap", uplink=("esx1", "vmnic2"), direction="tx")
        guest = ctl.capture(work / "vgt-guest.pcap", port=naming.vnic_port("vgt", "eth0"))
        ips = ["--ip-src", "10.0.30.2", "--ip-dst", "10.0.30.100", "--vlan", 30, "--icmp"]
        send_frames(net, "vgt", vgt_mac, "00:50:56:0e:0e:03", "vgt;", n, extra=ips)
        settle.wait_frames(guest.pcap, n, lambda f: ICMP in f and f[ICMP].type == 0)
        sent = [f for f in read_pcap(up.stop()) if ICMP in f and f[ICMP].type == 8]
        got = [f for f in read_pcap(guest.stop()) if ICMP in f and f[ICMP].type == 0]
    finally:
        ext.cmd("ip neigh del 10.0.30.2 dev eth2")
    vgt = {
        "sent": len(sent),
        "sent_tags": sorted({f[Dot1Q].vlan for f in sent if Dot1Q in f}),
        "replies": len(got),
        "reply_tags": sorted({f[Dot1Q].vlan for f in got if Dot1Q in f}),
    }
    ok_est = est["replies"] and est["sent"] == n and est["tagged"] == 0
    ok_vgt = vgt == {"sent": n, "sent_tags": [30], "replies": n, "reply_tags": [30]}
    return {"frames": n, "est": est, "vgt": vgt, "verdict": ok_est and ok_vgt}


def _port_id_pick(port_id: int) -> str:
    """The uplink of MAC_HASH_TEAM that port ID teaming would give port ``port_id``."""
    return MAC_HASH_TEAM[port_id % len(MAC_HASH_TEAM)]


def measure_source_mac_hash(net: LabNetwork, work: Path, n: int = DEFAULTS["frames"]) -> dict:
    """Four VMs of a source MAC hash port group: each VM's frames all by one
    uplink, the four MACs over both; then mh1's vNIC gets a new port and
    keeps its uplink ("Virtual machines use the same uplink because the MAC
    address is static"; port ID teaming would pick again by the new port)."""
    vms = ("mh1", "mh2", "mh3", "mh4")
    caps = uplink_captures(net, work, "machash", ("vmnic0", "vmnic1"))
    try:
        for vm in vms:
            send_frames(net, vm, vm_mac(net, vm), EXT_VLAN20, f":machash-{vm};", n)
        for vm in vms:
            by_uplink(caps, f":machash-{vm};", n)
        before = pin(net, "mh1")
        port = naming.vnic_port("mh1", "eth0")
        old_id = new_id = net.control.placement()[port].ofport
        # A new port whose number port ID teaming would place on the other
        # uplink, so the frames tell the two policies apart.
        for _ in range(4):
            new_id = net.control.reconnect("mh1")[port]
            if _port_id_pick(new_id) != before:
                break
        send_frames(net, "mh1", vm_mac(net, "mh1"), EXT_VLAN20, ":machash-new-port;", n)
        by_uplink(caps, ":machash-new-port;", n)
    finally:
        _stop(caps)
    counts = {vm: recount(caps, f":machash-{vm};") for vm in vms}
    new_port = recount(caps, ":machash-new-port;")
    one_each = all(sorted(c.values()) == [0, n] for c in counts.values())
    used = sorted({max(c, key=c.get) for c in counts.values()})
    return {
        "sent_each": n,
        "counts": counts,
        "uplinks_used": used,
        "new_port": {
            "old": old_id,
            "new": new_id,
            "uplink_before": before,
            "port_id_would_pick": _port_id_pick(new_id),
            "counts": new_port,
        },
        "verdict": one_each
        and used == ["vmnic0", "vmnic1"]
        and _port_id_pick(new_id) != before
        and new_port == {u: (n if u == before else 0) for u in caps},
    }


# -- 2c. two vSwitches on one host ----------------------------------------------------------
def measure_two_vswitches(net: LabNetwork, work: Path, n: int = DEFAULTS["frames"]) -> dict:
    """vSwitch0 (g1, VM-Network on vmnic0/1) and vSwitch1 (g2, Production:
    vmnic2 active, vmnic3 standby) on esx1: vmnic2's cable is pulled and
    plugged back. g2's frames move to vmnic3 and back (failback); g1's stay
    on their uplink throughout: each vSwitch fails over alone."""
    ctl, vms = net.control, ("g1", "g2")
    uplinks = ("vmnic0", "vmnic1", "vmnic2", "vmnic3")
    caps = uplink_captures(net, work, "two-vswitches", uplinks)
    steps = ("before", "failed", "recovered")
    try:
        for step in steps:
            if step == "failed":
                ctl.uplink("esx1", "vmnic2", up=False)
                wait_for(lambda: pin(net, "g2") == "vmnic3", 10, "g2 failing over to vmnic3")
            elif step == "recovered":
                ctl.uplink("esx1", "vmnic2", up=True)
                wait_for(lambda: pin(net, "g2") == "vmnic2", 10, "g2 failing back to vmnic2")
            for vm in vms:
                send_frames(net, vm, vm_mac(net, vm), "00:50:56:0e:0e:20", f":{vm}-{step};", n)
            for vm in vms:
                by_uplink(caps, f":{vm}-{step};", n)
    finally:
        ctl.uplink("esx1", "vmnic2", up=True)
        _stop(caps)
    counts = {vm: {step: recount(caps, f":{vm}-{step};") for step in steps} for vm in vms}

    def only(uplink):
        return {u: (n if u == uplink else 0) for u in uplinks}

    g1_uplink = max(counts["g1"]["before"], key=counts["g1"]["before"].get)
    expected = {
        "g1": {step: only(g1_uplink) for step in steps},
        "g2": {"before": only("vmnic2"), "failed": only("vmnic3"), "recovered": only("vmnic2")},
    }
    return {
        "sent_each": n,
        "counts": counts,
        "g1_uplink": g1_uplink,
        "verdict": g1_uplink in ("vmnic0", "vmnic1") and counts == expected,
    }


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


# -- load-based teaming --------------------------------------------------------------------------
SINK_IP = "10.0.10.100"
LBT_FLOWS = {"busy1": 5301, "busy2": 5302, "half": 5303}
# When the move must come, after the load began: the window vSphere
# documents (30 s above 75%, less the one sample that may straddle the
# load's start), and at most the 40 s (one 1 s sample and the
# controller's reaction on top are well inside it).
LBT_MOVE_S = (loadbalance.WINDOW_S - loadbalance.SAMPLE_S, 40.0)
HALF_LOAD = 0.5  # the quiet team's VM sends at half its uplink's speed


def _uplink_bps(net: LabNetwork, host: str, vmnic: str) -> float:
    up = next(u for u in net.control.esxi(host).uplinks if u.name == vmnic)
    return link_mbps(net.lab, up.speed) * 1e6


def _iperf_rates(out: str) -> list[float]:
    """Bits per second of each 1 s interval of an iperf3 -J client run."""
    data = json.loads(out)
    if "error" in data:
        raise RuntimeError(f"iperf3: {data['error']}")
    return [i["sum"]["bits_per_second"] for i in data["intervals"]]


def measure_load_based(net: LabNetwork, seconds: float) -> dict:
    """Three TCP senders to the sink for ``seconds``: busy1 and busy2 at full
    speed (same uplink by port ID), half at ``HALF_LOAD`` of its uplink.
    Which ports load-based teaming moved and when, from the controller's
    events; each VM's rate per second from its iperf3 intervals."""
    ctl, sink = net.control, net.node("sink")
    before = ctl.applied()["pinning"]["esx1"]
    servers = [
        sink.popen(["iperf3", "-s", "-1", "-B", SINK_IP, "-p", str(port)], stdout=subprocess.DEVNULL)
        for port in LBT_FLOWS.values()
    ]
    try:
        for port in LBT_FLOWS.values():
            wait_for(
                lambda port=port: (
                    "LISTEN" in sink.cmd(f"ss -Hltn 'sport = :{port}'")
                    or Pending(f"iperf3 on port {port} not listening")
                ),
                10,
                f"iperf3 server on sink:{port}",
            )
        half_bps = HALF_LOAD * _uplink_bps(net, "esx1", before["half-eth0"])
        t_start = time.time()  # no load before this: the earliest the window can start
        clients = {
            vm: net.node(vm).popen(
                ["iperf3", "-c", SINK_IP, "-p", str(port), "-t", str(seconds), "-i", "1", "-J"]
                + (["-b", str(int(half_bps))] if vm == "half" else []),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for vm, port in LBT_FLOWS.items()
        }
        outputs = {vm: c.communicate(timeout=seconds + 30)[0] for vm, c in clients.items()}
    finally:
        for s in servers:
            stop_tool(s)
    moves = [e for e in ctl.events() if e["event"] == "load_balanced" and e["t"] >= t_start]
    rarps = [
        e
        for e in ctl.events()
        if e["event"] == "rarp" and e["reason"] == "load balancing" and e["t"] >= t_start
    ]
    after = ctl.applied()["pinning"]["esx1"]
    busy = [m for m in moves if m["vswitch"] == "dvs1"]
    moved_after = [round(m["t"] - t_start, 2) for m in busy]
    lo, hi = LBT_MOVE_S
    return {
        "pinning_before": {p: before[p] for p in ("busy1-eth0", "busy2-eth0", "half-eth0")},
        "pinning_after": {p: after[p] for p in ("busy1-eth0", "busy2-eth0", "half-eth0")},
        "moves": [
            {k: m[k] for k in ("vswitch", "port", "from_uplink", "to_uplink", "lowest_utilization")}
            for m in moves
        ],
        "moved_after_s": moved_after,
        "window_s": [lo, hi],
        "rarps": [{k: e[k] for k in ("port", "uplink", "mac")} for e in rarps],
        "rates_bps": {vm: _iperf_rates(out) for vm, out in outputs.items()},
        "half_load_bps": half_bps,
        "verdict_busy": len(busy) == 1
        and lo <= moved_after[0] <= hi
        and after["busy1-eth0"] != after["busy2-eth0"]
        and any(r["port"] == busy[0]["port"] for r in rarps),
        "verdict_quiet": not [m for m in moves if m["vswitch"] == "dvs2"]
        and after["half-eth0"] == before["half-eth0"],
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
        phase("EST and VGT port groups")
        claims["est_untagged_and_vgt_guest_tags"] = measure_vlan_modes(net, work)
        phase("source MAC hash: four VMs, then a new port for one")
        claims["source_mac_hash_one_uplink_per_mac"] = measure_source_mac_hash(net, work, p["frames"])
        cpu.stop()
        drops.update({f"teaming/{k}": v for k, v in shaping_drops(net).items()})
    with lab_session(LABS["two-vswitches"]) as net:
        cpu.start()
        phase("two vSwitches on one host: vSwitch1's active uplink fails and returns")
        claims["two_vswitches_fail_over_alone"] = measure_two_vswitches(net, work, p["frames"])
        cpu.stop()
        drops.update({f"two-vswitches/{k}": v for k, v in shaping_drops(net).items()})
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
    with lab_session(LABS["lbt"]) as net:
        cpu.start()
        phase(f"load-based teaming: two busy VMs on one uplink, one half-loaded team, {p['lbt_s']:g} s")
        lbt = measure_load_based(net, p["lbt_s"])
        claims["load_based_moves_one_busy_port"] = {
            **{k: v for k, v in lbt.items() if not k.startswith("verdict")},
            "verdict": lbt["verdict_busy"],
        }
        claims["load_based_leaves_an_unsaturated_team"] = {
            "pinning_before": lbt["pinning_before"]["half-eth0"],
            "pinning_after": lbt["pinning_after"]["half-eth0"],
            "half_load_bps": lbt["half_load_bps"],
            "rate_bps": lbt["rates_bps"]["half"],
            "verdict": lbt["verdict_quiet"],
        }
        cpu.stop()
        # TCP fills the busy uplink on purpose: its queue drops by design.
        tcp_drops = {f"lbt/{k}": v for k, v in shaping_drops(net).items()}
    return {
        "experiment": NAME,
        "labs": repo_paths(LABS),
        "params": p,
        "environment": env,
        "claims": claims,
        "verdicts": verdicts_of(claims),
        "fidelity": fidelity_summary(cpu, drops, frames_counted=True),
        "tcp_shaping_drops": tcp_drops,
        "wall_s": round(time.monotonic() - t0, 1),
    }


def plot(result: dict, outdir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    claims = result["claims"]
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.2), gridspec_kw={"width_ratios": [1.6, 1, 1, 1.3]})
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

    ax = axes[3]
    lbt = claims.get("load_based_moves_one_busy_port")
    if lbt is not None:
        colours = {"busy1": "#0072B2", "busy2": "#D55E00", "half": "#009E73"}
        for vm, rates in lbt["rates_bps"].items():
            ax.step(
                range(1, len(rates) + 1), [r / 1e6 for r in rates], where="pre", color=colours[vm], label=vm
            )
        for t in lbt["moved_after_s"]:
            ax.axvline(t, color="#555555", ls="--", lw=1, label=f"moved after {t:g} s")
        ax.axvspan(*lbt["window_s"], color="#EEEEEE", label="documented window")
        ax.set_ylim(0, max(max(r) for r in lbt["rates_bps"].values()) / 1e6 * 1.35)
        ax.set_xlabel("time since the load began (s)")
        ax.set_ylabel("TCP rate per second (Mbit/s)")
        ax.set_title("(d) load-based teaming: busy1 and busy2 share vmnic0")
        ax.legend(fontsize=7, loc="upper left", ncol=3)
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


def _lbt_line(r: dict) -> str:
    c = r["claims"]["load_based_moves_one_busy_port"]
    moves = "; ".join(f"{m['port']} {m['from_uplink']} -> {m['to_uplink']}" for m in c["moves"]) or "no move"
    after = ", ".join(map(str, c["moved_after_s"])) or "-"
    lo, hi = c["window_s"]
    return f"{moves} after {after} s of load (documented window {lo:g}-{hi:g} s)"


def _quiet_line(r: dict) -> str:
    c = r["claims"]["load_based_leaves_an_unsaturated_team"]
    rates = c["rate_bps"]
    mean = sum(rates) / len(rates) / 1e6 if rates else 0.0
    return f"half at {mean:.1f} Mbit/s stayed on {c['pinning_after']} (was {c['pinning_before']})"


METRICS = {
    "beacon detection (s)": lambda r: max(t["beacon_detected_after_s"] or float("inf") for t in _trials(r)),
    "beacon-probing VM outage (s)": _worst_outage,
    "load-based move after (s)": lambda r: (
        r["claims"]["load_based_moves_one_busy_port"]["moved_after_s"] or [float("inf")]
    )[0],
}


def _vlan_modes_line(r: dict) -> str:
    c = r["claims"]["est_untagged_and_vgt_guest_tags"]
    est, vgt = c["est"], c["vgt"]
    return (
        f"EST: {est['sent']} echo requests on vmnic2, {est['tagged']} tagged; VGT: {vgt['sent']} sent with "
        f"tag {'/'.join(map(str, vgt['sent_tags']))}, {vgt['replies']} replies reached the guest with tag "
        f"{'/'.join(map(str, vgt['reply_tags']))}"
    )


def _mac_hash_line(r: dict) -> str:
    c = r["claims"]["source_mac_hash_one_uplink_per_mac"]
    per_vm = ", ".join(f"{vm} {max(n, key=n.get)}" for vm, n in c["counts"].items())
    moved = c["new_port"]
    return (
        f"{c['sent_each']} frames per VM, each VM's all on one uplink: {per_vm}; mh1 on port {moved['new']} "
        f"(was {moved['old']}; port ID teaming would pick {moved.get('port_id_would_pick', '?')}): "
        f"{max(moved['counts'], key=moved['counts'].get)}"
    )


def _two_vswitches_line(r: dict) -> str:
    c = r["claims"]["two_vswitches_fail_over_alone"]

    def on(vm, step):
        n = c["counts"][vm][step]
        return max(n, key=n.get)

    return (
        f"g2 (vSwitch1): {on('g2', 'before')} -> {on('g2', 'failed')} -> {on('g2', 'recovered')}; "
        f"g1 (vSwitch0): {on('g1', 'before')} throughout"
    )


MEASURED = {
    "ip_hash_per_packet_by_documented_hash": _ip_hash_line,
    "est_untagged_and_vgt_guest_tags": _vlan_modes_line,
    "source_mac_hash_one_uplink_per_mac": _mac_hash_line,
    "two_vswitches_fail_over_alone": _two_vswitches_line,
    "explicit_failover_failback_yes_and_no": _failback_line,
    "beacon_probing_detects_an_upstream_failure": _beacon_line,
    "beacon_probing_two_uplinks_shotgun": _shotgun_line,
    "load_based_moves_one_busy_port": _lbt_line,
    "load_based_leaves_an_unsaturated_team": _quiet_line,
}

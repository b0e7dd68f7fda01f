"""Experiment ``vswitch-nuggets``: every claim of seed 001, measured.

Lab ``labs/vswitch-nuggets.yaml``. Each ``measure_*`` function drives real
guests (their own kernels, scapy for hand-made frames) and counts real frames
in pcaps; each returns its numbers and a verdict. Tests call the same
functions, so what the experiment reports is what the tests check.

1. no learning: the vSwitch has no MAC table; unknown unicast from a guest
   leaves by its uplink and reaches no other guest;
2. MAC address changes: reject drops inbound frames / accept delivers to the
   new MAC;
3. forged transmits: reject drops / accept forwards (scapy-forged source MAC);
4. multicast by the vNIC filter: subscribers only, including a guest that
   joined a different group sharing the MAC (32:1 overlap);
5. promiscuous guest = monitor port, with no mirror session;
6. vMotion of a quiet VM: delivery to it over time with notify switches on
   and off (off: lost until the physical switch ages the MAC out);
7. multicast after vMotion with the IGMP snooping switch: outage without the
   spoofed query vs with it, against the query's max response time; the
   query itself captured (source IP, max response time).
"""

from __future__ import annotations

import json
import subprocess
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
    read_pcap,
    save_figure,
    send_frames,
    stop_tool,
    tagged,
    udp_send,
    verdicts_of,
    vm_mac,
    wait_ready_line,
)
from experiments.fidelity import CpuMeter, checks, shaping_drops
from vlab import naming
from vlab.waiting import wait_for

if TYPE_CHECKING:
    from topologies.network import LabNetwork

NAME = "vswitch-nuggets"
LAB = Path(__file__).resolve().parents[1] / "labs" / "vswitch-nuggets.yaml"
UNKNOWN_MAC = "00:50:56:99:99:99"
NEW_MAC = "00:50:56:77:77:77"
FORGED_MAC = "00:50:56:66:66:66"
N_FRAMES = 20

DEFAULTS = {
    "frames": N_FRAMES,
    "quiet_pps": 50,
    "quiet_after_s": 2.0,
    "stun_s": 0.1,
    "mcast_pps": 50,
    "max_response_s": [1.0, 2.0, 4.0],
}


def _vnic(vm: str) -> str:
    return naming.vnic_port(vm, "eth0")


def _ip(net: LabNetwork, name: str) -> str:
    for v in net.lab.vms:
        if v.name == name:
            return str(v.vnics[0].ip.ip)
    host = next(h for h in net.lab.hosts if h.name == name)
    return str(host.interfaces[0].ip.ip)


def _ext_mac(net: LabNetwork) -> str:
    return next(h for h in net.lab.hosts if h.name == "ext").interfaces[0].mac.lower()


def _wait_guest(net, vm, predicate):
    return net.control.wait_guest(_vnic(vm), predicate)


# -- 1. no MAC learning ------------------------------------------------------------------
def measure_no_learning(net: LabNetwork, work: Path) -> dict:
    ctl = net.control
    pin = ctl.applied()["pinning"]["esx1"][_vnic("strict")]
    others = ["open", "m1", "quiet1"]
    caps = {vm: ctl.capture(work / f"unknown-{vm}.pcap", port=_vnic(vm)) for vm in others}
    caps["uplink"] = ctl.capture(work / "unknown-uplink.pcap", uplink=("esx1", pin), direction="tx")
    send_frames(net, "strict", vm_mac(net, "strict"), UNKNOWN_MAC, "unknown")
    # All N out of the uplink: the same flood decision would have put copies
    # on the other VMs' ports by then.
    settle.wait_frames(caps["uplink"].pcap, N_FRAMES, tagged("unknown"))
    quiesce([c.pcap for c in caps.values()])
    counts = {k: count_frames(c.stop(), tagged("unknown")) for k, c in caps.items()}
    fdb = net.ovs["esx1"].appctl("fdb/show", "vSwitch0").splitlines()[1:]
    learn_actions = "learn(" in net.ovs["esx1"].ofctl("dump-flows", "vSwitch0")
    ok = (
        counts["uplink"] == N_FRAMES
        and all(counts[vm] == 0 for vm in others)
        and not fdb
        and not learn_actions
    )
    return {
        "sent": N_FRAMES,
        "left_by_pinned_uplink": counts["uplink"],
        "pinned_uplink": pin,
        "received_by_other_vms": {vm: counts[vm] for vm in others},
        "vswitch_mac_table_entries": len(fdb),
        "learn_actions_in_flows": learn_actions,
        "verdict": ok,
    }


# -- 2. MAC address changes -----------------------------------------------------------------
def _set_mac(net, vm, mac):
    net.node(vm).cmd(f"ip link set eth0 address {mac}")
    _wait_guest(net, vm, lambda g: g["effective_mac"] == mac.lower())


def measure_mac_change(net: LabNetwork, work: Path, vm: str) -> dict:
    """The guest loads a new MAC; ext sends frames to the new and the old MAC."""
    ctl, configured = net.control, vm_mac(net, vm)
    policy = "reject" if vm == "strict" else "accept"
    _set_mac(net, vm, NEW_MAC)
    try:
        cap = ctl.capture(work / f"macchange-{vm}.pcap", port=_vnic(vm))
        send_frames(net, "ext", _ext_mac(net), NEW_MAC, f"new-{vm}")
        send_frames(net, "ext", _ext_mac(net), configured, f"old-{vm}")
        if policy == "accept":
            settle.wait_frames(cap.pcap, N_FRAMES, tagged(f"new-{vm}"))
        quiesce([cap.pcap])
        pcap = cap.stop()
        to_new = count_frames(pcap, tagged(f"new-{vm}"))
        to_old = count_frames(pcap, tagged(f"old-{vm}"))
    finally:
        _set_mac(net, vm, configured)
    # Changed back: delivery resumes.
    cap = ctl.capture(work / f"macrestored-{vm}.pcap", port=_vnic(vm))
    send_frames(net, "ext", _ext_mac(net), configured, f"back-{vm}")
    settle.wait_frames(cap.pcap, N_FRAMES, tagged(f"back-{vm}"))
    quiesce([cap.pcap])
    restored = count_frames(cap.stop(), tagged(f"back-{vm}"))
    expect_new = 0 if policy == "reject" else N_FRAMES
    ok = to_new == expect_new and to_old == 0 and restored == N_FRAMES
    return {
        "policy": policy,
        "sent_each": N_FRAMES,
        "delivered_to_new_mac": to_new,
        "delivered_to_configured_mac_while_changed": to_old,
        "delivered_after_change_back": restored,
        "verdict": ok,
    }


# -- 3. forged transmits ----------------------------------------------------------------------
def measure_forged(net: LabNetwork, work: Path, vm: str) -> dict:
    ctl = net.control
    policy = "reject" if vm == "strict" else "accept"
    cap = ctl.tcpdump("ext", "eth0", work / f"forged-{vm}.pcap")
    send_frames(net, vm, FORGED_MAC, _ext_mac(net), f"forged-{vm}")
    send_frames(net, vm, vm_mac(net, vm), _ext_mac(net), f"genuine-{vm}")
    # The genuine frames follow the forged ones on the same path: once they
    # are all at ext, any forged frame let through would be there too.
    settle.wait_frames(cap.pcap, N_FRAMES, tagged(f"genuine-{vm}"))
    quiesce([cap.pcap])
    pcap = cap.stop()
    forged = count_frames(pcap, tagged(f"forged-{vm}"))
    genuine = count_frames(pcap, tagged(f"genuine-{vm}"))
    expect = 0 if policy == "reject" else N_FRAMES
    return {
        "policy": policy,
        "sent_each": N_FRAMES,
        "forged_received_outside": forged,
        "genuine_received_outside": genuine,
        "verdict": forged == expect and genuine == N_FRAMES,
    }


# -- 4. multicast by vNIC filter -------------------------------------------------------------
GROUP, OVERLAP, GROUP_MAC = "239.1.1.1", "239.129.1.1", "01:00:5e:01:01:01"


def measure_multicast_filter(net: LabNetwork, work: Path) -> dict:
    """m1 joins 239.1.1.1, m2 joins 239.129.1.1 (same MAC), m3 joins nothing;
    a VM on the same host sends to 239.1.1.1."""
    ctl = net.control
    recv = {
        "m1": guest_tool(
            net,
            "m1",
            "udp",
            "recv",
            "--bind",
            _ip(net, "m1"),
            "--group",
            GROUP,
            "--port",
            5000,
            "--out",
            work / "mc-m1.txt",
            wait=False,
        ),
        "m2": guest_tool(
            net,
            "m2",
            "udp",
            "recv",
            "--bind",
            _ip(net, "m2"),
            "--group",
            OVERLAP,
            "--port",
            5000,
            "--out",
            work / "mc-m2.txt",
            wait=False,
        ),
    }
    try:
        for vm, proc in recv.items():
            wait_ready_line(proc, f"receiver on {vm}")
            _wait_guest(net, vm, lambda g: GROUP_MAC in (g["mcast"] or []))
        caps = {
            vm: ctl.capture(work / f"mc-{vm}.pcap", port=_vnic(vm), bpf="udp port 5000")
            for vm in ("m1", "m2", "m3")
        }
        udp_send(net, "open", _ip(net, "open"), GROUP, 5000, 200, N_FRAMES, wait=True)
        for vm in ("m1", "m2"):
            settle.wait_frames(caps[vm].pcap, N_FRAMES)
        quiesce([c.pcap for c in caps.values()])
        at_vnic = {vm: count_frames(c.stop()) for vm, c in caps.items()}
        # m1's application has read what its vNIC got before it is stopped
        # (bounded: datagrams it never gets show in the count).
        try:
            wait_for(lambda: len(_arrivals(work / "mc-m1.txt")) >= at_vnic["m1"], 5, "m1 reading the group")
        except TimeoutError:
            pass
    finally:
        for proc in recv.values():
            stop_tool(proc)
    at_app = {vm: len(_arrivals(work / f"mc-{vm}.txt")) for vm in recv}
    ok = at_vnic == {"m1": N_FRAMES, "m2": N_FRAMES, "m3": 0} and at_app == {"m1": N_FRAMES, "m2": 0}
    return {
        "group": GROUP,
        "group_mac": GROUP_MAC,
        "overlap_group": OVERLAP,
        "sent": N_FRAMES,
        "joined": {"m1": GROUP, "m2": OVERLAP, "m3": None},
        "delivered_to_vnic": at_vnic,
        "received_by_application": at_app,
        "verdict": ok,
    }


# -- 5. promiscuous guest = monitor port -------------------------------------------------------
def measure_promiscuous(net: LabNetwork, work: Path) -> dict:
    """strict -> ext traffic, seen at spy's vNIC before and after the spy's
    guest turns promiscuous mode on (PG-Open accepts it)."""
    ctl, seen = net.control, {}
    for phase, flag in (("guest_not_promiscuous", "off"), ("guest_promiscuous", "on")):
        net.node("spy").cmd(f"ip link set eth0 promisc {flag}")
        _wait_guest(net, "spy", lambda g: g["promiscuous"] == (flag == "on"))
        cap = ctl.capture(work / f"promisc-{phase}.pcap", port=_vnic("spy"))
        send_frames(net, "strict", vm_mac(net, "strict"), _ext_mac(net), f"spy-{phase}")
        if flag == "on":
            settle.wait_frames(cap.pcap, N_FRAMES, tagged(f"spy-{phase}"))
        quiesce([cap.pcap])
        seen[phase] = count_frames(cap.stop(), tagged(f"spy-{phase}"))
    net.node("spy").cmd("ip link set eth0 promisc off")
    mirrors = net.ovs["esx1"].vsctl("--columns=name", "list", "mirror").strip()
    ok = seen["guest_not_promiscuous"] == 0 and seen["guest_promiscuous"] == N_FRAMES and not mirrors
    return {"sent": N_FRAMES, "seen_by_spy": seen, "mirror_sessions_on_vswitch": bool(mirrors), "verdict": ok}


# -- NIC teaming: failover, failback and notify switches ----------------------------------------
def _is_rarp_from(mac: str):
    from scapy.layers.l2 import Ether

    return lambda p: (
        Ether in p
        and p[Ether].src.lower() == mac
        and (p[Ether].type == 0x8035 or bytes(p)[16:18] == b"\x80\x35")
    )


def _mac_port(net: LabNetwork, mac: str):
    return next((r["port"] for r in net.mac_table("pswitch1") if r["mac"] == mac), None)


def measure_failover(net: LabNetwork, work: Path) -> dict:
    """Pull the cable of each esx1 uplink in turn and plug it back: the ports
    pinned to it move to the other uplink (failback returns them); ports whose
    port group notifies switches announce their MAC with RARP, and the
    physical switch's MAC table follows; PG-Quiet's VM sends nothing."""
    ctl, out = net.control, {}
    pins = ctl.applied()["pinning"]["esx1"]
    for vm in ("quiet1", "quiet2"):
        mac, uplink = vm_mac(net, vm), pins[_vnic(vm)]
        net.node(vm).cmd(f"ping -c1 -W1 {_ip(net, 'ext')} >/dev/null")  # switch learns it
        cap = ctl.tcpdump("ext", "eth0", work / f"failover-{vm}.pcap")
        before = _mac_port(net, mac)
        t_down = time.time()
        ctl.uplink("esx1", uplink, up=False)
        moved = wait_for(
            lambda: (lambda p: p if p != uplink else None)(
                ctl.applied().get("pinning", {}).get("esx1", {}).get(_vnic(vm))
            ),
            10,
            f"{vm} failing over from {uplink}",
        )
        t_failover = time.time()
        notify = vm == "quiet1"
        if notify:
            # The controller sends the RARP after it records the new pinning:
            # wait until it has reached ext and the switch has learned from it
            # (bounded: a RARP that never comes shows in the counts).
            settle.wait_frames(cap.pcap, 1, _is_rarp_from(mac), timeout=5)
            try:
                wait_for(lambda: _mac_port(net, mac) not in (None, before), 5, f"{mac} moving port")
            except TimeoutError:
                pass
        after_failover = _mac_port(net, mac)
        ctl.uplink("esx1", uplink, up=True)
        wait_for(
            lambda: ctl.applied()["pinning"]["esx1"][_vnic(vm)] == uplink,
            10,
            f"{vm} failing back to {uplink}",
        )
        if notify:
            settle.wait_frames(cap.pcap, 2, _is_rarp_from(mac), timeout=5)
        quiesce([cap.pcap])
        rarps = count_frames(cap.stop(), _is_rarp_from(mac))
        events = [
            e for e in ctl.events() if e["event"] == "rarp" and e["port"] == _vnic(vm) and e["t"] >= t_down
        ]
        out[vm] = {
            "notify_switches": notify,
            "uplink": uplink,
            "failed_over_to": moved,
            "detect_and_repin_s": round(t_failover - t_down, 3),
            "switch_port_before": before,
            "switch_port_after_failover": after_failover,
            "rarps_seen_outside": rarps,
            "rarp_reasons": [e["reason"] for e in events],
        }
    q1, q2 = out["quiet1"], out["quiet2"]
    out["verdict"] = (
        q1["rarps_seen_outside"] == 2
        and q1["rarp_reasons"] == ["failover", "failback"]
        and q1["switch_port_after_failover"] != q1["switch_port_before"]
        and q2["rarps_seen_outside"] == 0
        and q2["rarp_reasons"] == []
        and q1["failed_over_to"] != q1["uplink"]
    )
    return out


# -- vMotion keeps MAC, IP and TCP sessions --------------------------------------------------
def measure_vmotion_tcp(net: LabNetwork, work: Path, seconds: float = 4.0, stun_s: float = 0.1) -> dict:
    """A TCP transfer from ext to m3 runs while m3 vMotions to esx2 and back."""
    ctl = net.control
    vm_ip, port = _ip(net, "m3"), 5201
    server = net.node("m3").popen(
        ["iperf3", "-s", "-1", "-B", vm_ip, "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: "LISTEN" in net.node("m3").cmd(f"ss -Hltn 'sport = :{port}'"), 10, "iperf3 on m3")
        client = net.node("ext").popen(
            ["iperf3", "-c", vm_ip, "-p", str(port), "-t", str(seconds), "-J"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(seconds / 4)  # the transfer is under way (schedule, not polling)
        there = ctl.vmotion("m3", "esx2", stun_s=stun_s)
        time.sleep(seconds / 4)
        back = ctl.vmotion("m3", "esx1", stun_s=stun_s)
        out, _ = client.communicate(timeout=seconds + 30)
    finally:
        if server.poll() is None:
            server.terminate()
        server.wait(timeout=10)
    data = json.loads(out)
    error = data.get("error")
    received = 0 if error else data["end"]["sum_received"]["bytes"]
    intervals = [] if error else [round(i["sum"]["bits_per_second"] / 1e6, 3) for i in data["intervals"]]
    return {
        "seconds": seconds,
        "stun_s": stun_s,
        "moves": [there["to"], back["to"]],
        "error": error,
        "bytes_received": received,
        "mbps_per_second": intervals,
        "same_mac_after": net.node("m3").cmd("cat /sys/class/net/eth0/address").strip(),
        "verdict": error is None and received > 0,
    }


# -- 6. vMotion of quiet VMs ---------------------------------------------------------------------
def _received(path: Path) -> list[tuple[float, int]]:
    """(arrival time, sequence number) of every packet a ``udp recv`` wrote
    (complete lines only: it may be running)."""
    if not path.exists():
        return []
    lines = (line.split() for line in path.read_text().splitlines())
    return [(float(f[0]), int(f[1])) for f in lines if len(f) == 2]


def _arrivals(path: Path) -> list[float]:
    """Arrival times a ``udp recv`` wrote."""
    return [t for t, _ in _received(path)]


def _lost_s(path: Path, pps: float) -> float:
    """Packets missing between the first and the last one a ``udp recv``
    wrote, in packet intervals. The sender numbers its packets and paces them
    against its start, so this counts what was lost, whenever a loaded
    machine let the receiver read it; summed arrival gaps grow with every
    stall of the sender or the receiver."""
    seqs = {seq for _, seq in _received(path)}
    return round((max(seqs) - min(seqs) + 1 - len(seqs)) / pps, 3) if seqs else 0.0


def _outage(arrivals: list[float], since: float, pps: float) -> float:
    """Time without delivery after ``since``: the sum of every gap longer than
    two packet intervals, less one interval each (a stray packet in the middle
    of an outage does not halve it). ``inf`` when nothing arrived after ``since``."""
    times = [since] + sorted(t for t in arrivals if t >= since)
    if len(times) == 1:
        return float("inf")
    interval = 1.0 / pps
    return sum(g - interval for g in (b - a for a, b in zip(times, times[1:])) if g > 2 * interval)


def measure_quiet_vmotion(
    net: LabNetwork, work: Path, pps: float = 50, after_s: float = 2.0, stun_s: float = 0.1
) -> dict:
    """quiet1 (notify yes) and quiet2 (notify no) only receive a UDP stream
    from ext; both vMotion to esx2. Delivered packets over time tell how long
    the physical switch kept sending to the old host."""
    ctl = net.control
    aging = net.lab.physical_switches[0].mac_aging
    vms = {"quiet1": 6001, "quiet2": 6002}
    ext = net.node("ext")
    for vm in vms:
        # ext knows the VMs' MACs statically, so it never ARPs (a reply would
        # teach the switch); each VM speaks once, so the switch learns it on esx1.
        ext.cmd(f"ip neigh replace {_ip(net, vm)} lladdr {vm_mac(net, vm)} nud permanent dev eth0")
        net.node(vm).cmd(f"ping -c1 -W1 {_ip(net, 'ext')} >/dev/null")
    duration = after_s + aging * 2 + 4
    count = int(duration * pps)
    recv = {
        vm: guest_tool(
            net,
            vm,
            "udp",
            "recv",
            "--bind",
            _ip(net, vm),
            "--port",
            port,
            "--out",
            work / f"quiet-{vm}.txt",
            wait=False,
        )
        for vm, port in vms.items()
    }
    senders, moves = [], {}
    try:
        for vm, proc in recv.items():
            wait_ready_line(proc, f"receiver on {vm}")
        t0 = time.time()
        senders = [
            udp_send(net, "ext", _ip(net, "ext"), _ip(net, vm), port, pps, count) for vm, port in vms.items()
        ]
        time.sleep(after_s)  # traffic flows normally before the move
        for vm in vms:
            # The VM speaks once right before its move, so the switch's
            # entry for it is fresh: without the RARP it stays stale for
            # the whole aging time, however long the set-up took.
            net.node(vm).cmd(f"ping -c1 -W1 {_ip(net, 'ext')} >/dev/null")
            moves[vm] = ctl.vmotion(vm, "esx2", stun_s=stun_s)
        for s in senders:
            s.wait(timeout=duration + 30)
        time.sleep(0.2)
    finally:
        for s in senders:
            stop_tool(s)
        for proc in recv.values():
            stop_tool(proc)
    out = {"pps": pps, "stun_s": stun_s, "mac_aging_s": aging, "t0": t0, "series": {}}
    for vm in vms:
        arrivals = _arrivals(work / f"quiet-{vm}.txt")
        out["series"][vm] = {
            "notify_switches": vm == "quiet1",
            "arrivals_rel": [round(t - t0, 4) for t in arrivals],
            "vmotion_rel": round(moves[vm]["stun_start"] - t0, 4),
            "resumed_rel": round(moves[vm]["resumed"] - t0, 4),
            "outage_s": round(_outage(arrivals, moves[vm]["stun_start"], pps), 3),
            "sent": count,
            "delivered": len(arrivals),
        }
        out["series"][vm]["outage_minus_stun_s"] = round(out["series"][vm]["outage_s"] - stun_s, 3)
        # The verdict's measure: the packets the VM never got, in packet
        # intervals. Unlike summed arrival gaps it does not grow when a
        # loaded machine delays the sender or the receiver: a late packet
        # still arrives, only a misdelivered one is lost.
        out["series"][vm]["lost_s"] = round((count - len(arrivals)) / pps, 3)
    rarps = [
        e
        for e in ctl.events()
        if e["event"] == "rarp"
        and e.get("reason") == "vmotion"
        and e["t"] >= t0
        and e["port"] in {_vnic(vm) for vm in vms}
    ]
    out["rarp_sent_for"] = sorted({e["port"] for e in rarps})
    q1, q2 = out["series"]["quiet1"], out["series"]["quiet2"]
    # The seed: without notify switches the physical switch keeps sending to
    # the old host until its MAC entry ages out ("for minutes" with real
    # aging; here mac_aging s), with it the switch learns at once. So: with
    # notify, less than a tenth of the aging time lost (the stun plus the
    # RARP's trip); without, at least half of it.
    out["verdict"] = (
        q1["lost_s"] < 0.1 * aging
        and q2["lost_s"] >= aging * 0.5
        and out["rarp_sent_for"] == [_vnic("quiet1")]
    )
    return out


# -- 7. multicast after vMotion --------------------------------------------------------------------
def _uplink_ports(net: LabNetwork, host: str) -> set[str]:
    return {
        naming.fabric_port(u.switch, u.port) for h in net.lab.esxi_hosts if h.name == host for u in h.uplinks
    }


# Bound on the time from the guest's IGMP report leaving its vNIC to the
# physical switch forwarding the group to the new port: two userspace OVS
# hops (the ESXi host's and the fabric's, whose snooping runs in its handler
# threads). 25 packet intervals, and more than a scheduling delay with one
# CPU busy, yet a sixth of the least a stale membership costs
# (igmp_aging/2 >= 7.5 s): the claim is which event ends the outage.
REPORT_TO_SWITCH_S = 0.5


def measure_multicast_vmotion(
    net: LabNetwork, work: Path, max_responses=(1.0, 3.0), pps: float = 50, stun_s: float = 0.1
) -> dict:
    """mv receives 239.2.2.2 from ext through the IGMP-snooping switch and
    vMotions back and forth: once without the spoofed query, then with it
    for each max response time. Before each move the guest joins afresh and
    the switch must list the group on the VM's current host only (stale
    memberships aged out), so no leftover entry masks an outage."""
    ctl = net.control
    group, port = "239.2.2.2", 5002
    switch = net.lab.physical_switches[0]
    # IGMPv2 in the guest (ESXi's query is v2 anyway, which puts a v3 guest in
    # v2 mode): its pending unsolicited report is then a per-group timer the
    # experiment can see in /proc/net/igmp, and it repeats after <= 1 s.
    net.node("mv").cmd(
        "sysctl -qw net.ipv4.conf.eth0.force_igmp_version=2 "
        "net.ipv4.conf.eth0.igmpv2_unsolicited_report_interval=1000"
    )
    cases = [(False, None)] + [(True, m) for m in max_responses]
    guest_cap = ctl.tcpdump("mv", "eth0", work / "mcv-guest-igmp.pcap", bpf="igmp")
    sender = udp_send(net, "ext", _ip(net, "ext"), group, port, pps, int(pps * 3600))
    results, here, left_at = [], "esx1", {}
    try:
        for i, (query, max_resp) in enumerate(cases):
            dest = "esx2" if here == "esx1" else "esx1"
            # The membership the VM left on the destination's ports when it was
            # last there must have aged out (the switch may forward by it for
            # a while after mdb/show stops listing it), so wait out the
            # configured aging since the VM left, plus a margin.
            time.sleep(max(0.0, left_at.get(dest, 0.0) + switch.igmp_aging + 3 - time.time()))
            out = work / f"mcv-mv-{i}.txt"
            recv = guest_tool(
                net,
                "mv",
                "udp",
                "recv",
                "--bind",
                _ip(net, "mv"),
                "--group",
                group,
                "--port",
                port,
                "--out",
                out,
                wait=False,
            )
            try:
                wait_ready_line(recv, "receiver on mv")
                mine = _uplink_ports(net, here)

                def ports():
                    return {r["port"] for r in net.snooped_groups(switch.name) if r["group"] == group}

                wait_for(
                    lambda: ports() and ports() <= mine,
                    switch.igmp_aging + 15,
                    f"{switch.name} listing {group} only on {here}'s ports",
                )
                # The guest has sent all its unsolicited reports for the join,
                # so a report after the move can only come from the query.
                wait_for(
                    lambda: not _igmp_report_pending(net, "mv", group), 15, "mv's unsolicited IGMP reports"
                )
                # Delivery is flowing before the move.
                wait_for(lambda: len(_arrivals(out)) >= 5, 10, f"{group} reaching mv")
                first = len(_arrivals(out))
                move = ctl.vmotion(
                    "mv", dest, stun_s=stun_s, igmp_query=query, max_response_s=max_resp or 10.0
                )
                left_at[here], here = move["stun_start"], dest
                # Until a second of stream has arrived after the move (or the
                # switch had ample time to forget the group): an outage that
                # never ends shows up as such in the result.
                deadline = time.time() + switch.igmp_aging + 10
                while time.time() < deadline and sum(t > move["resumed"] for t in _arrivals(out)) < pps:
                    time.sleep(0.1)
            finally:
                stop_tool(recv)
            arrivals = _arrivals(out)
            results.append(
                {
                    "igmp_query": query,
                    "max_response_s": max_resp,
                    "to": dest,
                    "stun_start": move["stun_start"],
                    "packets_before": first,
                    "outage_s": round(_outage(arrivals, move["stun_start"], pps), 3),
                    "lost_s": _lost_s(out, pps),
                    "arrivals_rel": [
                        round(t - move["stun_start"], 4) for t in arrivals if t >= move["stun_start"] - 2
                    ],
                }
            )
    finally:
        stop_tool(sender)
        guest_cap.stop()
    queries = [q for q in map(_igmp_query, read_pcap(work / "mcv-guest-igmp.pcap")) if q]
    reports = [q for q in map(_igmp_report, read_pcap(work / "mcv-guest-igmp.pcap")) if q]
    for r in results:
        t = r.pop("stun_start")
        q = next((q for q in queries if t <= q["t"] <= t + 5), None)
        r["query_seen_by_guest"] = q and {k: v for k, v in q.items() if k != "t"}
        rep = next((x for x in reports if q and x["t"] >= q["t"]), None)
        r["report_after_query_s"] = round(rep["t"] - q["t"], 3) if q and rep else None
        r["report_after_stun_s"] = round(rep["t"] - t, 3) if q and rep else None
    no_query = results[0]["lost_s"]
    with_query = results[1:]
    # Without the query the stale membership must age out: at least half the
    # aging time lost. With it, the outage ends when the guest's report (sent
    # after a random delay up to the max response time) reaches the switch:
    # no more is lost than was sent until the report left the guest, plus
    # REPORT_TO_SWITCH_S for its way into the switch's table. The guest's
    # delay is drawn from [0, max response] (RFC 2236); measured between two
    # frames of its own capture, it may exceed the maximum by the kernel's
    # timer granularity (a few ms): 50 ms allowed.
    ok = no_query >= switch.igmp_aging * 0.5 and all(
        r["query_seen_by_guest"]
        and r["report_after_query_s"] is not None
        and r["report_after_query_s"] <= r["max_response_s"] + 0.05
        and r["lost_s"] <= r["report_after_stun_s"] + REPORT_TO_SWITCH_S
        for r in with_query
    )
    return {
        "group": group,
        "pps": pps,
        "igmp_aging_s": switch.igmp_aging,
        "stun_s": stun_s,
        "moves": results,
        "verdict": ok,
    }


def _igmp_report_pending(net: LabNetwork, vm: str, group: str) -> bool:
    """Is the guest kernel's report timer for ``group`` running (/proc/net/igmp)?"""
    want = "".join(f"{int(x):02X}" for x in reversed(group.split(".")))
    for line in net.node(vm).cmd("cat /proc/net/igmp").splitlines():
        fields = line.split()
        if fields and fields[0] == want:
            return not fields[2].startswith("0:")
    return False


def _igmp_report(pkt):
    from scapy.contrib.igmp import IGMP

    if IGMP in pkt and pkt[IGMP].type in (0x12, 0x16, 0x22):
        return {"t": float(pkt.time)}
    return None


def _igmp_query(pkt):
    from scapy.contrib.igmp import IGMP
    from scapy.layers.inet import IP

    if IGMP in pkt and pkt[IGMP].type == 0x11:
        return {
            "t": float(pkt.time),
            "source_ip": pkt[IP].src,
            "dst": pkt[IP].dst,
            "max_response_s": pkt[IGMP].mrcode / 10.0,
        }
    return None


# -- run and plot -------------------------------------------------------------------------------
def run(params: dict | None = None, lab_file: Path = LAB) -> dict:
    p = {**DEFAULTS, **(params or {})}
    t_start = time.monotonic()
    work = RESULTS / NAME / "pcaps"
    work.mkdir(parents=True, exist_ok=True)
    cpu, phase = CpuMeter(), Progress(NAME)
    with lab_session(lab_file) as net:
        cpu.start()
        phase("unknown unicast, MAC changes, forged transmits, multicast, promiscuous, failover")
        claims = {
            "no_learning_unknown_unicast_not_flooded": measure_no_learning(net, work),
            "mac_change_reject_drops": measure_mac_change(net, work, "strict"),
            "mac_change_accept_delivers": measure_mac_change(net, work, "open"),
            "forged_transmit_reject_drops": measure_forged(net, work, "strict"),
            "forged_transmit_accept_delivers": measure_forged(net, work, "open"),
            "multicast_only_to_subscribers_with_32_to_1_overlap": measure_multicast_filter(net, work),
            "promiscuous_guest_is_monitor_port": measure_promiscuous(net, work),
            "failover_failback_notify_switches": measure_failover(net, work),
        }
        # Frames are counted everywhere except in the TCP transfer, which
        # fills a link on purpose: its shaping drops are left out.
        before_tcp = sum(shaping_drops(net).values())
        phase("TCP transfer across two vMotions")
        claims["vmotion_keeps_tcp_sessions"] = measure_vmotion_tcp(net, work)
        after_tcp = sum(shaping_drops(net).values())
        phase("quiet VMs vMotion, notify switches yes/no (waits out MAC aging)")
        claims["quiet_vm_vmotion_notify_switches"] = measure_quiet_vmotion(
            net, work, p["quiet_pps"], p["quiet_after_s"], p["stun_s"]
        )
        phase("multicast across vMotions, with and without the spoofed IGMP query")
        claims["multicast_after_vmotion_spoofed_igmp_query"] = measure_multicast_vmotion(
            net, work, tuple(p["max_response_s"]), p["mcast_pps"], p["stun_s"]
        )
        counted_drops = before_tcp + sum(shaping_drops(net).values()) - after_tcp
        env = environment(net)
        cpu.stop()
    fidelity = {
        "cpu_percent": cpu.percent,
        "shaping_drops": {
            "while_counting_frames": counted_drops,
            "during_tcp_transfer": after_tcp - before_tcp,
        },
        "checks": checks(cpu.percent, {"while counting frames": counted_drops}, frames_counted=True),
    }
    result = {
        "experiment": NAME,
        "seed": "001_d0eaf9e6ebb9b045.txt",
        "lab": str(lab_file.name),
        "params": p,
        "environment": env,
        "claims": claims,
        "fidelity": fidelity,
        "verdicts": verdicts_of(claims),
        "wall_s": round(time.monotonic() - t_start, 1),
    }
    return result


def plot(result: dict, outdir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir.mkdir(parents=True, exist_ok=True)
    palette = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))

    quiet = result["claims"]["quiet_vm_vmotion_notify_switches"]
    ax = axes[0]
    bin_s = 0.5
    for i, (vm, s) in enumerate(quiet["series"].items()):
        arr = s["arrivals_rel"]
        if not arr:
            continue
        # Whole bins only: the last, partial bin would look like an outage.
        nbins = int(max(arr) / bin_s)
        counts = [0] * (nbins + 1)
        for t in arr:
            counts[int(t / bin_s)] += 1
        counts = counts[:nbins]
        label = (
            f"{vm}: notify switches {'yes' if s['notify_switches'] else 'no'} (outage {s['outage_s']:.2f} s)"
        )
        ax.step(
            [k * bin_s for k in range(nbins)],
            [c / bin_s for c in counts],
            where="post",
            color=palette[i],
            label=label,
        )
        ax.axvline(s["vmotion_rel"], color=palette[i], linestyle=":", linewidth=1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("packets delivered to the VM (pkt/s)")
    ax.set_title(f"Quiet VM vMotion (MAC aging {quiet['mac_aging_s']} s)")
    ax.legend(fontsize=8, loc="lower right")

    mc = result["claims"]["multicast_after_vmotion_spoofed_igmp_query"]
    ax = axes[1]
    for i, m in enumerate(mc["moves"]):
        arr = [t for t in m["arrivals_rel"] if -2 <= t <= 20]
        label = "no query" if not m["igmp_query"] else f"query, max resp {m['max_response_s']:g} s"
        ax.plot(
            arr,
            range(len(arr)),
            color=palette[i % len(palette)],
            label=f"{label} (outage {m['outage_s']:.2f} s)",
        )
    ax.axvline(0, color="black", linestyle=":", linewidth=1)
    ax.set_xlabel("time since the vMotion began (s)")
    ax.set_ylabel("multicast packets delivered (cumulative)")
    ax.set_title(f"Multicast across vMotion (IGMP aging {mc['igmp_aging_s']} s)")
    ax.legend(fontsize=8, loc="lower right")

    ax = axes[2]
    queried = [m for m in mc["moves"] if m["igmp_query"]]
    xs = [m["max_response_s"] for m in queried]
    ax.scatter(
        xs,
        [m["outage_s"] for m in queried],
        color=palette[2],
        zorder=3,
        label="outage with the spoofed query",
    )
    ax.scatter(
        xs,
        [m["report_after_query_s"] or 0 for m in queried],
        color=palette[3],
        marker="x",
        zorder=3,
        label="guest's report after the query",
    )
    top = max(xs + [1.0])
    ax.plot([0, top], [0, top], color="black", linestyle=":", linewidth=1, label="max response time")
    no_query = [m["outage_s"] for m in mc["moves"] if not m["igmp_query"]]
    if no_query:
        ax.axhline(
            no_query[0], color=palette[1], linestyle="--", label=f"without the query ({no_query[0]:.1f} s)"
        )
    ax.set_xlabel("query max response time (s)")
    ax.set_ylabel("seconds after vMotion")
    ax.set_title("Multicast outage vs spoofed IGMP query")
    ax.legend(fontsize=8)
    return save_figure(fig, outdir, NAME)


# Key numbers for `vlab run --repeat N` (mean and 95% CI).
METRICS = {
    "quiet VM packets lost, notify (s)": lambda r: r["claims"]["quiet_vm_vmotion_notify_switches"]["series"][
        "quiet1"
    ]["lost_s"],
    "quiet VM packets lost, no notify (s)": lambda r: r["claims"]["quiet_vm_vmotion_notify_switches"][
        "series"
    ]["quiet2"]["lost_s"],
    "multicast packets lost, no query (s)": lambda r: _c(r, "multicast_after_vmotion_spoofed_igmp_query")[
        "moves"
    ][0]["lost_s"],
    "failover re-pin (ms)": lambda r: (
        1000 * r["claims"]["failover_failback_notify_switches"]["quiet1"]["detect_and_repin_s"]
    ),
}


# One-line measured values for results/REPORT.md (experiments.report).
def _c(r, key):
    return r["claims"][key]


MEASURED = {
    "no_learning_unknown_unicast_not_flooded": lambda r: (
        "{left_by_pinned_uplink}/{sent} out of the pinned uplink, {others} at other VMs, "
        "{vswitch_mac_table_entries} MAC-table entries".format(
            others=sum(_c(r, "no_learning_unknown_unicast_not_flooded")["received_by_other_vms"].values()),
            **_c(r, "no_learning_unknown_unicast_not_flooded"),
        )
    ),
    "mac_change_reject_drops": lambda r: (
        "{delivered_to_new_mac}/{sent_each} to the new MAC, "
        "{delivered_to_configured_mac_while_changed}/{sent_each} to the old one, "
        "{delivered_after_change_back}/{sent_each} after changing back".format(
            **_c(r, "mac_change_reject_drops")
        )
    ),
    "mac_change_accept_delivers": lambda r: "{delivered_to_new_mac}/{sent_each} to the new MAC".format(
        **_c(r, "mac_change_accept_delivers")
    ),
    "forged_transmit_reject_drops": lambda r: (
        "{forged_received_outside}/{sent_each} forged frames seen outside".format(
            **_c(r, "forged_transmit_reject_drops")
        )
    ),
    "forged_transmit_accept_delivers": lambda r: (
        "{forged_received_outside}/{sent_each} forged frames seen outside".format(
            **_c(r, "forged_transmit_accept_delivers")
        )
    ),
    "multicast_only_to_subscribers_with_32_to_1_overlap": lambda r: (
        "at the vNIC: joined {m1}, overlap {m2}, none {m3} (of {n}); overlap VM's application {app}".format(
            n=_c(r, "multicast_only_to_subscribers_with_32_to_1_overlap")["sent"],
            app=_c(r, "multicast_only_to_subscribers_with_32_to_1_overlap")["received_by_application"]["m2"],
            **_c(r, "multicast_only_to_subscribers_with_32_to_1_overlap")["delivered_to_vnic"],
        )
    ),
    "promiscuous_guest_is_monitor_port": lambda r: (
        "spy saw {guest_not_promiscuous} before, {guest_promiscuous} after the guest's promisc on".format(
            **_c(r, "promiscuous_guest_is_monitor_port")["seen_by_spy"]
        )
    ),
    "failover_failback_notify_switches": lambda r: (
        "re-pinned in {t:.0f} ms; RARPs {a} (notify yes) vs {b} (no)".format(
            t=1000 * _c(r, "failover_failback_notify_switches")["quiet1"]["detect_and_repin_s"],
            a=_c(r, "failover_failback_notify_switches")["quiet1"]["rarps_seen_outside"],
            b=_c(r, "failover_failback_notify_switches")["quiet2"]["rarps_seen_outside"],
        )
    ),
    "vmotion_keeps_tcp_sessions": lambda r: "{:.1f} MB through two vMotions, no error".format(
        _c(r, "vmotion_keeps_tcp_sessions")["bytes_received"] / 1e6
    ),
    "quiet_vm_vmotion_notify_switches": lambda r: (
        "packets lost {a:.2f} s with notify, {b:.1f} s without (MAC aging {m} s); "
        "time without delivery {c:.2f} s / {d:.1f} s".format(
            a=_c(r, "quiet_vm_vmotion_notify_switches")["series"]["quiet1"]["lost_s"],
            b=_c(r, "quiet_vm_vmotion_notify_switches")["series"]["quiet2"]["lost_s"],
            c=_c(r, "quiet_vm_vmotion_notify_switches")["series"]["quiet1"]["outage_s"],
            d=_c(r, "quiet_vm_vmotion_notify_switches")["series"]["quiet2"]["outage_s"],
            m=_c(r, "quiet_vm_vmotion_notify_switches")["mac_aging_s"],
        )
    ),
    "multicast_after_vmotion_spoofed_igmp_query": lambda r: (
        "packets lost {none:.1f} s without the query; with it ".format(
            none=_c(r, "multicast_after_vmotion_spoofed_igmp_query")["moves"][0]["lost_s"]
        )
        + ", ".join(
            f"{m['lost_s']:.2f} s (report {m['report_after_stun_s']:.2f} s after the move, "
            f"max resp {m['max_response_s']:g} s)"
            for m in _c(r, "multicast_after_vmotion_spoofed_igmp_query")["moves"][1:]
        )
        + "; query source 0.0.0.0"
    ),
}

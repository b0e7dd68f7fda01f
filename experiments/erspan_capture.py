"""Experiment ``erspan-capture``: seed 003's ERSPAN walk-through, measured.

Lab ``labs/erspan.yaml``: dvSwitch mirrors the jump box VM (both directions)
by an "Encapsulated Remote Mirroring (L3) Source" session, ERSPAN type II,
to the monitoring console 10.2.1.110 on another subnet. The jump box
fetches a page from the web VM on the same host, so the HTTP itself never
touches a physical wire. As in the seed, the monitor captures everything on
its interface, keeps what ``tshark`` decodes as GRE/ERSPAN, and follows the
TCP stream of the HTTP GET in the mirrored frames.

Measured (each a ``measure_*`` function the integration tests call too):

* ERSPAN: copies per session at the monitor, that each inner frame is
  byte for byte a frame the jump box sent or received (its own capture),
  that the copies left esx1 from vmk0's address and MAC on the management
  VLAN while no HTTP frame did, and the reassembled GET request line and
  response body;
* snap length: the GRE session of the web VM's sent frames, 128 bytes: every
  copy is the first 128 bytes of the frame web sent;
* local session: the sniffer VM on the same host receives exactly the jump
  box's frames; frames addressed to it, or sent by it, go nowhere (normal
  traffic disallowed);
* vMotion: after the jump box moves to esx2, esx2 mirrors it (outer source
  esx2's vmk0), and the local session stops (the sniffer is on esx1).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from experiments import settle
from experiments.common import (
    REPO,
    RESULTS,
    Progress,
    environment,
    guest_tool,
    lab_session,
    quiesce,
    read_pcap,
    save_figure,
    stop_tool,
    verdicts_of,
    wait_ready_line,
)
from experiments.fidelity import CpuMeter, shaping_drops
from experiments.fidelity import summary as fidelity_summary
from experiments.tools.web import page
from vlab import naming

if TYPE_CHECKING:
    from topologies.network import LabNetwork

NAME = "erspan-capture"
LAB = Path(__file__).resolve().parents[1] / "labs" / "erspan.yaml"
DEFAULTS = {"page_bytes": 20000, "frames": 20}
MONITOR, WEB_IP, URL_PATH = "10.2.1.110", "10.2.2.20", "/index.html"
ERSPAN_II, ERSPAN_III, TEB = 0x88BE, 0x22EB, 0x6558  # GRE protocol types


# -- decoding what the monitor received -------------------------------------------------
def decapsulate(frame: bytes) -> Optional[dict]:
    """One captured frame -> {kind, session, outer_src, outer_dst, vlan, inner}
    for GRE and ERSPAN types II and III, else None. ``session`` is the ERSPAN
    session ID or the GRE key; ``vlan`` the outer 802.1Q tag (None:
    untagged). ERSPAN copies also have ``version`` (1: type II, 2: type
    III) and ``header_vlan`` (the header's original-VLAN field); type III
    ``direction`` (its D bit: ``ingress`` = a frame the source sent,
    ``egress`` = one it received) and ``hwid``."""
    off, vlan = 14, None
    if int.from_bytes(frame[12:14], "big") == 0x8100:
        vlan, off = int.from_bytes(frame[14:16], "big") & 0xFFF, 18
    elif int.from_bytes(frame[12:14], "big") != 0x0800:
        return None
    ip = frame[off:]
    if len(ip) < 20 or ip[9] != 47:
        return None
    ip = ip[: int.from_bytes(ip[2:4], "big")]  # drop Ethernet padding
    gre = ip[(ip[0] & 0x0F) * 4 :]
    flags, proto = gre[0], int.from_bytes(gre[2:4], "big")
    key_at = 4 + 4 * bool(flags & 0x80)  # after the checksum word, if any
    hlen = key_at + 4 * bool(flags & 0x20) + 4 * bool(flags & 0x10)
    out = {
        "outer_src": ".".join(map(str, ip[12:16])),
        "outer_dst": ".".join(map(str, ip[16:20])),
        "outer_mac_src": frame[6:12].hex(":"),
        "vlan": vlan,
    }
    if proto in (ERSPAN_II, ERSPAN_III):
        header = gre[hlen:]
        out.update(
            kind="erspan",
            version=header[0] >> 4,
            header_vlan=int.from_bytes(header[0:2], "big") & 0x0FFF,
            session=((header[2] & 0x03) << 8) | header[3],
        )
        if proto == ERSPAN_II:
            out["inner"] = header[8:]
        else:
            # Type III: 12 bytes, then an 8-byte platform subheader if O is set.
            flags = int.from_bytes(header[10:12], "big")
            out.update(
                direction="egress" if flags & 0x0008 else "ingress",
                hwid=(flags >> 4) & 0x3F,
                inner=header[12 + 8 * (flags & 0x0001) :],
            )
    elif proto == TEB:
        key = int.from_bytes(gre[key_at : key_at + 4], "big") if flags & 0x20 else None
        out.update(kind="gre", session=key, inner=gre[hlen:])
    else:
        return None
    return out


def decapsulated(pcap: Path) -> list[dict]:
    return [d for d in (decapsulate(bytes(p)) for p in read_pcap(pcap)) if d is not None]


def _tshark(*args: str) -> str:
    proc = subprocess.run(["tshark", *args], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"tshark {' '.join(args)}: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def tshark_counts(pcap: Path) -> dict:
    """What Wireshark's "gre" filter shows, by ERSPAN session ID / GRE key."""
    erspan = Counter(_tshark("-r", str(pcap), "-Y", "erspan", "-T", "fields", "-e", "erspan.spanid").split())
    gre = Counter(_tshark("-r", str(pcap), "-Y", "gre && !erspan", "-T", "fields", "-e", "gre.key").split())
    total = len(_tshark("-r", str(pcap), "-Y", "gre", "-T", "fields", "-e", "frame.number").split())
    return {
        "gre_filter": total,
        "erspan_by_session": {str(int(k)): n for k, n in erspan.items()},
        "gre_by_key": {str(int(k, 16)): n for k, n in gre.items()},
    }


def follow_http(pcap: Path, session: int, work: Path) -> dict:
    """Wireshark's "Follow TCP Stream" on one ERSPAN session's copies: the
    client's and the server's bytes of the first HTTP connection."""
    only = work / f"erspan-session{session}.pcap"
    _tshark("-r", str(pcap), "-Y", f"erspan.spanid == {session} && tcp.port == 80", "-w", str(only))
    out = _tshark("-r", str(only), "-q", "-z", "follow,tcp,raw,0")
    client, server, data = bytearray(), bytearray(), False
    for line in out.splitlines():
        if line.startswith("Node 1:"):
            data = True
            continue
        if not data or not line.strip() or line.startswith("="):
            continue
        (server if line.startswith("\t") else client).extend(bytes.fromhex(line.strip()))
    return {"client": bytes(client), "server": bytes(server)}


# -- the lab's actors ---------------------------------------------------------------------
def _vnic(net: LabNetwork, vm: str):
    return next(v for v in net.lab.vms if v.name == vm).vnics[0]


def _vmk0(net: LabNetwork, host: str):
    esx = next(h for h in net.lab.esxi_hosts if h.name == host)
    vmk = esx.vmkernel[0]
    b = next(b for b in net.bindings if b.host == host and any(p.name == vmk.name for p in b.ports))
    return str(vmk.ip.ip), b.port(vmk.name).mac


@contextmanager
def web_server(net: LabNetwork, size: int):
    proc = guest_tool(net, "web", "web", "serve", "--port", 80, "--size", size, wait=False)
    try:
        wait_ready_line(proc, "web server")
        yield proc
    finally:
        stop_tool(proc)


def http_get(net: LabNetwork, size: int) -> dict:
    """The jump box's browser: one GET to the web VM."""
    proc = net.node("jumpbox").popen(
        [
            sys.executable,
            "-m",
            "experiments.tools.web",
            "get",
            f"http://{WEB_IP}{URL_PATH}",
            "--size",
            str(size),
        ],
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"GET from jumpbox failed: {err.strip()[-500:]}")
    return json.loads(out)


class Captures:
    """tcpdump at the monitor (everything, as Wireshark in the seed), inside
    the guests (their own view: what they sent and received), and at the
    physical switch ports of esx1's uplinks (what left the host)."""

    def __init__(self, net: LabNetwork, work: Path, tag: str, uplinks_of: str = "esx1"):
        ctl, self.pcaps, self.caps = net.control, {}, []

        def start(key, node, iface, bpf="", direction=None):
            pcap = work / f"{tag}-{key}.pcap"
            self.caps.append(ctl.tcpdump(node, iface, pcap, bpf, direction))
            self.pcaps[key] = pcap

        # What reaches the monitor (its own ICMP "protocol unreachable"
        # answers to GRE would quote ERSPAN headers tshark decodes too).
        start("monitor", "monitor", "eth0", "", ["-Q", "in"])
        start("jumpbox", "jumpbox", "eth0")
        # Everything web sends (its marker too); its HTTP is picked out later.
        start("web-sent", "web", "eth0", "", ["-Q", "out"])
        start("sniffer", "sniffer", "eth0", "", ["-Q", "in"])
        host = next(h for h in net.lab.esxi_hosts if h.name == uplinks_of)
        for up in host.uplinks:
            start(
                f"{uplinks_of}-{up.name}",
                naming.FABRIC_NODE,
                naming.fabric_port(up.switch, up.port),
                "",
                ["-Q", "in"],
            )

    def stop(self, net: LabNetwork, marked: tuple[str, ...] = ("monitor", "jumpbox")) -> dict[str, Path]:
        """Finish, then stop. The HTTP connection has closed at both ends (every
        frame of it passed the guests' captures); then the jump box and web
        each send one marker frame, mirrored like their traffic: once the jump
        box's is in every capture of ``marked`` and web's at the monitor and
        in web's own capture, every copy made before them is there too."""
        settle.wait_tcp_finished(net, ["jumpbox", "web"], 80)
        ends = {"jumpbox": ("jumpbox", *marked), "web": ("web-sent", "monitor")}
        for vm, keys in ends.items():
            tag = settle.marker(vm)
            settle.send_marker(net, vm, _vnic(net, vm).mac, tag)
            settle.wait_marker({k: self.pcaps[k] for k in keys}, tag)
        # Last started, first stopped: the sniffer's window lies inside the
        # jump box's, so whatever the sniffer got the jump box could see.
        for c in reversed(self.caps):
            c.stop()
        return self.pcaps


def _untagged(frame: bytes) -> bytes:
    return frame[:12] + frame[16:] if frame[12:14] == b"\x81\x00" else frame


def _is_http(frame: bytes) -> bool:
    """An untagged IPv4 TCP frame to or from port 80."""
    if len(frame) < 38 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return False
    tcp = frame[14 + (frame[14] & 0x0F) * 4 :]
    return 80 in (int.from_bytes(tcp[0:2], "big"), int.from_bytes(tcp[2:4], "big"))


def _frames(pcap: Path) -> list[bytes]:
    return [bytes(p) for p in read_pcap(pcap)]


# -- claims -------------------------------------------------------------------------------
def measure_erspan_http(net: LabNetwork, work: Path, page_bytes: int = 20000) -> dict:
    """The seed's walk-through: the jump box browses, the monitor filters on
    gre and follows the HTTP stream of the mirrored copies."""
    vmk_ip, vmk_mac = _vmk0(net, "esx1")
    with web_server(net, page_bytes):
        caps = Captures(net, work, "http")
        try:
            got = http_get(net, page_bytes)
        finally:
            pcaps = caps.stop(net, ("monitor", "jumpbox", "sniffer"))
    monitor = decapsulated(pcaps["monitor"])
    s1 = [d for d in monitor if d["kind"] == "erspan" and d["session"] == 1]
    guest = [f for f in _frames(pcaps["jumpbox"]) if _is_http(f)]
    mirrored_http = [d["inner"] for d in s1 if _is_http(d["inner"])]
    uplink_frames = [f for k, p in pcaps.items() if k.startswith("esx1-") for f in _frames(p)]
    left = [d for d in (decapsulate(f) for f in uplink_frames) if d is not None]
    http_on_wire = sum(1 for f in uplink_frames if _is_http(_untagged(f)))
    stream = follow_http(pcaps["monitor"], 1, work)
    headers, _, body = stream["server"].partition(b"\r\n\r\n")
    request_line = stream["client"].split(b"\r\n", 1)[0].decode(errors="replace")
    body_ok = body == page(page_bytes)
    counts = tshark_counts(pcaps["monitor"])
    # vSphere's ERSPAN header names the mirrored port's VLAN.
    jumpbox_vlan = next(
        pg.vlan
        for d in net.lab.distributed_switches
        for pg in d.port_groups
        if pg.name == _vnic(net, "jumpbox").port_group
    )
    ok = (
        got["body_ok"]
        and request_line == f"GET {URL_PATH} HTTP/1.1"
        and body_ok
        and headers.startswith(b"HTTP/1.1 200 OK")
        and Counter(mirrored_http) == Counter(guest)
        and len(guest) > 0
        and all(d["outer_src"] == vmk_ip and d["outer_dst"] == MONITOR for d in s1)
        and len(left) > 0
        and all(d["outer_src"] == vmk_ip and d["outer_mac_src"] == vmk_mac and d["vlan"] == 10 for d in left)
        and http_on_wire == 0
        and counts["erspan_by_session"].get("1") == len(s1)
        and {d["header_vlan"] for d in s1} == {jumpbox_vlan}
    )
    return {
        "get": got,
        "tshark": counts,
        "erspan_session1_frames": len(s1),
        "erspan_version": sorted({d["version"] for d in s1}),
        "erspan_header_vlans": sorted({d["header_vlan"] for d in s1}),
        "http_frames_at_jumpbox": len(guest),
        "http_frames_mirrored": len(mirrored_http),
        "inner_equal_to_jumpbox_frames": Counter(mirrored_http) == Counter(guest),
        "outer_sources": sorted({d["outer_src"] for d in s1}),
        "vmk0": [vmk_ip, vmk_mac],
        "left_esx1_uplinks": {
            "encapsulated": len(left),
            "http": http_on_wire,
            "outer_src": sorted({d["outer_src"] for d in left}),
            "outer_mac_src": sorted({d["outer_mac_src"] for d in left}),
            "vlan": sorted({d["vlan"] for d in left if d["vlan"]}),
        },
        "reassembled": {
            "request_line": request_line,
            "status_line": headers.split(b"\r\n", 1)[0].decode(errors="replace"),
            "client_bytes": len(stream["client"]),
            "server_bytes": len(stream["server"]),
            "body_bytes": len(body),
            "body_equal_to_page": body_ok,
            "excerpt_client": stream["client"].decode(errors="replace")[:300],
            "excerpt_server": stream["server"].decode(errors="replace")[:420],
        },
        "pcaps": {k: str(p) for k, p in pcaps.items()},
        "verdict": ok,
    }


def measure_snap_length(pcaps: dict, snap: int = 128) -> dict:
    """Session 2 (GRE, web's sent frames): each copy is the first ``snap``
    bytes of a frame web sent."""
    copies = [
        d["inner"]
        for d in decapsulated(Path(pcaps["monitor"]))
        if d["kind"] == "gre" and d["session"] == 2 and _is_http(d["inner"])
    ]
    sent = [f for f in _frames(Path(pcaps["web-sent"])) if _is_http(f)]
    lengths = [(len(f), len(f[:snap])) for f in sent]
    ok = (
        len(copies) == len(sent) > 0
        and Counter(copies) == Counter(f[:snap] for f in sent)
        and max(len(c) for c in copies) <= snap
        and any(n > snap for n, _ in lengths)
    )
    return {
        "snap_length": snap,
        "frames_sent_by_web": len(sent),
        "gre_copies": len(copies),
        "longest_copy": max((len(c) for c in copies), default=0),
        "longest_sent": max((n for n, _ in lengths), default=0),
        "truncated": sum(1 for n, _ in lengths if n > snap),
        "lengths": sorted(lengths),
        "verdict": ok,
    }


def measure_local_mirror(net: LabNetwork, work: Path, pcaps: dict, frames: int = 20) -> dict:
    """The sniffer VM (local session, normal traffic disallowed) received the
    jump box's HTTP frames and nothing else; frames to it or from it go
    nowhere."""
    sniffer_mac = _vnic(net, "sniffer").mac
    web_mac = _vnic(net, "web").mac
    seen = _frames(Path(pcaps["sniffer"]))
    everything = _frames(Path(pcaps["jumpbox"]))
    jumpbox = [f for f in everything if _is_http(f)]
    copies = [f for f in seen if _is_http(f)]
    # Everything the sniffer got is a frame the jump box sent or received.
    not_copies = sum((Counter(seen) - Counter(everything)).values())
    ctl = net.control
    # Frames addressed to the sniffer, and frames it sends to web.
    to_cap = ctl.tcpdump("sniffer", "eth0", work / "local-to-sniffer.pcap", "udp port 9", ["-Q", "in"])
    from_cap = ctl.tcpdump("web", "eth0", work / "local-from-sniffer.pcap", "udp port 9", ["-Q", "in"])
    try:
        guest_tool(
            net,
            "web",
            "frames",
            "--src",
            web_mac,
            "--dst",
            sniffer_mac,
            "--count",
            frames,
            "--tag",
            "to-sniffer",
        )
        # Web's next frame, to the jump box, reaches the sniffer as a mirror
        # copy: once it is there, web's frames before it have been forwarded.
        tag = settle.marker("web-to-jumpbox")
        settle.send_marker(net, "web", web_mac, tag, dst=_vnic(net, "jumpbox").mac)
        settle.wait_marker({"sniffer": to_cap.pcap}, tag)
        guest_tool(
            net,
            "sniffer",
            "frames",
            "--src",
            sniffer_mac,
            "--dst",
            web_mac,
            "--count",
            frames,
            "--tag",
            "from-sniffer",
        )
        # Nothing the sniffer sends is forwarded, so no frame can follow its
        # frames to web: wait for the capture to stay quiet instead.
        quiesce([from_cap.pcap])
    finally:
        to_sniffer = sum(1 for f in _frames(to_cap.stop()) if b"to-sniffer" in f)
        from_sniffer = sum(1 for f in _frames(from_cap.stop()) if b"from-sniffer" in f)
    ok = (
        Counter(copies) == Counter(jumpbox)
        and len(copies) > 0
        and not_copies == 0
        and to_sniffer == 0
        and from_sniffer == 0
    )
    return {
        "jumpbox_http_frames": len(jumpbox),
        "copies_at_sniffer": len(copies),
        "frames_at_sniffer": len(seen),
        "not_jumpbox_frames_at_sniffer": not_copies,
        "copies_equal_to_jumpbox_frames": Counter(copies) == Counter(jumpbox),
        "frames_sent_to_sniffer": frames,
        "delivered_to_sniffer": to_sniffer,
        "frames_sent_by_sniffer": frames,
        "delivered_from_sniffer": from_sniffer,
        "verdict": ok,
    }


def measure_vmotion(net: LabNetwork, work: Path, page_bytes: int = 20000) -> dict:
    """After the jump box vMotions to esx2, esx2 mirrors it; the local
    session, whose sniffer stays on esx1, delivers nothing any more."""
    move = net.control.vmotion("jumpbox", "esx2")
    vmk_ip, _ = _vmk0(net, "esx2")
    with web_server(net, page_bytes):
        caps = Captures(net, work, "vmotion")
        try:
            got = http_get(net, page_bytes)
        finally:
            pcaps = caps.stop(net)
    s1 = [d for d in decapsulated(pcaps["monitor"]) if d["kind"] == "erspan" and d["session"] == 1]
    mirrored_http = [d["inner"] for d in s1 if _is_http(d["inner"])]
    guest = [f for f in _frames(pcaps["jumpbox"]) if _is_http(f)]
    sniffer = [f for f in _frames(pcaps["sniffer"]) if _is_http(f)]
    stream = follow_http(pcaps["monitor"], 1, work)
    body = stream["server"].partition(b"\r\n\r\n")[2]
    ok = (
        got["body_ok"]
        and Counter(mirrored_http) == Counter(guest)
        and len(guest) > 0
        and {d["outer_src"] for d in s1} == {vmk_ip}
        and len(sniffer) == 0
        and body == page(page_bytes)
    )
    return {
        "moved": {k: move[k] for k in ("vm", "from", "to", "stun_s")},
        "get": got,
        "erspan_session1_frames": len(s1),
        "http_frames_at_jumpbox": len(guest),
        "http_frames_mirrored": len(mirrored_http),
        "inner_equal_to_jumpbox_frames": Counter(mirrored_http) == Counter(guest),
        "outer_sources": sorted({d["outer_src"] for d in s1}),
        "esx2_vmk0": vmk_ip,
        "copies_at_sniffer": len(sniffer),
        "body_reassembled": body == page(page_bytes),
        "verdict": ok,
    }


def run(params: dict | None = None) -> dict:
    p = {**DEFAULTS, **(params or {})}
    t0 = time.monotonic()
    work = RESULTS / NAME / "pcaps"
    work.mkdir(parents=True, exist_ok=True)
    cpu, phase = CpuMeter(), Progress(NAME)
    with lab_session(LAB) as net:
        cpu.start()
        phase("jump box GET, captures at the monitor, the guests and esx1's uplinks")
        http = measure_erspan_http(net, work, p["page_bytes"])
        snap = measure_snap_length(http["pcaps"], 128)
        phase("local session: the sniffer VM")
        local = measure_local_mirror(net, work, http["pcaps"], p["frames"])
        phase("vMotion jumpbox to esx2, GET again")
        moved = measure_vmotion(net, work, p["page_bytes"])
        env = environment(net)
        cpu.stop()
        drops = shaping_drops(net)
    http.pop("pcaps")
    result = {
        "experiment": NAME,
        "seed": "003_41155c6ca9cde2fe.txt",
        "labs": [LAB.name],
        "params": p,
        "environment": env,
        "claims": {
            "erspan_http_reassembled": http,
            "mirror_snap_length": snap,
            "local_mirror_receive_only": local,
            "mirroring_follows_vmotion": moved,
        },
        "fidelity": fidelity_summary(cpu, drops, frames_counted=True),
        "wall_s": round(time.monotonic() - t0, 1),
    }
    result["verdicts"] = verdicts_of(result["claims"])
    return result


def plot(result: dict, outdir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Okabe-Ito, as the other experiments.
    blue, orange, green, vermillion, sky = "#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9"
    c = result["claims"]
    http, snap, local, moved = (
        c["erspan_http_reassembled"],
        c["mirror_snap_length"],
        c["local_mirror_receive_only"],
        c["mirroring_follows_vmotion"],
    )
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), gridspec_kw={"width_ratios": [1.2, 1, 1.1]})
    ax1, ax2, ax3 = axes

    at_vm = "HTTP frames at the\njump box (its capture)"
    at_monitor = "ERSPAN copies at\nthe monitor"
    at_sniffer, on_wire = "copies at the\nsniffer (local)", "HTTP frames on\nesx1's uplinks"
    groups = [
        (
            "jump box on esx1",
            [
                (at_vm, http["http_frames_at_jumpbox"], sky),
                (at_monitor, http["http_frames_mirrored"], blue),
                (at_sniffer, local["copies_at_sniffer"], green),
                (on_wire, http["left_esx1_uplinks"]["http"], orange),
            ],
        ),
        (
            "after vMotion to esx2",
            [
                (at_vm, moved["http_frames_at_jumpbox"], sky),
                (at_monitor, moved["http_frames_mirrored"], blue),
                (at_sniffer, moved["copies_at_sniffer"], green),
            ],
        ),
    ]
    x, ticks, labels, seen = 0, [], [], set()
    for title, bars in groups:
        start = x
        for label, value, colour in bars:
            ax1.bar(x, value, color=colour, label=None if label in seen else label)
            ax1.text(x, value, str(value), ha="center", va="bottom", fontsize=8)
            seen.add(label)
            x += 1
        ticks.append((start + x - 1) / 2)
        labels.append(title)
        x += 1
    ax1.set_xticks(ticks, labels)
    ax1.set_ylim(0, 1.45 * max(1, http["http_frames_at_jumpbox"], moved["http_frames_at_jumpbox"]))
    ax1.set_ylabel("HTTP frames (TCP port 80)")
    ax1.set_title("Who saw the jump box's HTTP")
    ax1.legend(fontsize=7, loc="upper center", ncol=2)

    sent = [n for n, _ in snap["lengths"]]
    cut = [m for _, m in snap["lengths"]]
    order = range(len(sent))
    ax2.bar([i - 0.2 for i in order], sent, width=0.4, color=sky, label="frame web sent")
    ax2.bar([i + 0.2 for i in order], cut, width=0.4, color=vermillion, label="GRE copy at the monitor")
    ax2.axhline(
        snap["snap_length"],
        color="black",
        linestyle=":",
        linewidth=1,
        label=f"snap length {snap['snap_length']}",
    )
    ax2.set_ylim(0, 1.3 * max(sent + [snap["snap_length"]]))
    ax2.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax2.set_xlabel("web's sent HTTP frames, by length")
    ax2.set_ylabel("bytes")
    ax2.set_title(f"Snap length: {snap['gre_copies']} copies, longest {snap['longest_copy']} B")
    ax2.legend(fontsize=7)

    r = http["reassembled"]
    ax3.axis("off")
    ax3.set_title("Follow TCP stream of ERSPAN session 1 (tshark)", fontsize=10)
    client = r["excerpt_client"].replace("\r", "").strip().splitlines()[:4]
    server = r["excerpt_server"].replace("\r", "").strip().splitlines()[:9]
    y = 0.95
    for line in client:
        ax3.text(0.0, y, line, color=vermillion, family="monospace", fontsize=8, transform=ax3.transAxes)
        y -= 0.065
    for line in server:
        ax3.text(0.0, y, line, color=blue, family="monospace", fontsize=8, transform=ax3.transAxes)
        y -= 0.065
    ax3.text(
        0.0,
        max(y - 0.02, 0.0),
        f"... {r['body_bytes']} body bytes, equal to the page: {r['body_equal_to_page']}",
        fontsize=8,
        transform=ax3.transAxes,
    )
    return save_figure(fig, outdir, NAME)


# Key numbers for `vlab run --repeat N` (mean and 95% CI).
METRICS = {
    "ERSPAN copies (session 1)": lambda r: r["claims"]["erspan_http_reassembled"]["erspan_session1_frames"],
    "GET reassembled": lambda r: float(
        r["claims"]["erspan_http_reassembled"]["reassembled"]["body_equal_to_page"]
    ),
}

# One-line measured values for results/REPORT.md (experiments.report).
MEASURED = {
    "erspan_http_reassembled": lambda r: (
        "{m} ERSPAN copies of the jump box's {g} HTTP frames at the monitor, byte-equal; "
        "request line '{req}', {b} body bytes equal to the page; 0 HTTP frames on esx1's "
        "uplinks; ERSPAN header VLAN {v}".format(
            v=", ".join(map(str, r["claims"]["erspan_http_reassembled"].get("erspan_header_vlans", []))),
            m=r["claims"]["erspan_http_reassembled"]["http_frames_mirrored"],
            g=r["claims"]["erspan_http_reassembled"]["http_frames_at_jumpbox"],
            req=r["claims"]["erspan_http_reassembled"]["reassembled"]["request_line"],
            b=r["claims"]["erspan_http_reassembled"]["reassembled"]["body_bytes"],
        )
    ),
    "mirror_snap_length": lambda r: (
        "{c} GRE copies of {s} frames, longest {l} B (snap length {n}; longest sent {x} B)".format(
            c=r["claims"]["mirror_snap_length"]["gre_copies"],
            s=r["claims"]["mirror_snap_length"]["frames_sent_by_web"],
            l=r["claims"]["mirror_snap_length"]["longest_copy"],
            n=r["claims"]["mirror_snap_length"]["snap_length"],
            x=r["claims"]["mirror_snap_length"]["longest_sent"],
        )
    ),
    "local_mirror_receive_only": lambda r: (
        "sniffer got {c}/{j} jump box frames; {t}/{n} frames to it and {f}/{n} from it delivered".format(
            c=r["claims"]["local_mirror_receive_only"]["copies_at_sniffer"],
            j=r["claims"]["local_mirror_receive_only"]["jumpbox_http_frames"],
            t=r["claims"]["local_mirror_receive_only"]["delivered_to_sniffer"],
            f=r["claims"]["local_mirror_receive_only"]["delivered_from_sniffer"],
            n=r["claims"]["local_mirror_receive_only"]["frames_sent_to_sniffer"],
        )
    ),
    "mirroring_follows_vmotion": lambda r: (
        "on esx2: {m}/{g} frames mirrored from {src}; sniffer on esx1 got {s}".format(
            m=r["claims"]["mirroring_follows_vmotion"]["http_frames_mirrored"],
            g=r["claims"]["mirroring_follows_vmotion"]["http_frames_at_jumpbox"],
            src=", ".join(r["claims"]["mirroring_follows_vmotion"]["outer_sources"]),
            s=r["claims"]["mirroring_follows_vmotion"]["copies_at_sniffer"],
        )
    ),
}

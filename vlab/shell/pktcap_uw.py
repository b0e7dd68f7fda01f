"""``pktcap-uw`` on an emulated ESXi host, with ESXi's syntax and output.

    pktcap-uw (--uplink vmnicN | --switchport PORT | --vmk vmkN)
              [--dir 0|1|2] [--capture POINT]
              [--proto 0xNN] [--ethtype 0xNNNN] [--ip A | --srcip A | --dstip A]
              [--mac M | --srcmac M | --dstmac M] [--vlan N] [--tcpport N]
              [--vxlan VNI] [-c N] [-o FILE] [--seconds S]

``--dir`` is ESXi's: 0 what enters the vSwitch from the port (input), 1 what
the vSwitch sends to it (output), 2 both. The capture points and where the
testbed sees each are ``vlab.operations.capture``'s (``CAPTURE_POINTS``,
``tap``). Without ``-o`` every frame is printed as seed 002 shows ESXi
printing it: the VLAN tag as metadata ("VLAN tag 100", not in the dump and
not in the length), then the hex dump; ``-o`` writes a pcap. The lines
ESXi prints about its own plumbing (the vsock between the capture engine
and the command) have no counterpart here and are not printed; what the
testbed adds (where it listens, why a capture ended) goes to stderr,
prefixed ``vlab:``.

``--seconds`` is the testbed's: a capture with ``-c`` also ends after it
(default 10 s) and says so, so a count that never fills cannot hang a
script or a class; without ``-c`` it runs until Ctrl-C, as on ESXi, or for
``--seconds`` if given.

``--capture Drop`` shows every frame the host's vSwitch pipeline drops
while it runs (``controller.dropcapture``), each with the reason in the
words ``vlab trace`` uses (forged transmits, reverse teaming, a DFW rule,
...) and the pipeline stage that dropped it as the Drop Function; a port,
if given, narrows it to the frames that came in by that port. Its filters
are applied to the dropped frames here (``matches``), with the same
meaning as the taps' BPF.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, TextIO

from controller.simulate import Frame, frame_of
from vlab import control
from vlab.operations import OperationError
from vlab.operations.capture import (
    DEFAULT_POINT,
    INPUT,
    OUTPUT,
    PcapFollower,
    listening_marker,
    point_direction,
    start_tap,
    tap,
    write_pcap,
)
from vlab.protocols import ETH_IPV4, VXLAN_PORT

from .argv import raising_parser

DIRECTIONS = {INPUT: "Input", OUTPUT: "Output"}
COUNT_TIME_LIMIT_S = 10.0
POLL_S = 0.05
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


class UsageError(Exception):
    """Bad arguments: pktcap-uw prints its usage and exits non-zero."""


def _number(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (decimal or 0x hex)") from None


def _ip(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IPv4 address") from None


def _mac(text: str) -> str:
    if not _MAC.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a MAC address (xx:xx:xx:xx:xx:xx)")
    return text.lower()


def parser() -> argparse.ArgumentParser:
    p = raising_parser("pktcap-uw", UsageError)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--uplink", metavar="vmnicN")
    where.add_argument("--switchport", metavar="PORT", help="port number (net-stats -l), or its client name")
    where.add_argument("--vmk", metavar="vmkN")
    p.add_argument("--dir", type=int, choices=[0, 1, 2], help="0 input, 1 output, 2 both")
    p.add_argument("--capture", metavar="POINT")
    p.add_argument("--proto", type=_number, help="IP protocol, e.g. 0x01")
    p.add_argument("--ethtype", type=_number, help="Ethernet type, e.g. 0x0806")
    ip = p.add_mutually_exclusive_group()
    ip.add_argument("--ip", type=_ip)
    ip.add_argument("--srcip", type=_ip)
    ip.add_argument("--dstip", type=_ip)
    mac = p.add_mutually_exclusive_group()
    mac.add_argument("--mac", type=_mac)
    mac.add_argument("--srcmac", type=_mac)
    mac.add_argument("--dstmac", type=_mac)
    p.add_argument("--vlan", type=int)
    p.add_argument("--tcpport", type=int)
    p.add_argument("--vxlan", type=int, metavar="VNI", help="VXLAN frames of this VNI (the outer headers')")
    p.add_argument("-c", "--count", type=int, default=0)
    p.add_argument("-o", "--outfile")
    p.add_argument("--seconds", type=float, help="(vlab) stop after this long")
    p.add_argument("-h", "--help", action="store_true")
    return p


USAGE = """Packet Capture and Trace command usage:
    pktcap-uw --uplink vmnicN | --switchport PORTNUM | --vmk vmkN
              [--dir 0|1|2] [--capture UplinkRcv|UplinkSnd|EtherswitchDispath|PortInput|
                             PortOutput|VnicTx|VnicRx]
    pktcap-uw --capture Drop [--uplink vmnicN | --switchport PORTNUM | --vmk vmkN] [filters]
              [--proto 0xNN] [--ethtype 0xNNNN] [--ip|--srcip|--dstip ADDR]
              [--mac|--srcmac|--dstmac MAC] [--vlan ID] [--tcpport PORT] [--vxlan VNI]
              [-c COUNT] [-o FILE] [--seconds S]
    --dir      0 input (into the vSwitch from the port), 1 output, 2 both
    -o FILE    write a pcap instead of printing the frames
    --seconds  (vlab) stop after S seconds; with -c the limit is 10 s unless given
    PORTNUM comes from `net-stats -l`."""


@dataclass(frozen=True)
class Session:
    """One capture session: the port, the points per direction, filters."""

    kind: str  # uplink, vnic, vmk
    name: str  # vmnic2, vm1-eth0, vmk0
    port_num: int
    points: tuple[tuple[int, str], ...]  # (direction, point), one or two
    dir_given: bool


@dataclass(frozen=True)
class Filter:
    """One pktcap-uw filter: ESXi's session line, the BPF a tap captures
    with, and the same test on a parsed frame (the Drop point's), so the
    two can never mean different things."""

    option: str  # the argparse dest: srcmac, proto, ...
    line: str  # ESXi's "The session filter ..." line, {v} the value
    bpf: str  # tcpdump's expression, {v} the value
    test: Callable[[Frame, bytes, object], bool]  # (parsed, raw, value)


# In ESXi's order of the session lines.
FILTERS = (
    Filter("srcmac", "source MAC address is {v}", "ether src {v}", lambda f, _, v: f.eth_src == v),
    Filter("dstmac", "destination MAC address is {v}", "ether dst {v}", lambda f, _, v: f.eth_dst == v),
    Filter("mac", "MAC address is {v}", "ether host {v}", lambda f, _, v: v in (f.eth_src, f.eth_dst)),
    Filter("ethtype", "ethernet type is 0x{v:04x}", "ether proto 0x{v:04x}", lambda f, _, v: f.eth_type == v),
    # tcpdump's host primitives match IPv4 and ARP addresses alike.
    Filter("srcip", "source IP address is {v}", "src host {v}", lambda f, _, v: v in (f.ipv4_src, f.arp_spa)),
    Filter(
        "dstip", "destination IP address is {v}", "dst host {v}", lambda f, _, v: v in (f.ipv4_dst, f.arp_tpa)
    ),
    Filter(
        "ip",
        "IP address is {v}",
        "host {v}",
        lambda f, _, v: v in (f.ipv4_src, f.ipv4_dst, f.arp_spa, f.arp_tpa),
    ),
    Filter(
        "proto",
        "IP protocol is 0x{v:02x}",
        "ip proto {v}",
        lambda f, _, v: f.eth_type == ETH_IPV4 and f.ip_proto == v,
    ),
    Filter("tcpport", "TCP port is {v}", "tcp port {v}", lambda f, _, v: v in (f.tcp_src, f.tcp_dst)),
    # The VNI is the 3 bytes after the VXLAN header's flags and reserved
    # bytes, which follow the 8-byte UDP header.
    Filter(
        "vxlan",
        "vxlan id is {v}",
        f"udp dst port {VXLAN_PORT} and (udp[12:4] >> 8) = {{v}}",
        lambda f, raw, v: f.udp_dst == VXLAN_PORT and vxlan_id(raw) == v,
    ),
)


def vxlan_id(frame: bytes) -> Optional[int]:
    """The VNI of a VXLAN frame (its outer Ethernet, 802.1Q, IPv4 and UDP
    headers), None for any other frame."""
    off = 14
    while frame[off - 2 : off] == b"\x81\x00":
        off += 4
    if frame[off - 2 : off] != b"\x08\x00" or len(frame) < off + 20 or frame[off + 9] != 17:
        return None
    udp = off + (frame[off] & 0x0F) * 4
    if len(frame) < udp + 16 or int.from_bytes(frame[udp + 2 : udp + 4], "big") != VXLAN_PORT:
        return None
    return int.from_bytes(frame[udp + 12 : udp + 15], "big")


def _given(a) -> list[tuple[Filter, object]]:
    return [(flt, getattr(a, flt.option)) for flt in FILTERS if getattr(a, flt.option) is not None]


def _filters(a) -> list[tuple[str, str]]:
    """(ESXi's session line, BPF) per filter given, in ESXi's order."""
    return [("The session filter " + flt.line.format(v=v), flt.bpf.format(v=v)) for flt, v in _given(a)]


def bpf(a) -> str:
    """The tcpdump filter of the session's filters. A frame's VLAN tag sits
    before the headers the filters look at, so without ``--vlan`` a filter
    matches untagged and tagged frames alike (ESXi's filters see through
    the tag, which its vSwitch keeps as metadata)."""
    inner = " and ".join(f for _, f in _filters(a))
    if a.vlan is not None:
        return f"vlan {a.vlan}" + (f" and {inner}" if inner else "")
    return f"({inner}) or (vlan and ({inner}))" if inner else ""


def session(a, port_kind: str, name: str, port_num: int) -> Session:
    """Check the direction and point against the port; which points to open."""
    if a.capture == "Drop":
        if a.dir is not None:
            raise UsageError("--capture Drop has no direction: give no --dir")
        return Session(port_kind, name, port_num, ((INPUT, "Drop"),), False)
    if a.capture is not None:
        d = point_direction(port_kind, a.capture)
        if a.dir is not None and a.dir != d:
            what = "enters the vSwitch from" if d == INPUT else "the vSwitch sends to"
            raise UsageError(
                f"--capture {a.capture} sees what {what} the port (--dir {d}), not --dir {a.dir}"
            )
        return Session(port_kind, name, port_num, ((d, a.capture),), a.dir is not None)
    dirs = (INPUT, OUTPUT) if a.dir == 2 else (a.dir or INPUT,)
    return Session(
        port_kind, name, port_num, tuple((d, DEFAULT_POINT[(port_kind, d)]) for d in dirs), a.dir is not None
    )


def session_lines(a, s: Session) -> list[str]:
    """What pktcap-uw prints before the first frame (seed 002's order)."""
    lines = []
    if s.kind == "uplink":
        lines.append(f"The name of the uplink is {s.name}")
    elif s.kind == "vmk":
        lines.append(f"The name of the vmk is {s.name}")
    elif s.kind == "host":
        pass  # a Drop capture of the whole host names no port
    else:
        lines.append(f"The switch port id is 0x{s.port_num:08x}")
    if s.dir_given:
        lines.append("The dir is " + " and ".join(DIRECTIONS[d] for d, _ in s.points))
    if a.count:
        lines.append(f"To capture {a.count} packets")
    lines += [line for line, _ in _filters(a)]
    if a.vlan is not None:
        lines.append(f"The session filter vlan id is {a.vlan}")
    if a.capture is not None:
        lines.append(f"The session capture point is {a.capture}")
    lines.append(f"The output file is {a.outfile}" if a.outfile else "Output the packet info to console.")
    return lines


def format_frame(
    number: int, ts: float, point: str, frame: bytes, drop: Optional[tuple[str, str]] = None
) -> list[str]:
    """One frame as pktcap-uw prints it: the 802.1Q tag is metadata (named,
    and left out of the dump and the length), then 16 bytes a line. At the
    Drop point, ``drop`` is (reason, the stage that dropped it)."""
    vlan = ""
    if len(frame) >= 18 and frame[12:14] == b"\x81\x00":
        vlan = f"VLAN tag {int.from_bytes(frame[14:16], 'big') & 0xFFF}, "
        frame = frame[:12] + frame[16:]
    clock = time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(round(ts % 1 * 1e6)) % 1000000:06d}"
    why = f"Drop Reason '{drop[0]}'. Drop Function '{drop[1]}'. " if drop else ""
    lines = [
        f"{clock}[{number}] Captured at {point} point, {why}TSO not enabled, "
        f"Checksum not offloaded and not verified, {vlan}length {len(frame)}.",
        f"Segment[0] ---- {len(frame)} bytes:",
    ]
    for off in range(0, len(frame), 16):
        chunk = frame[off : off + 16].hex()
        words = " ".join(chunk[i : i + 4] for i in range(0, len(chunk), 4))
        lines.append(f"0x{off:04x}:  {words} ")
    return lines


def _note(err: TextIO, text: str) -> None:
    print(f"vlab: {text}", file=err, flush=True)


def run(ctl, host: str, argv: list[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """pktcap-uw on ``host`` of the lab ``ctl`` controls; its exit code."""
    try:
        a = parser().parse_args(argv)
        if a.help:
            print(USAGE, file=out)
            return 0
        if a.count < 0 or (a.seconds is not None and a.seconds <= 0):
            raise UsageError("-c and --seconds take positive values")
        if not (a.uplink or a.switchport or a.vmk):
            if a.capture != "Drop":
                raise UsageError("give one of --uplink, --switchport, --vmk")
            ctl.esxi(host)
            s = session(a, "host", host, 0)
            for line in session_lines(a, s):
                print(line, file=out)
            return _capture_drops(ctl, host, None, a, s, out, err)
        b, p = ctl.port(a.uplink or a.vmk or a.switchport, host)
        kind = {"uplink": "uplink", "vmk": "vmk", "vnic": "vnic"}[p.kind]
        if (a.uplink and kind != "uplink") or (a.vmk and kind != "vmk"):
            raise UsageError(f"{a.uplink or a.vmk} is not a{'n uplink' if a.uplink else ' vmk'} of {host}")
        s = session(a, kind, p.name, b.port_num(p))
    except UsageError as exc:
        print(f"pktcap-uw: {exc}\n{USAGE}", file=err)
        return 1
    except OperationError as exc:
        print(f"pktcap-uw: {exc}", file=err)
        return 1
    for line in session_lines(a, s):
        print(line, file=out)
    if a.capture == "Drop":
        return _capture_drops(ctl, host, p, a, s, out, err)
    return _capture(ctl, host, p, a, s, out, err)


def _capture(ctl, host, p, a, s: Session, out: TextIO, err: TextIO) -> int:
    work = Path(ctl.dir) / "pktcap"
    sid = os.getpid()
    caps = []
    followers: dict = {}
    try:
        for i, (_, point) in enumerate(s.points):
            t = tap(ctl, host, p, point)
            extra = ["-c", str(a.count)] if a.count else None
            caps.append((point, start_tap(ctl, t, work / f"{sid}-{i}.pcap", bpf(a), extra)))
            _note(err, f"listening at {point}: {t.where}")
        fetch = lambda: [(ts, point, frame, None) for ts, point, frame in _frames(caps, followers)]  # noqa: E731
        with listening(ctl):
            shown, why = _follow(fetch, a, out, lambda: all(cap.proc.poll() is not None for _, cap in caps))
    finally:
        dropped = 0
        for _, cap in caps:
            try:
                cap.stop()
            except Exception as exc:  # a kernel drop is reported below, not raised
                _note(err, str(exc))
            if cap.stats is not None:
                dropped += cap.stats[2]
    frames = _frames(caps, followers)[: a.count or None]
    if not a.outfile:
        for n, (ts, point, frame) in enumerate(frames[shown:], start=shown + 1):
            print("\n".join(format_frame(n, ts, point, frame)), file=out)
    else:
        write_pcap(Path(a.outfile), [(ts, frame) for ts, _, frame in frames])
    for _, cap in caps:
        for f in (cap.pcap, cap.log):
            Path(f).unlink(missing_ok=True)
    return _end(a, len(frames), dropped, why, out, err)


def matches(a, frame: bytes) -> bool:
    """The session's filters on one frame, as ``bpf`` means them (the VLAN
    tag seen through unless ``--vlan`` names one)."""
    f = frame_of(frame, 0)
    return (a.vlan is None or f.vlan == a.vlan) and all(flt.test(f, frame, v) for flt, v in _given(a))


def _drop_session(ctl, host: str, open_: bool) -> None:
    """Add or remove this process's Drop session on ``host`` (a host keeps
    its pipeline's copies while any session of it is open)."""
    me = os.getpid()

    ctl.request_change(
        lambda want: want.update(
            drop_captures=control.with_session(want.get("drop_captures"), host, me, open_)
        )
    )


def _capture_drops(ctl, host: str, p, a, s: Session, out: TextIO, err: TextIO) -> int:
    """The Drop point: ask the controller to copy what the host's pipeline
    drops (``desired.json`` ``drop_captures``), follow ``drops.jsonl``."""
    log = DropLog(Path(ctl.dir) / control.DROPS, host, p.name if p else None, a)
    try:
        _drop_session(ctl, host, True)
        where = f"frames {host}'s vSwitch pipeline drops" + (f" that came in by {p.name}" if p else "")
        _note(err, f"listening at Drop: {where}")
        fetch = lambda: [(ts, "Drop", frame, drop) for ts, frame, drop in log.read()]  # noqa: E731
        with listening(ctl):
            shown, why = _follow(fetch, a, out, lambda: False)
    finally:
        _drop_session(ctl, host, False)
    log.read()  # what the controller wrote since the last poll
    frames = log.frames[: a.count or None]
    if not a.outfile:
        for n, (ts, frame, drop) in enumerate(frames[shown:], start=shown + 1):
            print("\n".join(format_frame(n, ts, "Drop", frame, drop)), file=out)
    else:
        write_pcap(Path(a.outfile), [(ts, frame) for ts, frame, _ in frames])
    # "dropped": dropped frames the controller did not record (over its rate
    # cap; on the host, of any port). Copies OVS itself could not send the
    # controller are not counted.
    return _end(a, len(frames), log.skipped, why, out, err)


@contextmanager
def listening(ctl):
    """While this session listens, its marker (``listening_marker``) says
    so: the lab CLI returns from ``HOST pktcap-uw ... &`` once it exists, so
    the traffic typed next is captured."""
    marker = listening_marker(ctl.dir, os.getpid())
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)


def _end(a, count: int, dropped: int, why: str, out: TextIO, err: TextIO) -> int:
    """What pktcap-uw prints when a session ends."""
    if why:
        _note(err, why if count else f"{why}; no frame matched the filters")
    print(f"Destroying session {os.getpid()}\n", file=out)
    target = f"file {a.outfile}" if a.outfile else "console"
    print(f"Dumped {count} packet to {target}, dropped {dropped} packets.", file=out)
    print("Done.", file=out)
    return 0


class DropLog:
    """The controller's ``drops.jsonl`` as it grows, from the session's
    start: each complete line read once, the frames of this session's host
    (and port) that pass its filters kept, and ``skipped``, how many of the
    host's drops the controller could not record (its rate cap)."""

    def __init__(self, path: Path, host: str, port: Optional[str], a):
        self.path, self.host, self.port, self.a = path, host, port, a
        self.offset = path.stat().st_size if path.exists() else 0
        self.frames: list[tuple[float, bytes, tuple[str, str]]] = []
        self.skipped = 0

    def read(self) -> list[tuple[float, bytes, tuple[str, str]]]:
        if not self.path.exists():
            return self.frames
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits
        self.offset += len(complete)
        for line in complete.splitlines():
            r = json.loads(line)
            if r["host"] != self.host:
                continue
            self.skipped += r.get("skipped", 0)
            frame = bytes.fromhex(r["frame"])
            if self.port in (None, r["in_port"]) and matches(self.a, frame):
                self.frames.append((r["t"], frame, (r["reason"], r["stage"])))
        return self.frames


def _frames(caps, followers: dict) -> list[tuple[float, str, bytes]]:
    """Every frame of the session's taps so far, in time order, with its
    point (``followers``: each tap's pcap, read as it grows)."""
    for _, cap in caps:
        followers.setdefault(cap.pcap, PcapFollower(cap.pcap)).read()
    return sorted((ts, point, frame) for point, cap in caps for ts, frame in followers[cap.pcap].records)


def _follow(fetch, a, out: TextIO, ended) -> tuple[int, str]:
    """Print frames as they arrive (without ``-o``) until ``-c`` frames,
    the time limit, ``ended()`` or Ctrl-C; (frames printed, why it ended if
    not by count). ``fetch()`` gives every (time, point, frame, drop) so far."""
    limit = a.seconds if a.seconds is not None else (COUNT_TIME_LIMIT_S if a.count else None)
    t0, shown = time.monotonic(), 0
    try:
        while True:
            frames = fetch()
            if not a.outfile:
                for n, (ts, point, frame, drop) in enumerate(
                    frames[shown : a.count or None], start=shown + 1
                ):
                    print("\n".join(format_frame(n, ts, point, frame, drop)), file=out, flush=True)
                    shown = n
            if a.count and len(frames) >= a.count:
                return shown, ""
            if ended():
                return shown, "the capture ended"
            if limit is not None and time.monotonic() - t0 >= limit:
                got = f"{len(frames)} of {a.count} packets" if a.count else f"{len(frames)} packets"
                return shown, f"stopped after {limit:g} s with {got}"
            time.sleep(POLL_S)  # tcpdump writes each frame as it reads it (-U)
    except KeyboardInterrupt:
        return shown, ""

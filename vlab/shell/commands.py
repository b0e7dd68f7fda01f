"""Operator commands shared by ``vlab`` (one-shot, on a running lab) and the
lab CLI (``vlab lab up``): their arguments and what they do, defined once."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path
from typing import Iterator

from vlab.control import MAX_RESPONSE_S
from vlab.operations import LabControl, OperationError


def add_vmotion_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("vm")
    p.add_argument("host")
    p.add_argument("--stun-ms", type=float, default=100.0, help="stun time (default 100 ms)")
    p.add_argument(
        "--no-igmp-query",
        action="store_true",
        help="do not send the guest a spoofed IGMP query after the move",
    )
    p.add_argument(
        "--max-response",
        type=float,
        default=MAX_RESPONSE_S,
        help=f"max response time of that query, seconds (default {MAX_RESPONSE_S:g})",
    )


def vmotion(ctl: LabControl, a) -> str:
    move = ctl.vmotion(
        a.vm, a.host, stun_s=a.stun_ms / 1000, igmp_query=not a.no_igmp_query, max_response_s=a.max_response
    )
    return (
        f"{a.vm}: {move['from']} -> {move['to']}, stunned "
        f"{(move['resumed'] - move['stun_start']) * 1000:.0f} ms"
    )


def add_network_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("vm")
    p.add_argument("network", help="a port group or an NSX logical switch")
    p.add_argument("--vnic", default="eth0", help="the VM's vNIC (default eth0)")


def network(ctl: LabControl, a) -> str:
    moved = ctl.connect_vnic(a.vm, a.network, a.vnic)
    return f"{a.vm}.{a.vnic}: connected to {a.network} ({moved['host']} {moved['from']} -> {moved['to']})"


def add_pktcap_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--switchport", help="vNIC port, e.g. vm1a-eth0")
    p.add_argument("--capture", choices=["PortOutput", "VnicRx"], default="VnicRx")
    p.add_argument("--uplink", help="HOST/VMNIC")
    p.add_argument("--dir", choices=["rx", "tx"], default="rx", help="uplink direction")
    p.add_argument("-o", "--outfile", required=True, help="pcap file to write")
    p.add_argument("-c", "--count", type=int, default=0, help="stop after this many frames")
    p.add_argument("--seconds", type=float, default=10.0, help="stop after this long")


def pktcap(ctl: LabControl, a) -> Path:
    """Capture until ``--count`` frames or ``--seconds``; the pcap's path."""
    if bool(a.switchport) == bool(a.uplink):
        raise OperationError("give exactly one of --switchport and --uplink")
    uplink = tuple(a.uplink.split("/", 1)) if a.uplink else None
    if uplink is not None and len(uplink) != 2:
        raise OperationError(f"--uplink wants HOST/VMNIC, got {a.uplink!r}")
    cap = ctl.capture(
        a.outfile,
        port=a.switchport,
        point=a.capture,
        uplink=uplink,
        direction=a.dir,
        extra=["-c", str(a.count)] if a.count else None,
    )
    try:
        cap.proc.wait(timeout=a.seconds)
    except subprocess.TimeoutExpired:
        pass
    return cap.stop()


def add_esxtop_args(p: argparse.ArgumentParser, default_count: int) -> None:
    p.add_argument("host")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between samples")
    p.add_argument("--count", type=int, default=default_count, help="screens to print (0: until Ctrl-C)")


def esxtop_screens(ctl: LabControl, a) -> Iterator[str]:
    """One esxtop table per interval, ``--count`` of them (0: forever)."""
    from . import esxtop

    ctl.esxi(a.host)
    for _, rows in esxtop.intervals(ctl, a.host, a.interval, a.count):
        yield esxtop.format_table(rows)

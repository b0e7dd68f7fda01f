"""``vmkping`` on an emulated ESXi host: real ICMP echo requests from a
VMkernel adapter's address, in its TCP/IP stack, with iputils' ping in the
host namespace, its output rewritten into ESXi's (FreeBSD ping's) shape.

    vmkping [-c N] [-s SIZE] [-d] [-I vmkN] [-S NETSTACK | ++netstack=NAME]
            [-W SECONDS] [-i SECONDS] HOST

The source address selects the stack: a custom stack's routing table is
used only for its own addresses (``vlab.vmkernel``), as on ESXi, so
``-I``/``-S`` set the source to that vmk's address. ``-d`` sets don't
fragment: a packet larger than the vmk's MTU fails at once ("Message too
long"), one larger than the path's MTU is dropped on the way and gets no
reply, which is the transport-MTU check NSX's troubleshooting guide runs
(``vmkping ++netstack=vxlan -d -s 1572 <remote VTEP>``).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from typing import TextIO

from vlab.operations import OperationError

from .argv import raising_parser
from .hostfacts import STACK_OF

USAGE = """vmkping [args] [host]
   args:
      -c <count>     set packet count (default 3)
      -d             set DF bit (IPv4)
      -I <interface> outgoing interface, e.g. -I vmk1
      -i <interval>  set interval (secs)
      -s <size>      set the number of ICMP data bytes to be sent (default 56)
      -S <netstack>  TCP/IP netstack to use (or ++netstack=<netstack>)
      -W <time>      set timeout to wait if no responses are received (secs)"""


def parser() -> argparse.ArgumentParser:
    p = raising_parser("vmkping", ValueError)
    p.add_argument("-c", type=int, default=3, dest="count")
    p.add_argument("-d", action="store_true", dest="df")
    p.add_argument("-I", dest="interface")
    p.add_argument("-i", type=float, default=1.0, dest="interval")
    p.add_argument("-s", type=int, default=56, dest="size")
    p.add_argument("-S", dest="netstack")
    p.add_argument("-W", type=float, default=1.0, dest="timeout")
    p.add_argument("-4", action="store_true", dest="ipv4")
    p.add_argument("host")
    return p


def ping_argv(esx, a) -> list[str]:
    """iputils ping's arguments for ``a`` on ESXi host ``esx`` (pure)."""
    vmk = None
    if a.netstack is not None and a.netstack not in STACK_OF:
        raise OperationError(f"Invalid netstack instance {a.netstack} (esxcli network ip netstack list)")
    if a.interface is not None:
        vmk = next((v for v in esx.vmkernel if v.name == a.interface), None)
        if vmk is None:
            raise OperationError(f"Unknown interface '{a.interface}'")
        if a.netstack is not None and vmk.stack != STACK_OF[a.netstack]:
            raise OperationError(f"{vmk.name} is not in netstack {a.netstack}")
    elif a.netstack is not None and STACK_OF[a.netstack] != "default":
        vmk = next((v for v in esx.vmkernel if v.stack == STACK_OF[a.netstack]), None)
        if vmk is None:
            raise OperationError(f"no VMkernel adapter of {esx.name} is in netstack {a.netstack}")
    if a.count < 1 or a.size < 0 or a.interval <= 0 or a.timeout <= 0:
        raise ValueError("-c, -s, -i and -W take positive values")
    argv = [
        "ping",
        "-n",
        "-c",
        str(a.count),
        "-s",
        str(a.size),
        "-i",
        f"{a.interval:g}",
        "-W",
        f"{a.timeout:g}",
    ]
    argv += ["-M", "do" if a.df else "dont"]
    if vmk is not None:
        argv += ["-I", str(vmk.ip.ip)]
    return argv + [a.host]


_HEADER = re.compile(r"^PING (\S+) \((\S+)\)(?: from \S+ \S+)?:? (\d+)\(\d+\) bytes of data\.")
_REPLY = re.compile(r"^(\d+) bytes from ([\d.]+): icmp_seq=(\d+) (ttl=\d+) (time=\S+ ms)")
_SUMMARY = re.compile(r"^(\d+) packets transmitted, (\d+) received(?:, \+\d+ errors)?, ([\d.]+)% packet loss")
_RTT = re.compile(r"^rtt min/avg/max/mdev = ([\d.]+)/([\d.]+)/([\d.]+)/[\d.]+ ms")


def esxi_line(line: str) -> str:
    """One line of iputils ping's output as ESXi's vmkping prints it."""
    if m := _HEADER.match(line):
        return f"PING {m[1]} ({m[2]}): {m[3]} data bytes"
    if m := _REPLY.match(line):
        return f"{m[1]} bytes from {m[2]}: icmp_seq={int(m[3]) - 1} {m[4]} {m[5]}"
    if m := _SUMMARY.match(line):
        return f"{m[1]} packets transmitted, {m[2]} packets received, {float(m[3]):g}% packet loss"
    if m := _RTT.match(line):
        return f"round-trip min/avg/max = {m[1]}/{m[2]}/{m[3]} ms"
    if "message too long" in line.lower():
        return "sendto() failed (Message too long)"
    return line


def run(ctl, host: str, argv: list[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    argv = [f"-S{w.split('=', 1)[1]}" if w.startswith("++netstack=") else w for w in argv]
    try:
        cmd = ping_argv(ctl.esxi(host), parser().parse_args(argv))
    except ValueError as exc:
        print(f"vmkping: {exc}\n{USAGE}", file=err)
        return 1
    except OperationError as exc:
        print(f"vmkping: {exc}", file=err)
        return 1
    proc = ctl.popen(host, cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen_error = False
    for line in proc.stdout:
        line = esxi_line(line.rstrip("\n"))
        if line == "sendto() failed (Message too long)":
            if seen_error:
                continue  # iputils says it per packet; ESXi once
            seen_error = True
        print(line, file=out, flush=True)
    return 0 if proc.wait() == 0 else 1

"""Send hand-made Ethernet frames from inside a guest (scapy), for what a
normal stack never does: a forged source MAC, a frame to an arbitrary MAC.

    python -m experiments.tools.frames --iface eth0 --src MAC --dst MAC --count 20 [--tag TEXT]

Each frame is a UDP packet to port 9 whose payload starts with ``--tag``, so a
capture can count exactly these frames.
"""

from __future__ import annotations

import argparse
import sys

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.sendrecv import sendp


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.tools.frames")
    p.add_argument("--iface", default="eth0")
    p.add_argument("--src", required=True, help="source MAC")
    p.add_argument("--dst", required=True, help="destination MAC")
    p.add_argument("--ip-src", default="10.255.255.1")
    p.add_argument("--ip-dst", default="10.255.255.2")
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--tag", default="vlab")
    a = p.parse_args(argv)
    frame = (
        Ether(src=a.src, dst=a.dst) / IP(src=a.ip_src, dst=a.ip_dst) / UDP(sport=9, dport=9) / a.tag.encode()
    )
    sendp(frame, iface=a.iface, count=a.count, inter=0.005, verbose=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

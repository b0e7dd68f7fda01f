"""Send hand-made Ethernet frames from inside a guest (scapy), for what a
normal stack never does: a forged source MAC, a frame to an arbitrary MAC.

    python -m experiments.tools.frames --iface eth0 --src MAC --dst MAC --count 20 [--tag TEXT]
        [--vlan VID] [--icmp] [--ip-src IP --ip-dst IP] [--sport PORT]

Each frame is a UDP packet to port 9, from port 9 or ``--sport`` (with ``--icmp`` an ICMP echo request,
which the destination's stack answers) whose payload starts with ``--tag``,
so a capture can count exactly these frames. ``--vlan`` adds the guest's own
802.1Q tag, as a guest on a VGT port group (or a guest kernel without the
8021q module) sends it.
"""

from __future__ import annotations

import argparse
import sys

from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.sendrecv import sendp


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.tools.frames")
    p.add_argument("--iface", default="eth0")
    p.add_argument("--src", required=True, help="source MAC")
    p.add_argument("--dst", required=True, help="destination MAC")
    p.add_argument("--ip-src", default="10.255.255.1")
    p.add_argument("--ip-dst", default="10.255.255.2")
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--sport", type=int, default=9, help="UDP source port (a flow's identity to a hash)")
    p.add_argument("--tag", default="vlab")
    p.add_argument("--vlan", type=int, help="802.1Q VLAN ID the guest tags with")
    p.add_argument("--icmp", action="store_true", help="ICMP echo requests instead of UDP")
    a = p.parse_args(argv)
    l2 = Ether(src=a.src, dst=a.dst)
    if a.vlan is not None:
        l2 = l2 / Dot1Q(vlan=a.vlan)
    l4 = ICMP(type=8, id=0x7A9, seq=1) if a.icmp else UDP(sport=a.sport, dport=9)
    frame = l2 / IP(src=a.ip_src, dst=a.ip_dst) / l4 / a.tag.encode()
    sendp(frame, iface=a.iface, count=a.count, inter=0.005, verbose=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

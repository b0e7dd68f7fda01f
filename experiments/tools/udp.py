"""A UDP stream that guests run: ``send`` at a fixed rate, ``recv`` records
arrival times. ``recv`` on a multicast group joins it (IP_ADD_MEMBERSHIP), so
the guest's kernel programs the group's MAC into its NIC filter and sends an
IGMP report, as any real receiver does.

    python -m experiments.tools.udp recv --bind 10.0.10.21 --group 239.1.1.1 --port 5000 --out F
    python -m experiments.tools.udp send --src 10.0.10.100 --dst 239.1.1.1 --port 5000 --pps 50 --count 500

``recv`` appends one line per packet to ``--out`` as it arrives ("time seq",
time.time() on the receiver), so a run can be watched while it goes on.
"""

from __future__ import annotations

import argparse
import ipaddress
import signal
import socket
import struct
import sys
import time


def recv(args) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    group = args.group and ipaddress.ip_address(args.group)
    s.bind((str(group) if group else args.bind, args.port))
    if group:
        s.setsockopt(
            socket.IPPROTO_IP,
            socket.IP_ADD_MEMBERSHIP,
            struct.pack("4s4s", group.packed, socket.inet_aton(args.bind)),
        )
    out = open(args.out, "w", buffering=1)  # line-buffered: readable live
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    print("ready", flush=True)
    while True:
        data = s.recv(2048)
        if len(data) >= 8:
            out.write(f"{time.time():.6f} {struct.unpack('!Q', data[:8])[0]}\n")


def send(args) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((args.src, 0))
    if ipaddress.ip_address(args.dst).is_multicast:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(args.src))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 4)
    interval = 1.0 / args.pps
    start = time.monotonic()
    for seq in range(args.count):
        # Paced against the start time, so a late packet does not slow the rest.
        delay = start + seq * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        s.sendto(struct.pack("!Q", seq).ljust(args.size, b"\0"), (args.dst, args.port))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.tools.udp")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("recv")
    r.add_argument("--bind", required=True, help="the guest's own address")
    r.add_argument("--group", default=None, help="multicast group to join")
    r.add_argument("--port", type=int, default=5000)
    r.add_argument("--out", required=True)
    t = sub.add_parser("send")
    t.add_argument("--src", required=True)
    t.add_argument("--dst", required=True)
    t.add_argument("--port", type=int, default=5000)
    t.add_argument("--pps", type=float, default=50)
    t.add_argument("--count", type=int, default=100)
    t.add_argument("--size", type=int, default=64)
    args = p.parse_args(argv)
    return recv(args) if args.cmd == "recv" else send(args)


if __name__ == "__main__":
    sys.exit(main())

"""A request/response TCP application guests run (a stand-in for a web app).

    python -m experiments.tools.tcpapp serve --bind 10.10.10.11 --port 8080 --reply 2048
    python -m experiments.tools.tcpapp users --dst 10.10.10.11 --port 8080 --held 4 \
        --interval 0.05 --new-every 0.2 --seconds 10 --out F
    python -m experiments.tools.tcpapp connect --dst 10.30.0.11 --port 80 --timeout 1.5
    python -m experiments.tools.tcpapp hold --dst 10.30.0.11 --port 80 [--count N --every S]

``connect`` makes one connection and one request and prints ``ok`` or the
error's name. ``hold`` keeps one connection and makes a request for every
line it reads on stdin (or ``--count`` requests ``--every`` s apart),
printing ``ok`` or the error each time.

``serve`` answers every request line with ``--reply`` bytes. ``users``
holds ``--held`` connections open, each sending a request every
``--interval`` s and waiting for its whole reply, and opens a fresh
connection (connect, one request, reply, close) every ``--new-every`` s. It
prints "ready" once every held connection is up, and at the end writes JSON
to ``--out``: per held connection the wall-clock times of completed
requests, and per new connection its start time and whether it completed
(within ``--timeout``). Real sockets, the guest's own TCP stack: a
connection a firewall breaks stalls and retransmits as it would anywhere.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
import time


def serve(args) -> int:
    reply = b"x" * (args.reply - 1) + b"\n"
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.bind, args.port))
    srv.listen(256)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    def answer(conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as lines:
            for _ in lines:
                conn.sendall(reply)

    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=answer, args=(conn,), daemon=True).start()


def _request(sock: socket.socket, size: int) -> None:
    sock.sendall(b"GET\n")
    got = 0
    while got < size:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by peer")
        got += len(chunk)


def users(args) -> int:
    stop = time.time() + args.seconds
    held: list[list[float]] = [[] for _ in range(args.held)]
    errors: list[str] = [""] * args.held
    fresh: list[dict] = []
    socks = []
    for _ in range(args.held):
        s = socket.create_connection((args.dst, args.port), timeout=args.timeout)
        s.settimeout(None)  # a stalled connection waits; TCP retransmits meanwhile
        socks.append(s)
    print("ready", flush=True)

    def hold(i: int) -> None:
        s = socks[i]
        s.settimeout(max(0.1, stop - time.time()))
        while time.time() < stop:
            try:
                _request(s, args.reply)
            except OSError as exc:  # timeout at the end, or reset
                errors[i] = type(exc).__name__
                return
            held[i].append(time.time())
            time.sleep(args.interval)

    def open_one(t0: float, record: dict) -> None:
        try:
            with socket.create_connection((args.dst, args.port), timeout=args.timeout) as s:
                s.settimeout(args.timeout)
                _request(s, args.reply)
            record["ok"], record["done"] = True, time.time()
        except OSError as exc:
            record["error"] = type(exc).__name__

    threads = [threading.Thread(target=hold, args=(i,), daemon=True) for i in range(args.held)]
    for t in threads:
        t.start()
    next_new = time.time()
    while time.time() < stop - args.timeout:
        if time.time() >= next_new:
            record = {"start": time.time(), "ok": False}
            fresh.append(record)
            t = threading.Thread(target=open_one, args=(record["start"], record), daemon=True)
            t.start()
            threads.append(t)
            next_new += args.new_every
        time.sleep(0.01)
    for t in threads:
        t.join(timeout=max(0.0, stop - time.time()) + args.timeout + 1)
    for s in socks:
        s.close()
    with open(args.out, "w") as out:
        json.dump({"held": held, "held_errors": errors, "new": fresh}, out)
    return 0


def connect(args) -> int:
    try:
        with socket.create_connection((args.dst, args.port), timeout=args.timeout) as s:
            s.settimeout(args.timeout)
            _request(s, args.reply)
        print("ok", flush=True)
    except OSError as exc:
        print(type(exc).__name__, flush=True)
    return 0


def hold(args) -> int:
    s = socket.create_connection((args.dst, args.port), timeout=args.timeout)
    print("ready", flush=True)
    if args.count is None:
        ticks = iter(sys.stdin)  # one request per line typed
    else:
        ticks = range(args.count)
    t0 = time.monotonic()
    for n, _ in enumerate(ticks):
        if args.count is not None:
            # Request n starts n * --every after the first, however long the
            # ones before took (a user's clicks keep their pace).
            time.sleep(max(0.0, t0 + n * args.every - time.monotonic()))
        try:
            _request(s, args.reply)
            print("ok", flush=True)
        except OSError as exc:
            print(type(exc).__name__, flush=True)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--bind", required=True)
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--reply", type=int, default=2048)
    u = sub.add_parser("users")
    u.add_argument("--dst", required=True)
    u.add_argument("--port", type=int, default=8080)
    u.add_argument("--reply", type=int, default=2048)
    u.add_argument("--held", type=int, default=4)
    u.add_argument("--interval", type=float, default=0.05)
    u.add_argument("--new-every", type=float, default=0.2)
    u.add_argument("--seconds", type=float, default=10.0)
    u.add_argument("--timeout", type=float, default=1.0)
    u.add_argument("--out", required=True)
    for name in ("connect", "hold"):
        c = sub.add_parser(name)
        c.add_argument("--dst", required=True)
        c.add_argument("--port", type=int, default=8080)
        c.add_argument("--reply", type=int, default=64)
        c.add_argument("--timeout", type=float, default=3.0)
        if name == "hold":
            c.add_argument(
                "--count", type=int, help="this many requests, --every s apart (default: one per stdin line)"
            )
            c.add_argument("--every", type=float, default=1.0)
    args = p.parse_args(argv)
    return {"serve": serve, "users": users, "connect": connect, "hold": hold}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())

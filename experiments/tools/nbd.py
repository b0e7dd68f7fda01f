"""An NBD-like disk service and its backup client (seed 000's VADP/NBD flow).

The ESXi host serves a virtual disk's bytes on TCP port 902; a backup node
connects to the management address and reads a fixed amount, as a Rubrik
node does in NBD transport mode. The server runs in the host's namespace
(its kernel picks the egress vmk by route; the source address stays the one
the client connected to), the client in the backup node.

    python -m experiments.tools.nbd serve --bind 172.17.4.102 --port 902
    python -m experiments.tools.nbd read --server 172.17.4.102 --port 902 --bytes 20000000

Protocol: the client sends an 8-byte big-endian length; the server streams
that many bytes of a deterministic disk pattern and closes. ``read`` prints
one JSON line: bytes received, seconds, Mbit/s, whether the pattern matched
and how the connection ended (``eof``, ``reset``, ``timeout``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import socketserver
import struct
import sys
import time

BLOCK = 64 * 1024


def disk_block(index: int) -> bytes:
    """Block ``index`` of the emulated virtual disk (deterministic content)."""
    seed = hashlib.sha256(index.to_bytes(8, "big")).digest()
    return (seed * (BLOCK // len(seed) + 1))[:BLOCK]


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        header = b""
        while len(header) < 8:
            chunk = self.request.recv(8 - len(header))
            if not chunk:
                return
            header += chunk
        left = struct.unpack("!Q", header)[0]
        index = 0
        while left > 0:
            block = disk_block(index)[:left]
            self.request.sendall(block)
            left -= len(block)
            index += 1


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve(args) -> int:
    with _Server((args.bind, args.port), _Handler) as server:
        print("ready", flush=True)
        server.serve_forever()
    return 0


CONNECT_RETRY_S = 0.05


def _connect(args) -> socket.socket:
    """Connect as a backup client does, retrying a refused connection until
    ``--timeout``: a server started just before (a guide's ``serve &``) may
    not be listening yet."""
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            return socket.create_connection(
                (args.server, args.port),
                timeout=args.timeout,
                source_address=(args.bind, 0) if args.bind else None,
            )
        except ConnectionRefusedError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(CONNECT_RETRY_S)


def read(args) -> int:
    expected = hashlib.sha256()
    got = hashlib.sha256()
    left, index = args.bytes, 0
    while left > 0:
        block = disk_block(index)[:left]
        expected.update(block)
        left -= len(block)
        index += 1
    s = _connect(args)
    t0 = time.monotonic()
    s.sendall(struct.pack("!Q", args.bytes))
    received, end = 0, "eof"
    try:
        while received < args.bytes:
            data = s.recv(1 << 20)
            if not data:
                break
            got.update(data)
            received += len(data)
    except ConnectionResetError:
        end = "reset"
    except socket.timeout:
        end = "timeout"
    seconds = time.monotonic() - t0
    s.close()
    print(
        json.dumps(
            {
                "bytes": received,
                "wanted": args.bytes,
                "seconds": round(seconds, 4),
                "mbps": round(received * 8 / seconds / 1e6, 3) if seconds else 0.0,
                "intact": received == args.bytes and got.digest() == expected.digest(),
                "end": end,
            }
        )
    )
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.tools.nbd")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--bind", required=True)
    s.add_argument("--port", type=int, default=902)
    r = sub.add_parser("read")
    r.add_argument("--server", required=True)
    r.add_argument("--port", type=int, default=902)
    r.add_argument("--bytes", type=int, default=10_000_000)
    r.add_argument("--bind", default=None)
    r.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args(argv)
    return serve(args) if args.cmd == "serve" else read(args)


if __name__ == "__main__":
    sys.exit(main())

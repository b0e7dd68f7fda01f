"""A tiny web server and client for inside guests (the seed's browser and blog).

    python -m experiments.tools.web serve --port 80 --size 4000
    python -m experiments.tools.web get http://10.2.2.20/index.html

``serve`` answers every GET with a known page (``page(size)``), printing
"ready" once it listens; ``get`` fetches a URL with one plain HTTP/1.1
request and prints ``{"status", "bytes", "body_ok"}`` as JSON, where
body_ok says whether the body is exactly that known page.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import urlsplit

HEAD = "vlab seed 003: kacang is nuts, served over a mirrored port\n"


def page(size: int) -> bytes:
    """A recognisable body of ``size`` bytes: the heading, then numbered lines."""
    body, n = HEAD, 0
    while len(body) < size:
        body += f"line {n:05d} of the blog post\n"
        n += 1
    return body[:size].encode()


def serve(port: int, size: int) -> None:
    body = page(size)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # keep stderr quiet
            pass

    server = HTTPServer(("0.0.0.0", port), Handler)
    print("ready", flush=True)
    server.serve_forever()


def get(url: str, size: int, timeout: float) -> dict:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    # Connection: close, so the server closes as soon as it has answered and
    # the connection is over (both FINs acknowledged) soon after this returns.
    conn.request("GET", parts.path or "/", headers={"User-Agent": "vlab-jumpbox", "Connection": "close"})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return {"status": resp.status, "bytes": len(body), "body_ok": body == page(size)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.tools.web")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, default=80)
    s.add_argument("--size", type=int, default=4000)
    g = sub.add_parser("get")
    g.add_argument("url")
    g.add_argument("--size", type=int, default=4000, help="the page size the server uses")
    g.add_argument("--timeout", type=float, default=10.0)
    a = p.parse_args(argv)
    if a.cmd == "serve":
        serve(a.port, a.size)
        return 0
    print(json.dumps(get(a.url, a.size, a.timeout)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

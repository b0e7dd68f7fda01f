"""Traffic that is over before a capture stops.

Two captures of the same traffic at two points agree only if both saw all of
it: every capture is confirmed listening before the traffic starts
(``LabControl.tcpdump``), the traffic is finished before any capture stops
(this module), and ``Capture.stop()`` drains what tcpdump's socket still
holds. "Finished" is a condition the traffic itself reports, never a delay:

* ``wait_tcp_finished``: every TCP connection on a port has closed at both
  ends (each socket gone or in TIME-WAIT: both FINs sent and acknowledged), so
  every frame of it has passed every capture on its path;
* ``send_marker`` and ``wait_marker``: a tagged frame sent after the traffic,
  along the same path (a port's frames are forwarded in order), which is in a
  far capture (a mirror destination, an uplink) only once everything sent
  before it is there too. A marker is never counted: it is no HTTP, no ICMP
  and carries ``MARKER_TAG``.
"""

from __future__ import annotations

import time
from pathlib import Path

from experiments.common import guest_tool
from vlab.waiting import wait_for

MARKER_TAG = b"vlab-marker-"
# A locally administered unicast MAC no VM has: a vSwitch does not learn
# MACs, so a frame to it reaches no other VM (only the uplink), while every
# mirror session of its source port still copies it.
MARKER_DST = "02:00:5e:00:00:fe"
_BUSY = {"ESTAB", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "LAST-ACK", "CLOSING"}


def open_connections(ss_output: str) -> list[str]:
    """The lines of ``ss -Htan`` output whose connection can still send."""
    return [line for line in ss_output.splitlines() if line.split() and line.split()[0] in _BUSY]


def wait_tcp_finished(net, nodes: list[str], port: int, timeout: float = 20.0) -> None:
    """Wait until no connection to or from ``port`` in ``nodes`` can still
    send a frame."""
    query = f"ss -Htan '( sport = :{port} or dport = :{port} )'"

    def busy() -> dict[str, list[str]]:
        return {n: lines for n in nodes if (lines := open_connections(net.node(n).cmd(query)))}

    last: dict = {}

    def finished() -> bool:
        last.clear()
        last.update(busy())
        return not last

    try:
        wait_for(finished, timeout, f"TCP port {port} closed on {', '.join(nodes)}", 0.05)
    except Exception as exc:
        raise type(exc)(f"{exc}; still open: {last}") from None


def marker(name: str = "") -> str:
    """A marker tag nobody else sends."""
    return f"{MARKER_TAG.decode()}{name}-{time.monotonic_ns()}"


def send_marker(net, vm: str, mac: str, tag: str, dst: str = MARKER_DST) -> None:
    """One tagged UDP frame from ``vm``'s vNIC (``experiments.tools.frames``)."""
    guest_tool(net, vm, "frames", "--src", mac, "--dst", dst, "--count", 1, "--tag", tag)


def wait_marker(pcaps: dict[str, Path], tag: str, timeout: float = 10.0) -> None:
    """Wait until ``tag`` is in every capture file of ``pcaps``."""

    def missing() -> list[str]:
        return [k for k, p in pcaps.items() if not (p.exists() and tag.encode() in p.read_bytes())]

    try:
        wait_for(lambda: not missing(), timeout, f"the marker frame {tag}")
    except Exception as exc:
        raise type(exc)(f"{exc}: not in the captures {', '.join(missing())}") from None


def is_marker(frame: bytes) -> bool:
    return MARKER_TAG in frame


def wait_frames(pcap: Path, n: int, predicate=None, timeout: float = 10.0) -> bool:
    """Wait until ``pcap`` holds ``n`` frames (matching ``predicate``): the
    bounded traffic a measurement sent has all arrived there. Returns False
    if it has not after ``timeout`` (then the count says what did arrive and
    the verdict judges it); frames that can only be fewer are no reason to
    wait longer."""
    from experiments.common import count_frames

    try:
        wait_for(lambda: count_frames(pcap, predicate) >= n, timeout, f"{n} frames in {pcap.name}", 0.1)
        return True
    except Exception:
        return False

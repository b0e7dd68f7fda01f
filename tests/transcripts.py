"""The seeds' ESXi transcripts (``tests/golden/``) and the shape a command's
output is compared in: the same lines in the same order with the same
fields and units, values free (times, counts, addresses, bytes)."""

from __future__ import annotations

import re
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden"

# What ESXi prints about its own plumbing (the vsock between the capture
# engine and pktcap-uw), which has no counterpart in the testbed.
ESXI_PLUMBING = re.compile(
    r"^(No server port specifed|Local CID|Listen on port|Accept\.\.\.|Receive thread exiting|"
    r"Dump thread exiting)"
)


def transcripts(name: str) -> list[tuple[str, list[str]]]:
    """(command line, output lines) of each block of a golden file."""
    text = "\n".join(line for line in (GOLDEN / name).read_text().splitlines() if not line.startswith("#"))
    out = []
    for block in text.strip("\n").split("\n----\n"):
        first, *lines = block.split("\n")
        out.append((first.split("] ", 1)[1], lines))
    return out


def without_plumbing(lines: list[str]) -> list[str]:
    return [line for line in lines if not ESXI_PLUMBING.match(line)]


_SHAPES = (
    (re.compile(r"^\d\d:\d\d:\d\d\.\d{6}\[\d+\]"), "TIME[N]"),
    (re.compile(r"^0x[0-9a-f]{4}:  ([0-9a-f]{2,4} ?)+$"), "0xOFFS:  HEX"),
    (re.compile(r"\b0x[0-9a-f]+\b"), "0xN"),
    (re.compile(r"\b\d+\b"), "N"),
)


def shape(line: str) -> str:
    """A line with its values blanked: what a golden-shape test compares."""
    line = line.rstrip()
    for pattern, blank in _SHAPES:
        line = pattern.sub(blank, line)
    return line


def printed_frames(lines: list[str]):
    """(number, clock, point, vlan, frame bytes with its 802.1Q tag back) of
    each frame a transcript prints."""
    out = []
    for i, line in enumerate(lines):
        if " Captured at " not in line:
            continue
        clock, rest = line.split("[", 1)
        number = int(rest.split("]")[0])
        point = rest.split("Captured at ")[1].split(" point")[0]
        vlan = int(rest.split("VLAN tag ")[1].split(",")[0]) if "VLAN tag" in rest else None
        dump = []
        for hexline in lines[i + 2 :]:
            if not hexline.startswith("0x"):
                break
            dump.append(bytes.fromhex(hexline.split(":", 1)[1].replace(" ", "")))
        frame = b"".join(dump)
        if vlan is not None:
            frame = frame[:12] + b"\x81\x00" + vlan.to_bytes(2, "big") + frame[12:]
        out.append((i, number, clock, point, frame))
    return out

"""Reading a ping that ran into a file: which echo requests got replies, and
which were lost while later ones got theirs (those still in flight when ping
was stopped are not lost: how many depends on the round trip at that moment)."""

from __future__ import annotations

import re
from pathlib import Path


def replies(path: Path) -> list[int]:
    """The icmp_seq of every echo reply ping wrote to ``path`` so far."""
    return [int(m) for m in re.findall(r"icmp_seq=(\d+) ", path.read_text())]


def reply_times(path: Path) -> list[tuple[int, float]]:
    """(icmp_seq, wall time) of every reply of a ``ping -D`` (which stamps
    each line with the time it read the reply)."""
    text = path.read_text() if path.exists() else ""
    found = re.findall(r"\[(\d+\.\d+)\] \d+ bytes from .*?icmp_seq=(\d+) ", text)
    return [(int(seq), float(t)) for t, seq in found]


def lost(got: list[int]) -> list[int]:
    """Echo requests without a reply below the last one answered."""
    return sorted(set(range(1, max(got) + 1)) - set(got)) if got else []

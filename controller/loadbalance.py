"""Route based on physical NIC load (load-based teaming, a distributed switch
policy), as the vSphere Networking guide documents it: ports are placed as
by originating port ID, then the switch "tests the uplinks every 30
seconds, and if their load exceeds 75 percent of usage, the port ID of the
virtual machine with the highest I/O is moved to a different uplink".

Read here as: every ``SAMPLE_S`` the controller reads the bridge's port
counters (OpenFlow port stats); an uplink's utilization in a sample is the
busier of its two directions against its speed (after ``link_scale``). An
uplink is *overloaded* once every sample of the last ``WINDOW_S`` exceeded
``THRESHOLD``: its load has stayed above 75% for 30 s. Then the busiest
load-based port on it (bytes both ways over the window) moves to the least
utilized other live uplink of its team, if that one is below the
threshold (moving onto a saturated uplink helps nobody), and the switches
are notified as on any failover. A move restarts both uplinks' windows, so
one uplink gives up at most one port per 30 s.

Pure: counters in, moves out; ``app`` sends the requests and applies them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Optional

from vlab.bindings import SwitchBinding

WINDOW_S = 30.0
THRESHOLD = 0.75
SAMPLE_S = 1.0


@dataclass(frozen=True)
class Move:
    """One port moved by load-based teaming."""

    port: str
    from_uplink: str
    to_uplink: str
    utilization: float  # the overloaded uplink's lowest sample in the window
    target_utilization: float  # the destination's mean over the window


def load_based(b: SwitchBinding) -> bool:
    """Whether any port group of the bridge routes by physical NIC load."""
    return any(b.teaming(pg.name).policy == "load_based" for pg in b.switch.port_groups)


@dataclass
class LoadMonitor:
    """One bridge's counters over time: uplink utilization samples and
    per-port bytes, fed by port stats replies."""

    capacity_bps: dict[str, float]  # uplink -> its speed, bit/s
    _last: dict[str, tuple[float, int, int]] = field(default_factory=dict)  # port -> (t, tx, rx)
    _samples: dict[str, deque] = field(default_factory=dict)  # uplink -> (t, utilization)
    _io: dict[str, deque] = field(default_factory=dict)  # port -> (t, bytes both ways)

    def feed(self, now: float, counters: dict[str, tuple[int, int]]) -> None:
        """Port name -> (tx_bytes, rx_bytes) read at ``now``."""
        for port, (tx, rx) in counters.items():
            prev = self._last.get(port)
            self._last[port] = (now, tx, rx)
            if prev is None or now <= prev[0] or tx < prev[1] or rx < prev[2]:
                continue  # first reading, or counters reset (port re-added)
            dt, dtx, drx = now - prev[0], tx - prev[1], rx - prev[2]
            if port in self.capacity_bps:
                util = max(dtx, drx) * 8 / dt / self.capacity_bps[port]
                self._keep(self._samples.setdefault(port, deque()), now, util)
            else:
                self._keep(self._io.setdefault(port, deque()), now, dtx + drx)

    @staticmethod
    def _keep(series: deque, now: float, value) -> None:
        series.append((now, value))
        while series and series[0][0] <= now - WINDOW_S - SAMPLE_S:
            series.popleft()

    def _window(self, series: deque, now: float) -> list:
        return [v for t, v in series if t > now - WINDOW_S]

    def overloaded(self, now: float) -> dict[str, float]:
        """Uplinks whose every sample of the last ``WINDOW_S`` exceeded
        ``THRESHOLD`` (and whose samples cover the window), with the
        lowest of those samples."""
        out = {}
        for uplink, series in self._samples.items():
            if not series or series[0][0] > now - WINDOW_S:
                continue  # not 30 s of history yet
            window = self._window(series, now)
            if window and min(window) > THRESHOLD:
                out[uplink] = min(window)
        return out

    def utilization(self, uplink: str, now: float) -> float:
        """Mean utilization of ``uplink`` over the window (0 without samples)."""
        window = self._window(self._samples.get(uplink, deque()), now)
        return sum(window) / len(window) if window else 0.0

    def io(self, port: str, now: float) -> int:
        """Bytes ``port`` moved both ways over the window."""
        return sum(self._window(self._io.get(port, deque()), now))

    def restart(self, uplinks: set[str]) -> None:
        """Forget ``uplinks``' samples: their load changed by a move."""
        for u in uplinks:
            self._samples.pop(u, None)


def rebalance(
    b: SwitchBinding, pins: dict[str, Optional[str]], monitor: LoadMonitor, now: float
) -> list[Move]:
    """The moves load-based teaming makes on bridge ``b`` now (``pins``:
    ``vswitch.pinning(b)``), at most one per overloaded uplink."""
    moves = []
    busy = monitor.overloaded(now)
    taken: set[str] = set()
    for uplink in sorted(busy):
        if uplink in taken:
            continue
        candidates = [
            p
            for p in b.local_ports()
            if pins.get(p.name) == uplink and b.teaming(p.port_group).policy == "load_based"
        ]
        if not candidates:
            continue
        port = max(candidates, key=lambda p: (monitor.io(p.name, now), p.name))
        team = b.teaming(port.port_group)
        down = b.down_for(team)
        others = [
            u for u in team.active if u != uplink and u not in down and u not in busy and u not in taken
        ]
        if not others:
            continue
        target = min(others, key=lambda u: (monitor.utilization(u, now), u))
        load = monitor.utilization(target, now)
        if load >= THRESHOLD:
            continue
        moves.append(Move(port.name, uplink, target, round(busy[uplink], 3), round(load, 3)))
        taken |= {uplink, target}
    monitor.restart(taken)
    return moves

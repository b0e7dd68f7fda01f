"""Fidelity checks: was the machine able to emulate what the lab asked for?

A result is only as good as the emulation under it. Each experiment records,
next to its measurements:

* CPU load over its lab sessions (all cores, from /proc/stat): a saturated
  machine stretches timings and caps throughput;
* drops at the shaping queues (htb on every uplink, both ends): fine for a
  TCP test that fills the link, fatal for one that counts frames;
* measured vs configured link rate, where the experiment drives a link at
  its full rate.

``checks`` turns those into pass/fail lines with their limits; a result with a
failed check is reported as untrustworthy instead of as a finding
(experiments/report.py).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

CPU_LIMIT_PCT = 90.0
RATE_MIN_RATIO = 0.9


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


@dataclass
class CpuMeter:
    """Average CPU load between ``start()`` and ``stop()``; accumulates over
    several sessions of one experiment."""

    busy: int = 0
    total: int = 0
    seconds: float = 0.0
    _start: tuple = field(default=(0, 0, 0.0), repr=False)

    def start(self) -> "CpuMeter":
        b, t = _cpu_times()
        self._start = (b, t, time.monotonic())
        return self

    def stop(self) -> None:
        b, t = _cpu_times()
        b0, t0, s0 = self._start
        self.busy, self.total = self.busy + b - b0, self.total + t - t0
        self.seconds += time.monotonic() - s0

    @property
    def percent(self) -> float:
        return round(100.0 * self.busy / self.total, 1) if self.total else 0.0


_DROPPED = re.compile(r"dropped (\d+)")


def shaping_drops(net) -> dict[str, int]:
    """Packets dropped by the qdiscs of every ESXi uplink, at both ends."""
    drops = {}
    fabric = net.node("fabric")
    for host in net.lab.esxi_hosts:
        node = net.node(host.name)
        for up in host.uplinks:
            for where, n, dev in (
                (f"{host.name}/{up.name}", node, up.name),
                (f"{up.switch}-{up.port}", fabric, f"{up.switch}-{up.port}"),
            ):
                drops[where] = queue_drops(n.cmd(f"tc -s qdisc show dev {dev}"))
    return drops


def queue_drops(tc_stats: str) -> int:
    """Packets the queueing qdiscs of ``tc -s qdisc show`` dropped. The
    clsact hook is not one: what it drops is a fault the experiment injected
    on purpose (``vlab.operations.faults``), not a shaper's overflow."""
    blocks = re.split(r"^(?=qdisc )", tc_stats, flags=re.M)
    return sum(
        int(x)
        for b in blocks
        if not b.startswith(("qdisc clsact", "qdisc ingress"))
        for x in _DROPPED.findall(b)
    )


def checks(
    cpu_percent: float,
    drops: dict[str, int],
    *,
    frames_counted: bool,
    rates: dict[str, tuple[float, float]] | None = None,
) -> list[dict]:
    """Fidelity checks with their limits. ``rates``: name -> (measured,
    configured) Mbit/s for links the experiment fills."""
    out = [
        {
            "check": "cpu_load",
            "value": cpu_percent,
            "limit": f"<= {CPU_LIMIT_PCT}%",
            "ok": cpu_percent <= CPU_LIMIT_PCT,
        }
    ]
    total = sum(drops.values())
    if frames_counted:
        out.append(
            {"check": "no_shaping_drops", "value": total, "limit": "0 (frames are counted)", "ok": total == 0}
        )
    else:
        # TCP fills the link, so the queues drop by design and no frame count
        # depends on them: nothing here can fail, and the report says so.
        out.append(
            {
                "check": "shaping_drops",
                "value": total,
                "limit": "none (TCP fills the link; no frames are counted)",
                "ok": None,
            }
        )
    for name, (measured, configured) in (rates or {}).items():
        ratio = measured / configured if configured else 0.0
        out.append(
            {
                "check": f"link_rate {name}",
                "value": round(ratio, 3),
                "limit": f">= {RATE_MIN_RATIO} of configured",
                "ok": ratio >= RATE_MIN_RATIO,
            }
        )
    for c in out:
        c["status"] = STATUS[c["ok"]]
    return out


# What a check's ``ok`` means in a result and in REPORT.md.
STATUS = {True: "met", False: "not met", None: "not measured"}


def failed(result: dict) -> list[dict]:
    """The checks a result did not meet (a check not measured is not failed)."""
    return [c for c in result.get("fidelity", {}).get("checks", []) if c["ok"] is False]


def not_measured(result: dict) -> list[dict]:
    return [c for c in result.get("fidelity", {}).get("checks", []) if c["ok"] is None]


def summary(cpu: "CpuMeter", drops: dict[str, int], *, frames_counted: bool) -> dict:
    """The ``fidelity`` block of a result: CPU load, shaping drops, checks."""
    return {
        "cpu_percent": cpu.percent,
        "shaping_drops": drops,
        "checks": checks(cpu.percent, drops, frames_counted=frames_counted),
    }


def guards(scope: dict[str, tuple[str, ...]], check: str, claim: str) -> bool:
    """Whether a fidelity check bears on a claim. An experiment's
    ``FIDELITY_SCOPE`` maps a check name (or its first word, like
    "link_rate") to the claims it guards; a check not listed guards every
    claim (CPU load and counted drops stretch or lose anything)."""
    for name in (check, check.split()[0]):
        if name in scope:
            return claim in scope[name]
    return True


def failed_for(result: dict, claim: str, scope: dict[str, tuple[str, ...]]) -> list[dict]:
    """The failed checks that make one claim's verdict untrustworthy."""
    return [c for c in failed(result) if guards(scope, c["check"], claim)]


def trustworthy(result: dict) -> bool:
    return not failed(result)

"""esxtop's network screen for an emulated ESXi host.

One row per vSwitch port: uplinks (vmnicN), VMkernel adapters and vNICs, with
esxtop's columns: PKTTX/s, MbTX/s, PKTRX/s, MbRX/s, %DRPTX, %DRPRX and
TEAM-PNIC (the uplink a port transmits on). Counters come live from each
bridge's datapath (``ovs-ofctl dump-ports``); rates are differences between
two samples.

Direction is the port's own, as in esxtop: a vmk or vNIC *transmits* what
the vSwitch receives from it, while an uplink transmits what the vSwitch
sends out of it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .textable import render

COLUMNS = (
    "PORT-ID",
    "USED-BY",
    "TEAM-PNIC",
    "DNAME",
    "PKTTX/s",
    "MbTX/s",
    "PKTRX/s",
    "MbRX/s",
    "%DRPTX",
    "%DRPRX",
)


@dataclass(frozen=True)
class Sample:
    """Counters of every port of one host at one moment (port's own view)."""

    t: float
    ports: dict  # name -> {"bridge", "port_num", "kind", "tx_pkts", ...}


def sample(ctl, host: str) -> Sample:
    """Read every port's counters on ``host`` (a ``LabControl``)."""
    ovs = ctl.ovs(host)
    pinning = ctl.applied().get("pinning", {}).get(host, {})
    # What a port is comes from its binding, never from its name: esxtop
    # shows uplinks, VMkernel adapters and vNICs, not the bridge's own port,
    # capture ports or tunnel ports.
    # PORT-ID is the port's ESXi number, the one net-stats -l and pktcap-uw use.
    ports_of = {p.name: (p.kind, b.port_num(p)) for b in ctl.bindings(host) for p in b.ports}
    ports = {}
    t = time.time()
    for bridge in ovs.vsctl("list-br").split():
        for name, c in ovs.port_stats(bridge).items():
            kind, number = ports_of.get(name, (None, 0))
            if kind not in ("uplink", "vmk", "vnic"):
                continue
            uplink = kind == "uplink"
            # Switch view -> port view: swap for everything but uplinks.
            mine, theirs = ("tx", "rx") if uplink else ("rx", "tx")
            ports[name] = {
                "bridge": bridge,
                "port_num": number,
                "kind": kind,
                "team_pnic": name if uplink else pinning.get(name),
                "tx_pkts": c.get(f"{mine}_pkts", 0),
                "tx_bytes": c.get(f"{mine}_bytes", 0),
                "tx_drop": c.get(f"{mine}_drop", 0),
                "rx_pkts": c.get(f"{theirs}_pkts", 0),
                "rx_bytes": c.get(f"{theirs}_bytes", 0),
                "rx_drop": c.get(f"{theirs}_drop", 0),
            }
    return Sample(t, ports)


COUNTERS = ("tx_pkts", "tx_bytes", "tx_drop", "rx_pkts", "rx_bytes", "rx_drop")


def counts(before: Sample, after: Sample) -> dict[str, dict[str, int]]:
    """Per port, what each counter grew by between two samples (a port new
    since ``before`` counts from zero)."""
    return {
        name: {k: a[k] - before.ports.get(name, {}).get(k, 0) for k in COUNTERS}
        for name, a in after.ports.items()
    }


def rates(before: Sample, after: Sample) -> list[dict]:
    """esxtop rows for the interval between two samples."""
    dt = max(after.t - before.t, 1e-6)
    grown = counts(before, after)
    rows = []
    for name, a in sorted(after.ports.items(), key=lambda kv: kv[1]["port_num"]):
        d = grown[name]
        used_by = name.rsplit("-", 1)[0] if a["kind"] == "vnic" else name
        rows.append(
            {
                "PORT-ID": a["port_num"],
                "USED-BY": used_by,
                "TEAM-PNIC": a["team_pnic"] or "void",
                "DNAME": a["bridge"],
                "PKTTX/s": round(d["tx_pkts"] / dt, 2),
                "MbTX/s": round(d["tx_bytes"] * 8 / dt / 1e6, 3),
                "PKTRX/s": round(d["rx_pkts"] / dt, 2),
                "MbRX/s": round(d["rx_bytes"] * 8 / dt / 1e6, 3),
                "%DRPTX": _pct(d["tx_drop"], d["tx_pkts"] + d["tx_drop"]),
                "%DRPRX": _pct(d["rx_drop"], d["rx_pkts"] + d["rx_drop"]),
            }
        )
    return rows


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def format_table(rows: list[dict]) -> str:
    return render(rows, COLUMNS, right=True)

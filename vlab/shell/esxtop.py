"""esxtop's network screen for an emulated ESXi host.

One row per vSwitch port: uplinks (vmnicN), VMkernel adapters and vNICs, with
esxtop's columns: PKTTX/s, MbTX/s, PKTRX/s, MbRX/s, %DRPTX, %DRPRX and
TEAM-PNIC (the uplink a port transmits on). Counters come live from each
bridge's datapath (``ovs-ofctl dump-ports``); rates are differences between
two samples. %DRPTX and %DRPRX count OVS's port drops and the vSwitch
pipeline's drop flows (``pipeline_drops``), by the port the frame came in
by (forged transmits, reverse teaming, a VLAN or destination refused, a
DFW rule, ...). OVS adds a
frame to its flow's count when its revalidator pushes the datapath's
statistics (about every 0.5 s), so a drop can show an interval late.

Direction is the port's own, as in esxtop: a vmk or vNIC *transmits* what
the vSwitch receives from it, while an uplink transmits what the vSwitch
sends out of it.
"""

from __future__ import annotations

import csv
import sys
import time
from dataclasses import dataclass
from typing import Optional, TextIO

from controller.dropcapture import EXPOSED
from vlab.operations import OperationError

from .argv import raising_parser
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
    bindings = ctl.bindings(host)
    ports_of = {
        p.name: (p.kind, b.port_num(p), p.owner if p.kind == "vnic" else p.name)
        for b in bindings
        for p in b.ports
    }
    ofports = {(b.bridge, p.ofport): p.name for b in bindings for p in b.ports}
    ports = {}
    t = time.time()
    for bridge in ovs.vsctl("list-br").split():
        dropped = {ofports.get((bridge, n)): k for n, k in pipeline_drops(ovs.flow_stats(bridge)).items()}
        for name, c in ovs.port_stats(bridge).items():
            kind, number, used_by = ports_of.get(name, (None, 0, name))
            if kind not in ("uplink", "vmk", "vnic"):
                continue
            uplink = kind == "uplink"
            # Switch view -> port view: swap for everything but uplinks.
            mine, theirs = ("tx", "rx") if uplink else ("rx", "tx")
            ports[name] = {
                "bridge": bridge,
                "port_num": number,
                "used_by": used_by,
                "kind": kind,
                "team_pnic": name if uplink else pinning.get(name),
                "tx_pkts": c.get(f"{mine}_pkts", 0),
                "tx_bytes": c.get(f"{mine}_bytes", 0),
                "tx_drop": c.get(f"{mine}_drop", 0),
                "rx_pkts": c.get(f"{theirs}_pkts", 0),
                "rx_bytes": c.get(f"{theirs}_bytes", 0),
                "rx_drop": c.get(f"{theirs}_drop", 0),
                # What the pipeline dropped of what came in by the port: a
                # vNIC's or vmk's transmits, an uplink's receives.
                "rx_pdrop" if uplink else "tx_pdrop": dropped.get(name, 0),
                "tx_pdrop" if uplink else "rx_pdrop": 0,
            }
    return Sample(t, ports)


def pipeline_drops(flows) -> dict[int, int]:
    """Frames the vSwitch pipeline dropped, by the OpenFlow port they came
    in by: the packet counts of its drop flows (``ovs.flow_stats``), the
    ones a Drop capture turned into copies for the controller included
    (the frame is dropped all the same). Every drop flow but the
    distributed router's no-route matches its frames' port, the refusals of
    vs_in_port (forged transmits, a tag a port may not send) and vs_forward
    (a VLAN no port group carries, unknown unicast from an uplink) included:
    band ``refused``. Not counted: a frame no flow takes at all (a table
    miss in the NSX stages, such as a VNI no VM of the host is on); the Drop
    capture sees those."""
    out: dict[int, int] = {}
    for cookie, in_port, packets, actions in flows:
        if in_port is not None and (actions == "drop" or cookie & EXPOSED):
            out[in_port] = out.get(in_port, 0) + packets
    return out


COUNTERS = ("tx_pkts", "tx_bytes", "tx_drop", "tx_pdrop", "rx_pkts", "rx_bytes", "rx_drop", "rx_pdrop")


def counts(before: Sample, after: Sample) -> dict[str, dict[str, int]]:
    """Per port, what each counter grew by between two samples (a port new
    since ``before`` counts from zero)."""
    # A flow the controller replaced starts its count again: never below zero.
    return {
        name: {k: max(0, a[k] - before.ports.get(name, {}).get(k, 0)) for k in COUNTERS}
        for name, a in after.ports.items()
    }


def rates(before: Sample, after: Sample) -> list[dict]:
    """esxtop rows for the interval between two samples."""
    dt = max(after.t - before.t, 1e-6)
    grown = counts(before, after)
    rows = []
    for name, a in sorted(after.ports.items(), key=lambda kv: kv[1]["port_num"]):
        d = grown[name]
        rows.append(
            {
                "PORT-ID": a["port_num"],
                "USED-BY": a["used_by"],
                "TEAM-PNIC": a["team_pnic"] or "void",
                "DNAME": a["bridge"],
                "PKTTX/s": round(d["tx_pkts"] / dt, 2),
                "MbTX/s": round(d["tx_bytes"] * 8 / dt / 1e6, 3),
                "PKTRX/s": round(d["rx_pkts"] / dt, 2),
                "MbRX/s": round(d["rx_bytes"] * 8 / dt / 1e6, 3),
                # OVS's own drops are not in its packet counts; the
                # pipeline's are (the port did pass the frame to the switch).
                "%DRPTX": _pct(d["tx_drop"] + d["tx_pdrop"], d["tx_pkts"] + d["tx_drop"]),
                "%DRPRX": _pct(d["rx_drop"] + d["rx_pdrop"], d["rx_pkts"] + d["rx_drop"]),
            }
        )
    return rows


def intervals(ctl, host: str, delay: float, count: int = 0):
    """(end time, esxtop rows) of each ``delay``-second interval on ``host``,
    ``count`` of them (0: until interrupted): esxtop's refresh."""
    before, shown = sample(ctl, host), 0
    while count == 0 or shown < count:
        time.sleep(delay)  # the refresh period
        after = sample(ctl, host)
        yield after.t, rates(before, after)
        before, shown = after, shown + 1


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def format_table(rows: list[dict]) -> str:
    return render(rows, COLUMNS, right=True)


# -- esxtop on the host's PATH ---------------------------------------------------------
# Batch mode (-b) writes what ESXi writes: Windows perfmon CSV, every field
# quoted, one column per counter named \\HOST\Network Port(DNAME:PORT-ID:USED-BY)\COUNTER,
# one row per sample. ESXi's batch output holds every screen (CPU, memory,
# disk, ...); here only the network screen exists, so only its counters.
BATCH_COUNTERS = (
    ("PKTTX/s", "Packets Transmitted/sec"),
    ("MbTX/s", "MBits Transmitted/sec"),
    ("PKTRX/s", "Packets Received/sec"),
    ("MbRX/s", "MBits Received/sec"),
    ("%DRPTX", "% Outbound Packets Dropped"),
    ("%DRPRX", "% Received Packets Dropped"),
)
BATCH_CLOCK = "(PDH-CSV 4.0) (UTC)(0)"

USAGE = """usage: esxtop [-b] [-d delay] [-n iterations]
    -b    batch mode: CSV on stdout (the network screen's counters)
    -d    seconds between updates (default 5; ESXi's minimum is 2, the testbed takes any > 0)
    -n    number of updates, then exit (default: until Ctrl-C)
    The testbed has esxtop's network screen (n) only."""


def batch_header(host: str, rows: list[dict]) -> list[str]:
    ports = [f"\\\\{host}\\Network Port({r['DNAME']}:{r['PORT-ID']}:{r['USED-BY']})" for r in rows]
    return [BATCH_CLOCK] + [f"{p}\\{name}" for p in ports for _, name in BATCH_COUNTERS]


def batch_row(t: float, columns: list[tuple[int, str]], rows: list[dict]) -> list[str]:
    """One sample at ``t`` in the header's order; a port gone since the
    header (vMotion) has empty fields, as a perfmon CSV has."""
    by_port = {(r["PORT-ID"], r["DNAME"]): r for r in rows}
    fields = [time.strftime("%m/%d/%Y %H:%M:%S", time.gmtime(t))]
    for key in columns:
        r = by_port.get(key)
        fields += [("" if r is None else str(r[col])) for col, _ in BATCH_COUNTERS]
    return fields


def run(ctl, host: str, argv: list[str], out: Optional[TextIO] = None, err: Optional[TextIO] = None) -> int:
    """esxtop on ``host`` with ESXi's options; its exit code."""
    out, err = out or sys.stdout, err or sys.stderr

    p = raising_parser("esxtop", ValueError)
    p.add_argument("-b", action="store_true", dest="batch")
    p.add_argument("-d", type=float, default=5.0, dest="delay")
    p.add_argument("-n", type=int, default=0, dest="iterations")
    p.add_argument("-h", "--help", action="store_true")
    try:
        a = p.parse_args(argv)
        if a.delay <= 0 or a.iterations < 0:
            raise ValueError("-d takes a positive number of seconds, -n a count")
        ctl.esxi(host)
    except ValueError as exc:
        print(f"esxtop: {exc}\n{USAGE}", file=err)
        return 1
    except OperationError as exc:
        print(f"esxtop: {exc}", file=err)
        return 1
    if a.help:
        print(USAGE, file=out)
        return 0
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n") if a.batch else None
    columns = None
    try:
        for t, rows in intervals(ctl, host, a.delay, a.iterations):
            if writer is not None:
                if columns is None:
                    columns = [(r["PORT-ID"], r["DNAME"]) for r in rows]
                    writer.writerow(batch_header(host, rows))
                writer.writerow(batch_row(t, columns, rows))
                out.flush()
            else:
                clock = time.strftime("%I:%M:%S%p", time.localtime(t)).lstrip("0").lower()
                print(f"{clock}  {host}  network ({len(rows)} ports, every {a.delay:g} s)", file=out)
                print(format_table(rows) + "\n", file=out, flush=True)
    except KeyboardInterrupt:
        pass
    return 0

"""The files through which the testbed and the controller talk, in a run's
directory (the OpenFlow channel is for switches; this is vCenter's API).

* ``nodes.json``    testbed -> controller: the PID of every node (namespace),
                    so the controller's hostd can read guests' vNIC filters.
* ``desired.json``  testbed -> controller: what vCenter was asked to do:
                    vNIC placement (vMotion, reconnect), open PortOutput
                    capture sessions, post-vMotion options. Has a generation.
* ``applied.json``  controller -> testbed: the generation programmed into
                    every connected switch (after a barrier), what hostd sees
                    of each guest, current uplink pinning and uplinks down.
* ``nsx.json``      controller -> anyone: the NSX controller tables (VTEP,
                    MAC and ARP table per logical switch), labs with nsx only.
* ``events.jsonl``  controller -> anyone: timestamped failovers, RARPs and
                    IGMP queries sent, one JSON object per line.

Writers replace files atomically, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

NODES, DESIRED, APPLIED, EVENTS = "nodes.json", "desired.json", "applied.json", "events.jsonl"
NSX_TABLES = "nsx.json"
SNOOPED = "ip_discovery.json"  # what ARP/DHCP snooping learned, kept across controller restarts


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def append_event(run_dir: Path, event: dict) -> None:
    with open(Path(run_dir) / EVENTS, "a") as f:
        f.write(json.dumps(event, sort_keys=True) + "\n")


def read_events(run_dir: Path) -> list[dict]:
    try:
        lines = (Path(run_dir) / EVENTS).read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]

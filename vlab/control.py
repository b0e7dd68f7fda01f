"""The files through which the testbed and the controller talk, in a run's
directory (the OpenFlow channel is for switches; this is vCenter's API).
Writers replace files atomically, so a reader never sees half a file.

``nodes.json`` (testbed -> controller, written once at bring-up)
    ``lab_file``   the lab's path;
    ``lab``        the lab as brought up (its data, as the file would give
                   it): what ``config_edits`` replay on, so editing the file
                   later never changes a running lab;
    ``pids``       node name -> PID of its shell (its network namespace), so
                   the controller's hostd can read guests' vNIC filters and
                   ``LabControl`` can enter any node.

``desired.json`` (testbed -> controller: what vCenter was asked to do)
    ``generation``    counter; ``LabControl.request`` bumps it and waits for
                      ``applied.json`` to reach it;
    ``placement``     vNIC port -> ``{"host", "ofport"}``, only for ports
                      moved (vMotion) or reconnected (new port ID); the rest
                      are where the lab puts them;
    ``captures``      vNIC port -> the PIDs of its open PortOutput capture
                      sessions;
    ``drop_captures`` ESXi host -> the PIDs of its open Drop capture sessions
                      (pktcap-uw ``--capture Drop``: ``controller.dropcapture``);
                      a session whose process has died (a SIGKILLed
                      pktcap-uw never ends its session) counts as closed
                      (``live_sessions``);
    ``moves``         vNIC port -> the options of its last vMotion or
                      connect to a new port: ``seq`` (unique per move),
                      ``reason`` (``vmotion``, the default, or ``connect``:
                      a reconnect or a new network, the RARP's reason),
                      ``igmp_query`` (bool), ``max_response_s``,
                      ``query_source`` (the spoofed query's source IP)
                      (``controller.vmotion``);
    ``dfw_sessions``  vNIC port -> the DFW connections its VM carried over,
                      each ``[proto, src, sport, dst, dport, expires]``
                      (``expires``: wall-clock time the source's conntrack
                      entry would age out, or null) (``controller.dfw``);
    ``config_edits``  the administrator's changes to the lab since bring-up
                      (esxcli ``... set``, ``portgroup add/remove``), in
                      order: the running lab is the lab file with these
                      replayed (``vlab.lab.edits``); the controller
                      recompiles every bridge from it.

``applied.json`` (controller -> testbed, after every change is acknowledged
by a barrier on each affected switch)
    ``generation``    the last ``desired.json`` generation programmed;
    ``connected``     dpids (16 hex digits) of the connected vSwitches;
    ``guests``        vNIC port -> what hostd sees of the guest's NIC
                      (``vlab.bindings.GuestNic``: effective MAC,
                      promiscuous, allmulti, multicast filter);
    ``uplinks_down``  ESXi host -> uplinks whose link is down;
    ``pinning``       ESXi host -> port -> the uplink it uses (or null; an
                      IP-hash port: its first bucket's; a port in shotgun:
                      the first of the uplinks it sends on);
    ``flows``         dpid -> number of flows installed;
    ``packet_ins``    how many IP-discovery copies arrived;
    ``beacon_failed`` ESXi host -> uplinks beacon probing failed (links up);
    ``shotgun``       ESXi host -> vSwitches whose beacon-probing ports send
                      on every uplink (no uplink hears another);
    ``load_moves``    ESXi host -> port -> the uplink load-based teaming
                      moved it to (``controller.loadbalance``).

``synced/<dpid>`` (controller -> testbed): ``{"host", "flows",
"generation"}`` after the barrier that follows a (re)connect's full resync.

``nsx.json`` (controller -> anyone, labs with ``nsx`` only): the NSX
controller tables per logical switch: VTEP, MAC and ARP table
(``controller.nsx.NsxTables.to_json``).

``ip_discovery.json`` (controller -> itself): what ARP/DHCP snooping learned,
port -> method -> IPs, so a restarted controller keeps it.

``teaming.json`` (controller -> itself): per bridge (dpid, 16 hex digits)
the teaming decisions a restarted controller must not forget, or ports
would snap back to uplinks the physical switches no longer deliver them
on: beacon probing's ``beacon_failed`` and ``shotgun``, the ``teams`` as
the last failover or failback left every port group (only failback no
makes them differ from the configuration), load-based teaming's
``load_moves``.

``events.jsonl`` (controller -> anyone): one JSON object per line, with
``t`` (wall clock) and ``event``: ``uplink_down``/``uplink_up`` (host,
uplink), ``rarp`` (host, uplink, mac, vlan, port, reason), ``vmotion_port_up``
and ``vnic_connected`` (host, port: a moved or reconnected vNIC's port came
up), ``igmp_query`` (host, port, source, max_response_s),
``ip_discovered`` (host, port, method, ip, mac), ``beacon`` (host, vswitch,
failed, shotgun: beacon probing's new verdict), ``load_balanced`` (host,
vswitch, port, from_uplink, to_uplink, utilization, target_utilization: a
load-based teaming move).

``drops.jsonl`` (controller -> pktcap-uw): while a host has a Drop capture
session, one JSON object per frame its pipeline dropped: ``t``, ``host``,
``bridge``, ``in_port`` (the port's name), ``table``, ``stage`` (the
pipeline stage that dropped it), ``reason`` (``controller.explain.drop_reason``)
and ``frame`` (hex, the frame as that stage had it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from .bindings import Placement

NODES, DESIRED, APPLIED, EVENTS = "nodes.json", "desired.json", "applied.json", "events.jsonl"
NSX_TABLES = "nsx.json"
SNOOPED = "ip_discovery.json"  # what ARP/DHCP snooping learned, kept across controller restarts
TEAMING = "teaming.json"  # teaming decisions, kept across controller restarts
DROPS = "drops.jsonl"  # what the pipelines dropped while a Drop capture ran


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


# Defaults of a move's options (``desired.json`` ``moves``): the spoofed IGMP
# general query a moved VM gets (controller.vmotion).
QUERY_MAC = "00:50:56:00:ff:fe"  # its source MAC
QUERY_SOURCE = "0.0.0.0"  # its source IP, as a querier without an address
MAX_RESPONSE_S = 10.0  # its max response time: the guest re-reports within this


def pid_running(pid: int) -> bool:
    """Alive and not a zombie (a child that exited stays in /proc until its
    parent reaps it, yet has nothing left to do)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def live_sessions(sessions, alive=pid_running) -> frozenset[str]:
    """The keys (ports, hosts) of ``desired.json``'s ``captures`` or
    ``drop_captures`` that have a session whose process still runs."""
    if isinstance(sessions, list):  # a run directory written before sessions had PIDs
        return frozenset(sessions)
    return frozenset(k for k, pids in (sessions or {}).items() if any(alive(int(p)) for p in pids))


def with_session(sessions, key: str, pid: int, open_: bool) -> dict[str, list[int]]:
    """``sessions`` with ``pid``'s session of ``key`` opened or closed (and
    every dead process's dropped, so killed sessions do not pile up)."""
    out = (
        {}
        if isinstance(sessions, list)
        else {k: [p for p in v if pid_running(int(p))] for k, v in (sessions or {}).items()}
    )
    pids = set(out.get(key, [])) - {pid} | ({pid} if open_ else set())
    out[key] = sorted(pids)
    return {k: v for k, v in out.items() if v}


def config_edits(desired: Optional[dict]) -> list[dict]:
    """``desired.json``'s journal of lab changes (``vlab.lab.edits``)."""
    return list((desired or {}).get("config_edits", []))


def placement_of(desired: dict) -> dict[str, Placement]:
    """``desired.json``'s placement, as ``Placement``s."""
    return {port: Placement(p["host"], p["ofport"]) for port, p in desired.get("placement", {}).items()}

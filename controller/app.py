"""The os-ken application: vCenter/NSX Manager's view pushed to every vSwitch.

A thin driver around ``ControllerState`` and the pure compilers:

* a vSwitch connects -> install its compiled flows (full resync), barrier,
  then write ``synced/<dpid>``;
* an uplink's link goes down or up (OpenFlow port status: failure detection
  by link status) -> recompile, install the difference, and send RARPs for
  ports whose uplink moved when their port group notifies switches;
* hostd sees a guest change its vNIC filter (MAC, promiscuous, multicast),
  or the testbed asks for a new placement or capture session
  (``desired.json``) -> recompile and install the difference;
* every second, a beacon out of each uplink of a team with beacon probing;
  beacons heard (packet-ins) decide which uplinks are failed
  (``controller.beacon``) -> re-pin, install, RARPs, as for a dead link;
* every second, the port counters of each bridge with load-based teaming;
  an uplink loaded above 75% for 30 s gives up its busiest port
  (``controller.loadbalance``) -> re-pin, install, RARPs;
* a vNIC that vMotioned comes up on its new host -> RARP from its MAC and,
  if asked, a spoofed IGMP general query to the guest;
* a switch copies a VM's ARP frame or a DHCP ACK on a logical switch (IP
  discovery, ``controller.ipdiscovery``) -> learn the binding into the NSX
  ARP table and recompile.

After every change is acknowledged by a barrier on each affected switch the
driver writes ``applied.json`` (see ``vlab.control``). No forwarding is
learned from packet-ins: the only ones are IP-discovery copies, counted in
``applied.json`` as ``packet_ins``, and beacons (beacon probing's verdicts are
``beacon_failed`` and ``shotgun`` there; load-based teaming's moves are
``load_moves``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Optional

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3

from vlab import control, naming
from vlab.lab.edits import edited_lab
from vlab.lab.load import LabError, load_lab, read_lab_data

from . import beacon, dropcapture, failover, ipdiscovery, loadbalance, notify, ofdriver, vmotion
from .explain import drop_reason
from .failover import Notification
from .flows import COOKIES
from .hostd import GuestObserver, WatchedNic
from .pipeline import STAGES, FlowSpec
from .simulate import frame_of
from .state import ControllerState
from .vswitch import pinning

LOG = logging.getLogger("vlab.controller")
POLL_S = 0.02  # how often desired.json is looked at
GUEST_POLL_S = 0.1  # how often hostd reads the guests' vNIC filters


class Settings:
    """Set by ``controller.__main__`` before os-ken instantiates the app."""

    lab_file: str = ""
    state_dir: str = ""


class VSwitchController(app_manager.OSKenApp):
    """Programs each ESXi host's vSwitch bridges from the lab and its changes."""

    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.configure(load_lab(Settings.lab_file), Path(Settings.state_dir), Settings.lab_file)
        # A daemon thread: SIGTERM (sys.exit in the main thread) must not wait for it.
        for poll, period, name in (
            (self._poll_desired, POLL_S, "desired-watch"),
            (self._poll_guests, GUEST_POLL_S, "hostd-watch"),
        ):
            threading.Thread(target=self._watch, args=(poll, period, name), name=name, daemon=True).start()
        threading.Thread(target=self._beacons, name="beacon-probing", daemon=True).start()
        threading.Thread(target=self._load_samples, name="load-based-teaming", daemon=True).start()

    def configure(self, lab, run_dir: Path, lab_file: Optional[str] = None) -> None:
        """Everything but os-ken's own set-up and the hostd thread: the unit
        tests drive a controller built by this alone against a fake switch
        (tests/unit/fakeswitch.py). ``lab_file``: where ``lab`` was read
        from, to replay the administrator's changes on (``config_edits``)."""
        self.run_dir = Path(run_dir)
        self.lab_file = lab_file
        self._edits: list[dict] = []
        self._lab_data = None
        if lab_file:
            # The lab as brought up (nodes.json), with the administrator's
            # changes replayed before anything else reads it: a restarted
            # controller's teaming.json, beacon verdicts and first compile
            # are the running lab's, not the file's.
            nodes = control.read_json(self.run_dir / control.NODES) or {}
            self._lab_data = nodes.get("lab") or read_lab_data(lab_file)
            edits = control.config_edits(control.read_json(self.run_dir / control.DESIRED))
            try:
                lab = edited_lab(lab_file, edits, self._lab_data)
                self._edits = edits
            except LabError as exc:
                LOG.error("configuration changes not replayed, starting from the lab as brought up: %s", exc)
                lab = edited_lab(lab_file, [], self._lab_data)
        self.lab = lab
        self._config_notes: list[Notification] = []
        self.state = ControllerState(self.lab)
        naming.synced_marker(self.run_dir, 0).parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.datapaths: dict[int, object] = {}
        self.installed: dict[int, set[FlowSpec]] = {}
        self.epoch: dict[int, int] = {}  # dpid -> cookie epoch of its flows
        self.pending: dict[int, dict[int, int]] = {}  # dpid -> {xid: flow count}
        self.generation = 0
        self.moves = vmotion.Moves()
        self._desired: Optional[dict] = None  # the last desired.json read
        self._desired_mtime = 0.0
        self._observer: Optional[GuestObserver] = None
        self._nsx_written: Optional[dict] = None
        self.packet_ins = 0
        # The Drop capture's bookkeeping (_dropped).
        self._plain_flows: dict[int, tuple] = {}
        self._drop_window: dict[int, list[int]] = {}
        self._drops_skipped: dict[int, int] = {}
        self.monitors: dict[int, beacon.BeaconMonitor] = {}
        self.loads: dict[int, loadbalance.LoadMonitor] = {}
        # What snooping learned survives a controller restart, as hosts would
        # report their bindings again to a new NSX controller.
        self.state.load_snooped(control.read_json(self.run_dir / control.SNOOPED))
        # So do teaming decisions: a port must not snap back to an uplink
        # the physical switches no longer deliver its frames on.
        self.state.load_teaming(control.read_json(self.run_dir / control.TEAMING))
        self._teaming_written = self.state.teaming_to_json()
        for dpid in self.state.dpids:
            b = self.state.binding(dpid)
            blamed = set(b.beacon_failed) | (set(beacon.beaconing(b)) if b.shotgun else set())
            if blamed:
                # Silent until heard again, not given three fresh intervals.
                self.monitors[dpid] = beacon.BeaconMonitor(b.host, b.bridge, {u: -math.inf for u in blamed})
        # Start from what the testbed asked for and what the guests show, so
        # a restarted controller resyncs switches to the right flows at once.
        self._poll_once()

    # -- OpenFlow events ---------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def on_switch_features(self, ev):
        dp = ev.msg.datapath
        if dp.id not in self.state.dpids:
            LOG.warning("unknown datapath %016x connected; ignoring it", dp.id)
            return
        with self.lock:
            self.datapaths[dp.id] = dp
            tables = self.state.nsx_tables()
            if self.lab.nsx is not None:
                self._write_nsx(tables)
            flows = set(self.state.flows(dp.id, tables))
            # Resync on (re)connect without a blip: re-add every flow under a
            # fresh cookie epoch (an identical flow is replaced in place),
            # then delete whatever carries another epoch - stale flows of an
            # earlier controller. Established traffic keeps its flows.
            self.epoch[dp.id] = epoch = 1 + secrets.randbelow((1 << ofdriver.EPOCH_BITS) - 1)
            self._marker(dp.id).unlink(missing_ok=True)
            for spec in sorted(flows, key=_order):
                dp.send_msg(ofdriver.flow_mod(dp, spec, epoch))
            for concern in COOKIES:
                for msg in ofdriver.delete_other_epochs(dp, concern, epoch):
                    dp.send_msg(msg)
            self.installed[dp.id] = flows
            self._barrier(dp)
            # Uplinks that were already down when this controller started.
            dp.send_msg(ofdriver.port_descriptions(dp))
        LOG.info("%s (dpid %016x): sent %d flows", self.state.host_of(dp.id), dp.id, len(flows))

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def on_barrier(self, ev):
        dpid, xid = ev.msg.datapath.id, ev.msg.xid
        with self.lock:
            waiting = self.pending.get(dpid, {})
            if xid not in waiting:
                return
            count = waiting.pop(xid)
            if not waiting:
                tmp = self._marker(dpid).with_suffix(".tmp")
                tmp.write_text(
                    json.dumps(
                        {"host": self.state.host_of(dpid), "flows": count, "generation": self.generation}
                    )
                )
                os.replace(tmp, self._marker(dpid))
            if not any(self.pending.values()):
                self._write_applied()

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def on_port_status(self, ev):
        msg, dp = ev.msg, ev.msg.datapath
        desc, ofp = msg.desc, dp.ofproto
        name = desc.name.decode() if isinstance(desc.name, bytes) else desc.name
        up = msg.reason != ofp.OFPPR_DELETE and not desc.state & ofp.OFPPS_LINK_DOWN
        LOG.debug("port status %016x %s reason=%s state=%s", dp.id, name, msg.reason, desc.state)
        with self.lock:
            if dp.id not in self.datapaths:
                return
            binding = self.state.binding(dp.id)
            if failover.is_uplink(binding, name):
                if (name in self.state.down.get(dp.id, frozenset())) != up:
                    return  # link state unchanged
                notes = failover.link_changed(self.state, dp.id, name, up)
                self._restart_loads(dp.id)
                self._event("uplink_up" if up else "uplink_down", host=self.state.host_of(dp.id), uplink=name)
                self._apply({dp.id})
                self._send_notifications(notes)
            elif up and (options := self.moves.arrived(name, binding)) is not None:
                self._vmotion_arrived(dp, name, options)

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    def on_port_descriptions(self, ev):
        dp, ofp = ev.msg.datapath, ev.msg.datapath.ofproto
        with self.lock:
            changed = False
            for desc in ev.msg.body:
                name = desc.name.decode() if isinstance(desc.name, bytes) else desc.name
                if failover.is_uplink(self.state.binding(dp.id), name) and desc.state & ofp.OFPPS_LINK_DOWN:
                    failover.link_changed(self.state, dp.id, name, up=False)
                    changed = True
            if changed:
                self._apply({dp.id})

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def on_packet_in(self, ev):
        """A Drop capture's copy of a dropped frame, a beacon (beacon
        probing) or an IP-discovery copy: the only frames flows send to the
        controller."""
        msg, dp = ev.msg, ev.msg.datapath
        dropped = dropcapture.dropped_by(msg.cookie, msg.table_id)
        if dropped is not None:
            self._dropped(dp, msg, dropped[0])
            return
        heard = beacon.parse_beacon(msg.data)
        if heard is not None:
            self._beacon_heard(dp, msg.match.get("in_port"), heard)
            return
        seen = ipdiscovery.snoop(msg.data)
        with self.lock:
            self.packet_ins += 1
            if dp.id not in self.datapaths or seen is None:
                return
            port = self.state.learn(dp.id, msg.match.get("in_port"), seen, msg.match.get("tunnel_id"))
            if port is None:
                return
            control.write_json(self.run_dir / control.SNOOPED, self.state.snooped_to_json())
            self._event(
                "ip_discovered",
                host=self.state.host_of(dp.id),
                port=port,
                method=seen.method,
                ip=seen.ip,
                mac=seen.mac,
            )
            self._apply(set(self.datapaths))

    def _dropped(self, dp, msg, priority: Optional[int]) -> None:
        """Record a frame the pipeline dropped, with the reason, for pktcap-uw.
        At most ``DROP_RECORDS_PER_S`` a second per bridge: a flood of drops
        must not starve beacons; what is over is counted, not lost silently
        (the next record's ``skipped``, pktcap-uw's "dropped N packets")."""
        with self.lock:
            if dp.id not in self.datapaths:
                return
            second = int(time.monotonic())
            window = self._drop_window.get(dp.id)
            if window is None or window[0] != second:
                window = self._drop_window[dp.id] = [second, 0]
            window[1] += 1
            if window[1] > DROP_RECORDS_PER_S:
                self._drops_skipped[dp.id] = self._drops_skipped.get(dp.id, 0) + 1
                return
            cached = self._plain_flows.get(dp.id)
            if cached is None or cached[0] is not self.installed.get(dp.id):
                # The bridge and its pipeline as a trace explains them, once
                # per change of flows (every state change reaches _apply).
                cached = (
                    self.installed.get(dp.id),
                    self.state.binding(dp.id),
                    self.state.flows(dp.id, drops_exposed=False),
                )
                self._plain_flows[dp.id] = cached
            _, binding, flows = cached
            in_port = msg.match.get("in_port")
            meta = {k: msg.match[k] for k in ("tunnel_id", "tun_ipv4_src", "reg0", "reg1") if k in msg.match}
            frame = frame_of(msg.data, in_port, **meta)
            try:
                reason = drop_reason(binding, flows, self.lab, msg.table_id, frame, priority)
            except Exception:  # a frame the simulator cannot take: still reported
                LOG.exception("drop reason")
                reason = f"dropped by {STAGES[msg.table_id].name}"
            port = next((p.name for p in binding.ports if p.ofport == in_port), f"port {in_port}")
            record = {
                "t": time.time(),
                "host": binding.host,
                "bridge": binding.bridge,
                "in_port": port,
                "table": msg.table_id,
                "stage": STAGES[msg.table_id].name,
                "reason": reason,
                "frame": bytes(msg.data).hex(),
                "skipped": self._drops_skipped.pop(dp.id, 0),
            }
            with open(self.run_dir / control.DROPS, "a") as f:
                f.write(json.dumps(record) + "\n")

    @set_ev_cls(ofp_event.EventOFPErrorMsg, MAIN_DISPATCHER)
    def on_error(self, ev):
        LOG.error("OpenFlow error from %016x: type=%s code=%s", ev.msg.datapath.id, ev.msg.type, ev.msg.code)

    # -- beacon probing ------------------------------------------------------
    def _every(self, period: float, what: str, work) -> None:
        """Run ``work(seq)`` under the lock every ``period`` seconds on a
        fixed schedule (no drift by the time a round takes); rounds missed
        while the machine stalled are skipped, not run back to back."""
        seq, start = 0, time.monotonic()
        while True:
            seq = max(seq + 1, int((time.monotonic() - start) / period) + 1)
            time.sleep(max(0.0, start + seq * period - time.monotonic()))
            try:
                with self.lock:
                    work(seq)
            except SystemExit:
                return
            except Exception:
                LOG.exception(what)

    def _beacons(self):
        """Send a round of beacons every interval and judge the last one."""
        self._every(
            beacon.BEACON_INTERVAL_S, "beacon probing", lambda seq: self._beacon_round(seq, time.monotonic())
        )

    def _beacon_round(self, seq: int, now: float) -> None:
        for dpid, dp in sorted(self.datapaths.items()):
            b = self.state.binding(dpid)
            uplinks = beacon.beaconing(b)
            if not uplinks:
                continue
            live = [u for u in uplinks if u not in b.uplinks_down]
            for u in live:
                for vlan in uplinks[u] or (0,):
                    frame = beacon.beacon_frame(b.host, b.bridge, u, vlan, seq)
                    dp.send_msg(ofdriver.packet_out(dp, b.port(u).ofport, frame))
            monitor = self.monitors.setdefault(dpid, beacon.BeaconMonitor(b.host, b.bridge))
            failed, shotgun = monitor.verdict(live, now)
            if (failed, shotgun) == (b.beacon_failed, b.shotgun):
                continue
            notes = failover.beacon_changed(self.state, dpid, failed, shotgun)
            self._restart_loads(dpid)
            self._event("beacon", host=b.host, vswitch=b.bridge, failed=sorted(failed), shotgun=shotgun)
            self._apply({dpid})
            self._send_notifications(notes)

    def _beacon_heard(self, dp, in_port: Optional[int], heard: beacon.Beacon) -> None:
        with self.lock:
            if dp.id not in self.datapaths:
                return
            b = self.state.binding(dp.id)
            receiver = next((p.name for p in b.uplink_ports() if p.ofport == in_port), None)
            monitor = self.monitors.setdefault(dp.id, beacon.BeaconMonitor(b.host, b.bridge))
            if receiver is not None:
                monitor.heard(receiver, heard, time.monotonic())

    # -- load-based teaming --------------------------------------------------
    def _load_samples(self):
        """Ask every load-based bridge for its port counters each sample period."""

        def ask(_seq):
            for dpid, dp in sorted(self.datapaths.items()):
                if loadbalance.load_based(self.state.binding(dpid)):
                    dp.send_msg(ofdriver.port_stats(dp))

        self._every(loadbalance.SAMPLE_S, "load-based teaming", ask)

    def _restart_loads(self, dpid: int) -> None:
        """A failover or failback moved ports: every uplink's load starts over."""
        monitor = self.loads.get(dpid)
        if monitor is not None:
            monitor.restart(set(monitor.capacity_bps))

    @set_ev_cls(ofp_event.EventOFPPortStatsReply, MAIN_DISPATCHER)
    def on_port_stats(self, ev):
        """Port counters of a load-based bridge: feed its monitor, and once
        the whole reply is in, make and apply load-based teaming's moves."""
        msg, dp = ev.msg, ev.msg.datapath
        now = time.monotonic()
        with self.lock:
            if dp.id not in self.datapaths:
                return
            b = self.state.binding(dp.id)
            names = {p.ofport: p.name for p in b.ports}
            monitor = self.loads.setdefault(dp.id, loadbalance.LoadMonitor.of(self.lab, b))
            monitor.feed(
                now,
                {
                    names[s.port_no]: (s.tx_bytes, s.rx_bytes, s.duration_sec + s.duration_nsec / 1e9)
                    for s in msg.body
                    if s.port_no in names
                },
            )
            if msg.flags & dp.ofproto.OFPMPF_REPLY_MORE:
                return  # judge once the whole reply is in
            monitor.forget_others(set(names.values()))
            pins = pinning(b)
            moves = loadbalance.rebalance(b, pins, monitor, now)
            if not moves:
                return
            notes = failover.load_moved(self.state, dp.id, moves, before=pins)
            for m in moves:
                self._event(
                    "load_balanced",
                    host=b.host,
                    vswitch=b.bridge,
                    port=m.port,
                    from_uplink=m.from_uplink,
                    to_uplink=m.to_uplink,
                    lowest_utilization=m.lowest_utilization,
                    target_utilization=m.target_utilization,
                )
            self._apply({dp.id})
            self._send_notifications(notes)

    # -- hostd and the testbed's requests ------------------------------------
    def _watch(self, poll, period: float, what: str) -> None:
        """Run ``poll`` every ``period`` s (a round that took longer is
        followed by the next after ``POLL_S``, as the single loop before it
        did) until SIGTERM; a failing round is logged and the next one tried."""
        while True:
            start = time.monotonic()
            try:
                poll()
            except SystemExit:  # SIGTERM while reading a guest: just stop
                return
            except Exception:
                LOG.exception(what)
            time.sleep(max(POLL_S, start + period - time.monotonic()))

    def _poll_once(self) -> None:
        """One look at both inputs: the guests (hostd) and desired.json."""
        self._poll_guests()
        self._poll_desired()

    def _poll_guests(self) -> None:
        """hostd: the guests' vNIC filters and MACs. Reading 128 guests takes
        tens of ms, so this has its own thread: a request in desired.json
        never waits for a round of it."""
        if self._observer is None:
            nodes = control.read_json(self.run_dir / control.NODES)
            if nodes is None:
                return
            self._observer = GuestObserver(
                [
                    WatchedNic(naming.vnic_port(vm.name, nic.name), nodes["pids"][vm.name], nic.name)
                    for vm in self.lab.vms
                    for nic in vm.vnics
                ]
            )
        guests = self._observer.snapshot()
        with self.lock:
            dirty: set[int] = set()
            if guests and self.state.set_guests(guests):
                for port, g in guests.items():
                    LOG.info("hostd: %s %s", port, g.to_json())
                dirty |= set(self.datapaths)
            # Imported DFW state ages out like the conntrack entries it came from.
            if self.state.expire_dfw_sessions(time.time()):
                dirty |= set(self.datapaths)
            if dirty:
                self._apply(dirty)

    def _poll_desired(self) -> None:
        """vCenter's requests (desired.json), applied as soon as they are seen."""
        desired = self._read_desired()
        if desired is None:
            # Unchanged, but a capture's process may have died since: apply
            # only then (an empty apply still recompiles NSX bridges).
            with self.lock:
                ended = self.state.take_sessions(self._desired) if self._desired is not None else set()
                if ended:
                    self._apply(ended)
            return
        with self.lock:
            self._desired = desired
            self._apply(self._take_desired(desired))
            # Announced once the flows that move the ports are in.
            notes, self._config_notes = self._config_notes, []
            self._send_notifications(notes)

    def _read_desired(self) -> Optional[dict]:
        path = self.run_dir / control.DESIRED
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            return None
        if mtime == self._desired_mtime:
            return None
        self._desired_mtime = mtime
        return control.read_json(path)

    def _take_desired(self, desired: dict) -> set[int]:
        self.generation = desired.get("generation", self.generation)
        edits = control.config_edits(desired)
        if edits == self._edits or self.lab_file is None:
            self.moves.take(desired.get("moves", {}))
            return self.state.take_desired(desired)
        pins, placed = self.state.pinning(), dict(self.state.placement)
        dirty = self._take_config(edits)
        self.moves.take(desired.get("moves", {}))
        dirty |= self.state.take_desired(desired)
        # Ports a new team moved to another uplink are announced from it; a
        # port re-plugged in the same request (a vNIC on another network) is
        # not connected yet, and its old pinning is not its.
        replugged = {
            p for p in set(placed) | set(self.state.placement) if placed.get(p) != self.state.placement.get(p)
        }
        notes = failover.reconfigured(self.state, pins)
        self._config_notes += [n for n in notes if n.port not in replugged]
        return dirty

    def _take_config(self, edits: list[dict]) -> set[int]:
        """The administrator's changes to the lab (``vlab.lab.edits``):
        replayed on the lab as brought up, and every bridge recompiled from
        the result with what the runtime learned kept (``ControllerState.set_lab``)."""
        self._edits = edits
        try:
            lab = edited_lab(self.lab_file, edits, self._lab_data)
        except LabError as exc:
            # LabControl validates every change before writing it: this is a
            # hand-edited desired.json. Keep programming the last good lab.
            LOG.error("configuration change refused, keeping the last good one: %s", exc)
            return set()
        beaconing = {d: beacon.beaconing(self.state.binding(d)) for d in self.state.dpids}
        try:
            dirty = self.state.set_lab(lab)
        except ValueError as exc:
            LOG.error("configuration change refused, keeping the last good one: %s", exc)
            return set()
        self.lab = lab
        # A reconfigured team starts its load measurement over; a bridge
        # whose beacon probing changed starts it over too (no verdict, no
        # old silence to judge the new uplinks by).
        self.loads.clear()
        for d, probing in beaconing.items():
            if beacon.beaconing(self.state.binding(d)) != probing:
                self.monitors.pop(d, None)
                self.state.beacon_failed.pop(d, None)
                self.state.shotgun.pop(d, None)
        return dirty

    # -- installing ----------------------------------------------------------
    def _apply(self, dpids: set[int]) -> None:
        """Install the difference between compiled and installed flows."""
        tables = self.state.nsx_tables()
        if self.lab.nsx is not None:
            # The NSX tables span hosts: a VM moving or showing a new IP
            # changes flows everywhere (the diff keeps that cheap).
            dpids = set(dpids) | set(self.datapaths)
            self._write_nsx(tables)
        for dpid in sorted(dpids):
            dp = self.datapaths.get(dpid)
            if dp is None:
                continue
            new = set(self.state.flows(dpid, tables))
            old = self.installed.get(dpid, set())
            new_keys = {f.key for f in new}
            # Add (or overwrite) first, delete stale last: no moment without a flow.
            for spec in sorted(new - old, key=_order):
                dp.send_msg(ofdriver.flow_mod(dp, spec, self.epoch.get(dpid, 0)))
            for spec in sorted(old, key=_order):
                if spec.key not in new_keys:
                    dp.send_msg(ofdriver.delete_strict(dp, spec))
            self.installed[dpid] = new
            self._barrier(dp)
        if not any(self.pending.values()):
            self._write_applied()

    def _barrier(self, dp) -> None:
        msg = ofdriver.barrier(dp)
        dp.set_xid(msg)
        self.pending.setdefault(dp.id, {})[msg.xid] = len(self.installed[dp.id])
        dp.send_msg(msg)

    def _write_applied(self) -> None:
        control.write_json(
            self.run_dir / control.APPLIED,
            {
                "generation": self.generation,
                "connected": sorted(f"{d:016x}" for d in self.datapaths),
                "guests": {k: g.to_json() for k, g in sorted(self.state.guests.items())},
                "uplinks_down": self.state.uplinks_down_by_host(),
                "pinning": self.state.pinning_by_host(),
                "flows": {f"{d:016x}": len(f) for d, f in self.installed.items()},
                "packet_ins": self.packet_ins,
                **self.state.beacon_by_host(),
                "load_moves": self.state.load_moves_by_host(),
            },
        )
        teaming = self.state.teaming_to_json()
        if teaming != self._teaming_written:
            control.write_json(self.run_dir / control.TEAMING, teaming)
            self._teaming_written = teaming

    def _write_nsx(self, tables) -> None:
        data = tables.to_json()
        if data != self._nsx_written:
            control.write_json(self.run_dir / control.NSX_TABLES, data)
            self._nsx_written = data

    # -- frames sent on a guest's behalf -------------------------------------
    def _send_notifications(self, notes: list[Notification]) -> None:
        for n in notes:
            dp = self.datapaths.get(n.dpid)
            if dp is None:
                continue
            frame = notify.rarp(n.mac, n.vlan)
            dp.send_msg(ofdriver.packet_out(dp, n.uplink_ofport, frame, via=n.via))
            self._event(
                "rarp",
                host=self.state.host_of(n.dpid),
                uplink=n.uplink,
                mac=n.mac,
                vlan=n.vlan,
                port=n.port,
                reason=n.reason,
            )

    def _vmotion_arrived(self, dp, port: str, options: dict) -> None:
        """Step 6 of the vMotion protocol (``controller.vmotion``)."""
        arrived = "vnic_connected" if options.get("reason") == "connect" else "vmotion_port_up"
        self._event(arrived, host=self.state.host_of(dp.id), port=port)
        sent = vmotion.arrival(self.state, dp.id, port, options)
        self._send_notifications(sent.rarps)
        for delay in vmotion.RARP_REPEATS_S:
            timer = threading.Timer(delay, self._repeat_notifications, args=(sent.rarps,))
            timer.daemon = True
            timer.start()
        if sent.query is not None:
            q = sent.query
            dp.send_msg(ofdriver.packet_out(dp, q.ofport, q.frame))
            self._event(
                "igmp_query",
                host=self.state.host_of(dp.id),
                port=port,
                source=q.source,
                max_response_s=q.max_response_s,
            )

    def _repeat_notifications(self, notes: list[Notification]) -> None:
        """A RARP's repeats, only while it is still true: a vNIC that has
        moved again since (a reconnect, another network, a vMotion back)
        must not be announced on the uplink it has left."""
        with self.lock:
            self._send_notifications(failover.still_true(self.state, notes))

    def _event(self, kind: str, **fields) -> None:
        LOG.info("event %s %s", kind, fields)
        control.append_event(self.run_dir, {"t": time.time(), "event": kind, **fields})

    def _marker(self, dpid: int) -> Path:
        return naming.synced_marker(self.run_dir, dpid)


# The most dropped frames a bridge's Drop capture records a second.
DROP_RECORDS_PER_S = 500


def _order(spec: FlowSpec):
    return (spec.table, -spec.priority, repr(spec.match))

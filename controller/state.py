"""vCenter's and NSX Manager's view of the running lab: intent (the lab) plus
what changed since (placement, guests' NIC filters and addresses, uplink
failures, capture sessions), from which every bridge's flows and the NSX
controller tables are derived.

Pure: no sockets, no files. The os-ken driver feeds it events and installs
what ``binding(dpid)`` compiles to. The runtime protocols that change it
have their own modules: ``failover`` (uplink link status) and ``vmotion``
(the notifications of a moved VM); both return the frames to send as data,
so tests can check them without a switch.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from typing import Optional

from vlab.bindings import GuestNic, Placement, SwitchBinding, switch_bindings
from vlab.control import live_sessions, placement_of
from vlab.lab.model import Lab
from vlab.lab.resolve import EffectiveTeaming

from .dfw import Session, expiry_of
from .flows import compile_bridge
from .ipdiscovery import Snooped
from .nsx import NsxTables, build_tables
from .pipeline import FlowSpec
from .portsecurity import PortSecurity
from .vswitch import pinning


class ControllerState:
    """Everything the flow compilers need, kept current by events."""

    def __init__(self, lab: Lab):
        self.lab = lab
        self.placement: dict[str, Placement] = {}
        self.guests: dict[str, GuestNic] = {}
        self.snooped: dict[str, dict[str, frozenset[str]]] = {}  # port -> method -> IPs
        self.captures: frozenset[str] = frozenset()
        self.drop_captures: frozenset[str] = frozenset()  # hosts with a Drop capture session
        # Connections each vNIC's DFW state carried over by vMotion.
        self.dfw_sessions: dict[str, tuple[Session, ...]] = {}
        self._dfw_expiry: dict[tuple[str, Session], Optional[float]] = {}
        # Uplinks down and teams changed by failback (controller.failover).
        self.down: dict[int, frozenset[str]] = {}
        # Beacon probing's verdicts (controller.beacon, failover.beacon_changed).
        self.beacon_failed: dict[int, frozenset[str]] = {}
        self.shotgun: dict[int, bool] = {}
        self.teams: dict[int, dict[str, object]] = {}
        # Load-based teaming's moves: port -> uplink (controller.loadbalance).
        self.load_moves: dict[int, dict[str, str]] = {}
        self._base = {b.dpid: b for b in switch_bindings(lab)}
        self._placed = dict(self._base)  # bindings for the current placement
        self._placement_read = False

    @property
    def dpids(self) -> list[int]:
        return sorted(self._base)

    def binding(self, dpid: int) -> SwitchBinding:
        b = self._placed[dpid].with_guests(self.guests).with_captures(self.captures)
        return replace(
            b,
            drop_capture=b.host in self.drop_captures,
            uplinks_down=self.down.get(dpid, frozenset()),
            beacon_failed=self.beacon_failed.get(dpid, frozenset()),
            shotgun=self.shotgun.get(dpid, False),
            teams=tuple(sorted(self.teams.get(dpid, {}).items())),
            load_moves=tuple(sorted(self.load_moves.get(dpid, {}).items())),
        )

    def nsx_tables(self) -> NsxTables:
        """The NSX controller's tables for the current placement and guests."""
        return build_tables(self.lab, [self.binding(d) for d in self.dpids], self.guests, self.snooped)

    def flows(
        self, dpid: int, tables: Optional[NsxTables] = None, drops_exposed: bool = True
    ) -> list[FlowSpec]:
        """Every flow bridge ``dpid`` should hold now (``drops_exposed``
        False: as if no Drop capture ran, the pipeline a trace explains)."""
        b = self.binding(dpid)
        if not drops_exposed:
            b = replace(b, drop_capture=False)
        return compile_bridge(b, tables or self.nsx_tables(), self.lab, self.dfw_sessions)

    def host_of(self, dpid: int) -> str:
        return self._base[dpid].host

    def pinning(self) -> dict[int, dict[str, Optional[str]]]:
        return {d: pinning(self.binding(d)) for d in self.dpids}

    def pinning_by_host(self) -> dict[str, dict[str, Optional[str]]]:
        """Port -> uplink for every port of every vSwitch, per ESXi host. A
        host has one bridge per vSwitch (vSwitch0 for management, vSwitch1
        for VMs): their port names are unique on the host, so they merge."""
        out: dict[str, dict[str, Optional[str]]] = {}
        for d, pins in self.pinning().items():
            out.setdefault(self.host_of(d), {}).update(pins)
        return out

    def uplinks_down_by_host(self) -> dict[str, list[str]]:
        """The uplinks that are down, per ESXi host (a vmnic belongs to one
        vSwitch, so the bridges' sets are disjoint)."""
        out: dict[str, set[str]] = {}
        for d, down in self.down.items():
            out.setdefault(self.host_of(d), set()).update(down)
        return {h: sorted(u) for h, u in out.items()}

    def load_moves_by_host(self) -> dict[str, dict[str, str]]:
        """Load-based teaming's moves in force, per ESXi host: port -> uplink."""
        out: dict[str, dict[str, str]] = {}
        for d, moves in sorted(self.load_moves.items()):
            if moves:
                out.setdefault(self.host_of(d), {}).update(moves)
        return out

    def beacon_by_host(self) -> dict[str, dict[str, list[str]]]:
        """Beacon probing's verdicts per ESXi host: the uplinks it failed
        (``beacon_failed``) and the vSwitches sending on every uplink
        (``shotgun``), as ``applied.json`` carries them."""
        out: dict[str, dict[str, list[str]]] = {"beacon_failed": {}, "shotgun": {}}
        for d in self.dpids:
            host = self.host_of(d)
            if self.beacon_failed.get(d):
                out["beacon_failed"].setdefault(host, []).extend(sorted(self.beacon_failed[d]))
            if self.shotgun.get(d):
                out["shotgun"].setdefault(host, []).append(self._base[d].bridge)
        return out

    # -- events ------------------------------------------------------------
    def take_desired(self, desired: dict, now: Optional[float] = None) -> set[int]:
        """What the testbed asked for (``desired.json``, fields in
        ``vlab.control``): placement, PortOutput and Drop capture sessions, DFW state
        imported by vMotion. Returns the bridges whose flows may change. The
        ``moves`` are the vMotion notifications' (``controller.vmotion``)."""
        dirty = self.set_placement(placement_of(desired))
        dirty |= self.take_sessions(desired)
        if self.set_dfw_sessions(desired.get("dfw_sessions", {}), now):
            dirty |= set(self.dpids)
        return dirty

    def take_sessions(self, desired: dict) -> set[int]:
        """The capture sessions still open: those whose process runs
        (``vlab.control.live_sessions``; checked again on every poll, as a
        killed pktcap-uw never says it ended). Returns the bridges to recompile."""
        dirty = set()
        if self.set_captures(live_sessions(desired.get("captures"))):
            dirty |= set(self.dpids)
        drop_captures = live_sessions(desired.get("drop_captures"))
        if drop_captures != self.drop_captures:
            changed = drop_captures ^ self.drop_captures
            self.drop_captures = drop_captures
            dirty |= {d for d in self.dpids if self._base[d].host in changed}
        return dirty

    def set_lab(self, lab: Lab) -> set[int]:
        """The administrator changed the configuration (``vlab.lab.edits``):
        rebuild every binding from ``lab``, keeping what the runtime learned
        (placement, guests, snooped IPs, DFW state, uplinks down, beacon
        verdicts). A port group whose teaming changed takes the new team as
        configured: what failover or failback left it (``teams``) and
        load-based teaming's moves of its ports are forgotten, as a
        reconfigured team starts over. Returns the bridges whose flows may
        change (all: one recompile, the diff keeps it cheap)."""
        before = {d: self._placed[d] for d in self.dpids}
        bindings = {b.dpid: b for b in switch_bindings(lab, self.placement)}
        if set(bindings) != set(self._base):
            raise ValueError("a configuration change cannot add or remove a vSwitch")
        self.lab = lab
        self._base = {b.dpid: b for b in switch_bindings(lab)}
        self._placed = bindings
        for d, old in before.items():
            new = self._placed[d]
            groups = {pg.name: pg.teaming for pg in new.switch.port_groups}
            changed = {pg.name for pg in old.switch.port_groups if groups.get(pg.name) != pg.teaming}
            if d in self.teams:
                self.teams[d] = {pg: t for pg, t in self.teams[d].items() if pg not in changed}
            moves = self.load_moves.get(d)
            if moves:
                group_of = {p.name: p.port_group for p in old.local_ports()}
                for port in [p for p in moves if group_of.get(p) in changed]:
                    del moves[port]
        return set(self.dpids)

    def set_placement(self, placement: dict[str, Placement]) -> set[int]:
        """New placement; returns the bridges whose flows change."""
        before = {d: self.binding(d).ports for d in self.dpids}
        where_before = self._where()
        self.placement = dict(placement)
        # Placement is the only input of the port layout: rebuild it here,
        # not on every compile.
        self._placed = {b.dpid: b for b in switch_bindings(self.lab, self.placement)}
        # A port that moved (vMotion) or got a new port ID (reconnect) is a
        # new virtual port: load-based teaming places it afresh. The first
        # placement a (restarted) controller reads changes nothing.
        if self._placement_read:
            where = self._where()
            for moves in self.load_moves.values():
                for port in [p for p in moves if where.get(p) != where_before.get(p)]:
                    del moves[port]
        self._placement_read = True
        return {d for d in self.dpids if self.binding(d).ports != before[d]}

    def _where(self) -> dict[str, tuple[str, int]]:
        """Every VLAN-backed local port: (host, OpenFlow port number)."""
        return {p.name: (b.host, p.ofport) for b in self._placed.values() for p in b.local_ports()}

    def set_dfw_sessions(self, sessions: dict[str, list], now: Optional[float] = None) -> bool:
        """DFW state imported by vMotion (port -> sessions as JSON lists, each
        with the wall-clock time it ages out); returns whether the sessions
        in force changed. Expired ones are never imported."""
        now = time.time() if now is None else now
        self._dfw_expiry = {
            (port, Session.from_json(s)): expiry_of(s) for port, items in sessions.items() for s in items
        }
        return self.expire_dfw_sessions(now, force=True)

    def expire_dfw_sessions(self, now: float, force: bool = False) -> bool:
        """Drop imported sessions whose conntrack entry would have aged out
        by ``now``, as the entries themselves do; returns whether the
        sessions in force changed."""
        live = {k: t for k, t in self._dfw_expiry.items() if t is None or t > now}
        if len(live) == len(self._dfw_expiry) and not force:
            return False
        self._dfw_expiry = live
        new: dict[str, list[Session]] = {}
        for port, session in live:
            new.setdefault(port, []).append(session)
        new = {port: tuple(sorted(items)) for port, items in new.items()}
        changed, self.dfw_sessions = new != self.dfw_sessions, new
        return changed

    def set_guests(self, guests: dict[str, GuestNic]) -> bool:
        changed = guests != {k: self.guests.get(k) for k in guests}
        self.guests.update(guests)
        return changed

    def learn(self, dpid: int, in_port: int, seen: Snooped, vni: Optional[int] = None) -> Optional[str]:
        """A snooped binding from a frame that entered bridge ``dpid`` by
        ``in_port``; returns the vNIC port it was bound to, or None when it
        teaches nothing. ARP is believed only from the vNIC whose MAC sent it,
        once per vNIC; a DHCP ACK seen on logical switch ``vni`` binds its
        address to the port of that logical switch whose MAC is the client's,
        wherever that port is (an ACK forged on another segment teaches
        nothing)."""
        b = self.binding(dpid)
        if seen.method == "arp_snooping":
            port = next((p for p in b.logical_ports() if p.ofport == in_port), None)
            if port is None or PortSecurity.of(b, port).effective_mac != seen.mac:
                return None
        else:
            names = {ls.vni: ls.name for ls in self.lab.nsx.logical_switches}
            port = next(
                (
                    p
                    for d in self.dpids
                    for p in self.binding(d).logical_ports()
                    if PortSecurity.of(self.binding(d), p).effective_mac == seen.mac
                    and p.logical_switch == names.get(vni)
                ),
                None,
            )
            if port is None:
                return None
        ls = next(ls for ls in self.lab.nsx.logical_switches if ls.name == port.logical_switch)
        if seen.method not in ls.ip_discovery:
            return None
        mine = self.snooped.setdefault(port.name, {})
        if seen.method == "arp_snooping" and mine.get("arp_snooping"):
            return None  # first binding wins
        if mine.get(seen.method) == frozenset({seen.ip}):
            return None
        mine[seen.method] = frozenset({seen.ip})
        return port.name

    def snooped_to_json(self) -> dict:
        """What snooping learned, as stored in the run directory."""
        return {
            port: {m: sorted(ips) for m, ips in methods.items()} for port, methods in self.snooped.items()
        }

    def load_snooped(self, data: Optional[dict]) -> None:
        """Take back what ``snooped_to_json`` stored (a restarted controller)."""
        for port, methods in (data or {}).items():
            self.snooped[port] = {m: frozenset(ips) for m, ips in methods.items()}

    def teaming_to_json(self) -> dict:
        """The teaming decisions of every bridge, as ``teaming.json`` stores them."""
        out = {}
        for d in self.dpids:
            entry = {
                "beacon_failed": sorted(self.beacon_failed.get(d, ())),
                "shotgun": self.shotgun.get(d, False),
                "teams": {pg: asdict(t) for pg, t in sorted(self.teams.get(d, {}).items())},
                "load_moves": dict(sorted(self.load_moves.get(d, {}).items())),
            }
            if entry["beacon_failed"] or entry["shotgun"] or entry["teams"] or entry["load_moves"]:
                out[f"{d:016x}"] = entry
        return out

    def load_teaming(self, data: Optional[dict]) -> None:
        """Take back what ``teaming_to_json`` stored (a restarted controller);
        bridges and port groups the lab does not have are ignored."""
        for key, entry in (data or {}).items():
            d = int(key, 16)
            if d not in self._base:
                continue
            groups = {pg.name for pg in self._base[d].switch.port_groups}
            self.beacon_failed[d] = frozenset(entry.get("beacon_failed", ()))
            self.shotgun[d] = bool(entry.get("shotgun"))
            self.teams[d] = {
                pg: EffectiveTeaming(**{k: tuple(v) if isinstance(v, list) else v for k, v in t.items()})
                for pg, t in entry.get("teams", {}).items()
                if pg in groups
            }
            self.load_moves[d] = dict(entry.get("load_moves", {}))

    def set_captures(self, ports: frozenset[str]) -> bool:
        changed, self.captures = ports != self.captures, ports
        return changed

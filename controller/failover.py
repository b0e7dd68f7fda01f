"""Uplink failover and failback, as ESXi does them with failure detection by
link status (and by beacon probing: ``beacon_changed``, for the port groups
that use it), and the "notify switches" RARPs a change of uplink calls for.

The whole protocol, in the order it happens:

1. A cable is pulled or plugged (``vlab.operations.LabControl.uplink``: the
   physical switch port goes down, so the ESXi host sees link down).
2. OVS reports the uplink's port status to the controller
   (``app.on_port_status``; at connect, ``app.on_port_descriptions`` for
   uplinks already down). Only ports the binding knows as uplinks count.
3. ``link_changed`` records the uplink as down or up. On recovery each port
   group's team is recomputed with ``teaming.after_recovery`` (failback
   yes: the recovered uplink takes its place again; failback no: it becomes
   standby); ``vswitch.pinning`` then says which uplink every port uses.
4. The driver recompiles and installs the difference (``app._apply``).
5. For every port whose uplink moved and whose port group has notify
   switches on, ``notification`` asks for one RARP from the port's effective
   MAC out of its new uplink (``notify.rarp``), so physical switches move the
   MAC at once (VGT port groups are not notified: which VLAN would it be?).
6. ``events.jsonl`` records ``uplink_down``/``uplink_up`` and every ``rarp``;
   ``applied.json`` carries ``uplinks_down`` and ``pinning`` per host.

Beacon probing (``controller.beacon``) feeds ``beacon_changed`` instead of
step 2-3: its failed uplinks count as down for beacon-probing port groups
only, and ``shotgun`` sends their ports on every live uplink.

Pure: state in, notifications out; the driver sends them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from vlab.bindings import SwitchBinding
from vlab.lab.model import VGT_VLAN

from .portsecurity import PortSecurity
from .teaming import after_recovery, lag_action
from .vswitch import pinning

if TYPE_CHECKING:
    from .state import ControllerState


@dataclass(frozen=True)
class Notification:
    """A RARP to send on a guest's behalf out of ``uplink`` of bridge ``dpid``
    (a LAG's name for a LAG port: ``via`` is then the bundle action that
    sends it out of one member)."""

    dpid: int
    uplink: str
    uplink_ofport: Optional[int]
    mac: str
    vlan: Optional[int]  # None: untagged; VGT ports are not notified
    port: str
    reason: str  # failover | failback | beacon failover | beacon failback | load balancing | vmotion
    via: tuple = ()


def is_uplink(binding: SwitchBinding, name: str) -> bool:
    """Whether port ``name`` is one of the bridge's uplinks (by the binding,
    not by its name or number)."""
    return any(p.name == name for p in binding.uplink_ports())


def notification(
    binding: SwitchBinding, port_name: str, reason: str, pins: Optional[dict] = None
) -> Optional[Notification]:
    """The RARP ESXi sends for ``port_name`` now that it uses its current
    uplink, or None when its port group does not notify switches (or it is
    on a logical switch: those move in the NSX controller's MAC table).
    ``pins``: ``pinning(binding)``, when the caller has it already."""
    port = next((p for p in binding.ports if p.name == port_name), None)
    if port is None or port.port_group is None:
        return None
    team = binding.teaming(port.port_group)
    vlan = binding.switch.port_group(port.port_group).vlan
    uplink = (pins if pins is not None else pinning(binding)).get(port_name)
    if not team.notify_switches or uplink is None or vlan == VGT_VLAN:
        return None
    if team.lag is not None:
        members = tuple(binding.port(u).ofport for u in team.active)
        if not members:
            return None  # the LAG has no vmnic on this host: nothing to send by
        via = (lag_action(team, members, vlan),)
        mac = PortSecurity.of(binding, port).effective_mac
        return Notification(binding.dpid, team.lag, None, mac, vlan or None, port_name, reason, via)
    return Notification(
        binding.dpid,
        uplink,
        binding.port(uplink).ofport,
        PortSecurity.of(binding, port).effective_mac,
        vlan or None,
        port_name,
        reason,
    )


def beacon_changed(
    state: "ControllerState", dpid: int, failed: frozenset[str], shotgun: bool
) -> list[Notification]:
    """Beacon probing's verdict for bridge ``dpid`` changed: ``failed``
    uplinks (links up, beacons silent) and ``shotgun``. Like a link failure
    for the beacon-probing port groups only; an uplink heard again comes back
    with failback as configured. Returns the RARPs for ports that moved."""
    old, was_shotgun = state.beacon_failed.get(dpid, frozenset()), state.shotgun.get(dpid, False)
    if failed == old and shotgun == was_shotgun:
        return []
    now = state.binding(dpid)
    before = pinning(now)
    # Failback applies to an uplink heard again; one only un-blamed because
    # the team went to shotgun, or whose link went down, has not recovered.
    heard_again = (old - failed) - now.uplinks_down if not shotgun else frozenset()
    teams = dict(state.teams.get(dpid, {}))
    for pg in now.switch.port_groups:
        team = now.teaming(pg.name)
        if team.failure_detection == "beacon_probing":
            for uplink in sorted(heard_again):
                team = after_recovery(team, uplink, now.down_for(team))
            teams[pg.name] = team
    state.teams[dpid] = teams
    state.beacon_failed[dpid], state.shotgun[dpid] = failed, shotgun
    _end_moves_on_failed_uplinks(state, dpid)
    after = state.binding(dpid)
    pins = pinning(after)
    moved = _moved(before, pins)
    if was_shotgun and not shotgun:
        # Out of shotgun each port is back on one uplink: announce every
        # beacon-probing port, since the switches learned it on either copy.
        beaconing = {
            p.name
            for p in after.local_ports()
            if after.teaming(p.port_group).failure_detection == "beacon_probing"
        }
        moved = sorted(set(moved) | beaconing)
    return _notes(after, pins, moved, "beacon failback" if heard_again or was_shotgun else "beacon failover")


def load_moved(
    state: "ControllerState", dpid: int, moves: list, before: Optional[dict] = None
) -> list[Notification]:
    """Load-based teaming moved ports of bridge ``dpid`` (``loadbalance.Move``
    list; ``before``: the pinning they were judged on). Returns the RARPs
    from their new uplinks."""
    before = before if before is not None else pinning(state.binding(dpid))
    placed = state.load_moves.setdefault(dpid, {})
    for m in moves:
        placed[m.port] = m.to_uplink
    after = state.binding(dpid)
    pins = pinning(after)
    return _notes(after, pins, _moved(before, pins), "load balancing")


def reconfigured(state: "ControllerState", before: dict[int, dict]) -> list[Notification]:
    """The administrator changed the configuration (``ControllerState.set_lab``;
    ``before``: ``state.pinning()`` as it was). A port whose traffic now
    leaves by another uplink is announced from it, as on any move of a
    port's traffic to another physical NIC, when its port group notifies
    switches."""
    notes: list[Notification] = []
    for dpid, pins_before in sorted(before.items()):
        after = state.binding(dpid)
        pins = pinning(after)
        notes += _notes(after, pins, _moved(pins_before, pins), "teaming change")
    return notes


def _end_moves_on_failed_uplinks(state: "ControllerState", dpid: int) -> None:
    """A load-based move ends when its uplink fails for its port's team:
    the port goes where its port ID puts it, and stays there on recovery."""
    moves = state.load_moves.get(dpid)
    if not moves:
        return
    b = state.binding(dpid)
    for port in list(moves):
        p = next((x for x in b.local_ports() if x.name == port), None)
        if p is None or moves[port] in b.down_for(b.teaming(p.port_group)):
            del moves[port]


def _moved(before: dict, after: dict) -> list[str]:
    """The ports whose uplink differs in pinning ``after`` from ``before``."""
    return [name for name, pinned in after.items() if pinned != before.get(name)]


def _notes(after: SwitchBinding, pins: dict, ports: list[str], reason: str) -> list[Notification]:
    notes = (notification(after, name, reason, pins) for name in ports)
    return [n for n in notes if n]


def link_changed(state: "ControllerState", dpid: int, uplink: str, up: bool) -> list[Notification]:
    """Step 3 and 5: uplink ``uplink`` of bridge ``dpid`` went down or up.
    Returns the RARPs for the ports whose uplink moved (none when the link
    state did not change)."""
    down = state.down.get(dpid, frozenset())
    if (uplink not in down) == up:
        return []
    now = state.binding(dpid)
    before = pinning(now)
    if up:
        teams = dict(state.teams.get(dpid, {}))
        for pg in now.switch.port_groups:
            teams[pg.name] = after_recovery(now.teaming(pg.name), uplink, down)
        state.teams[dpid] = teams
        state.down[dpid] = down - {uplink}
    else:
        state.down[dpid] = down | {uplink}
        _end_moves_on_failed_uplinks(state, dpid)
    after = state.binding(dpid)
    pins = pinning(after)
    return _notes(after, pins, _moved(before, pins), "failback" if up else "failover")


def still_true(state: "ControllerState", notes: list[Notification]) -> list[Notification]:
    """The ``notes`` that would be sent the same now: each port still on its
    bridge, with the same MAC, VLAN and uplink."""
    out = []
    for n in notes:
        if n.dpid not in state.dpids:
            continue
        now = notification(state.binding(n.dpid), n.port, n.reason)
        if now == n:
            out.append(n)
    return out

"""vMotion, the controller's side: the notifications a VM gets when it
resumes on its new host.

The whole protocol, in the order it happens (the testbed's side is
``vlab.operations.vmotion``):

1. The VM's vNIC ports leave the source host's vSwitch (stun starts).
2. The vNIC backends move into the destination host's namespace.
3. The VM's distributed-firewall state is exported from the source's
   conntrack, each entry with the time it had left.
4. One ``desired.json`` request carries the new placement, one ``moves``
   entry per vNIC (a fresh ``seq``, the IGMP-query options) and the DFW
   sessions; the controller recompiles every host (``ControllerState.
   take_desired``; NSX tables move the VM's MAC to the new VTEP) and
   ``Moves.take`` notes the ports it now awaits. ``applied.json`` confirms.
5. The stun time passes; the vNICs are plugged into the destination's
   vSwitch with their old port numbers (the VM resumes).
6. The port comes up there (OpenFlow port status): ``Moves.arrived`` says
   it was awaited, and ``arrival`` says what to send: a RARP from the VM's
   MAC out of the uplink it is pinned to (notify switches), repeated after
   ``RARP_REPEATS_S``, and, when asked and the guest has joined groups, a
   spoofed IGMP general query into the guest so it re-reports its groups
   and snooping switches learn the new port.
7. ``events.jsonl`` records ``vmotion_port_up``, each ``rarp`` and the
   ``igmp_query``; imported DFW sessions age out when their source entries
   would have (``ControllerState.expire_dfw_sessions``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from vlab.bindings import SwitchBinding
from vlab.control import MAX_RESPONSE_S, QUERY_MAC, QUERY_SOURCE
from vlab.protocols import ALL_HOSTS_MAC

from . import notify
from .failover import Notification, notification

if TYPE_CHECKING:
    from .state import ControllerState

# The RARP is repeated, as ESXi sends a few: a physical switch that is an
# OVS standalone bridge can re-learn the VM's MAC on the old port after the
# first one, when its revalidator pushes the stats of the old path's cached
# flow (the VM's last frames before the stun) into MAC learning. A quiet VM
# would then stay unreachable. Seconds after the first RARP:
RARP_REPEATS_S = (0.6, 1.2)


class Moves:
    """The moves the testbed announced and the ports still awaiting their
    new host. A move carries its own sequence number, so a VM moving twice
    to the same host still gets its notifications."""

    def __init__(self):
        self.options: dict[str, dict] = {}  # port -> its last move's options
        self.awaiting: set[str] = set()

    def take(self, moves: dict[str, dict]) -> None:
        for port, options in moves.items():
            if self.options.get(port) != options:
                self.options[port] = options
                self.awaiting.add(port)

    def arrived(self, port: str, binding: SwitchBinding) -> Optional[dict]:
        """``port`` came up on ``binding``'s bridge: its move's options if it
        was awaited there (once), else None."""
        if port not in self.awaiting or not any(p.name == port for p in binding.ports):
            return None
        self.awaiting.discard(port)
        return self.options.get(port, {})


@dataclass(frozen=True)
class IgmpQuery:
    """A spoofed IGMP general query to send into the guest's port."""

    ofport: int
    frame: bytes
    source: str
    max_response_s: float


@dataclass(frozen=True)
class Arrival:
    """What to send when a moved vNIC comes up on its new host."""

    rarps: list[Notification]
    query: Optional[IgmpQuery]


def arrival(state: "ControllerState", dpid: int, port: str, options: dict) -> Arrival:
    """Step 6 for vNIC ``port``, now on bridge ``dpid``."""
    b = state.binding(dpid)
    rarp = notification(b, port, options.get("reason", "vmotion"))
    guest = state.guests.get(port)
    joined = guest is not None and any(
        m.startswith("01:00:5e:") and m != ALL_HOSTS_MAC for m in guest.mcast or ()
    )
    query = None
    if options.get("igmp_query") and joined:
        source = options.get("query_source", QUERY_SOURCE)
        max_response_s = float(options.get("max_response_s", MAX_RESPONSE_S))
        frame = notify.igmp_general_query(options.get("query_mac", QUERY_MAC), source, max_response_s)
        query = IgmpQuery(b.port(port).ofport, frame, source, max_response_s)
    return Arrival([rarp] if rarp else [], query)

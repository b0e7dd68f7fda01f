"""NIC teaming: which uplink a vSwitch port transmits on, and how a team
changes when links fail and recover.

ESXi pins each virtual port to one uplink (no per-packet spreading) for the
port-ID and MAC-hash policies; explicit failover takes the first healthy uplink
in order. A failed active uplink is replaced by the first healthy standby
uplink ("use this uplink if one of the active adapters' connectivity is
down"), so ports pinned to surviving uplinks do not move. Failback decides what
happens when the failed uplink recovers: yes, it takes its slot back; no, it
becomes a standby and the replacement keeps the slot (``after_recovery``).

IP hash needs a static EtherChannel on the physical switch; ports are then not
pinned for reception (the switch hashes too), and the vSwitch pins by port for
transmission like port-ID teaming (one flow per port keeps the model simple).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from vlab.bindings import PortBinding
from vlab.lab.resolve import EffectiveTeaming


def active_slots(teaming: EffectiveTeaming, down: frozenset[str]) -> tuple[Optional[str], ...]:
    """The uplink serving each active slot: the configured active uplink if it
    is up, else the next healthy standby not yet used, else None."""
    spare = [u for u in teaming.standby if u not in down]
    slots: list[Optional[str]] = []
    for u in teaming.active:
        if u not in down:
            slots.append(u)
        elif spare:
            slots.append(spare.pop(0))
        else:
            slots.append(None)
    return tuple(slots)


def pinned_uplink(
    port: PortBinding, teaming: EffectiveTeaming, down: frozenset[str] = frozenset()
) -> Optional[str]:
    """The uplink ``port`` transmits on, or None when no uplink can carry it.

    A port hashes to a slot of the configured active list; only when that slot
    has no uplink is it re-hashed over the surviving ones, so a failure moves
    only the ports that were on the failed uplink."""
    slots = active_slots(teaming, down)
    alive = tuple(u for u in slots if u is not None)
    if not alive:
        return None
    if teaming.policy == "explicit_failover":
        return alive[0]
    if teaming.policy == "source_mac_hash":
        # vSphere: "the virtual switch uses the virtual machine MAC address
        # and the number of uplinks in the NIC team"; the function is not
        # documented. The MAC's last octet modulo the team size (as commonly
        # described) spreads sequentially assigned MACs evenly.
        key = int(port.guest_mac.split(":")[-1], 16)
    else:
        # originating_port (and ip_hash, see the module docstring): the
        # virtual port ID.
        key = port.ofport
    return slots[key % len(slots)] or alive[key % len(alive)]


def after_recovery(teaming: EffectiveTeaming, recovered: str, down: frozenset[str]) -> EffectiveTeaming:
    """The team once ``recovered`` is up again (``down`` still lists it).

    With failback the configured team applies again. Without it, the standby
    that replaced ``recovered`` keeps the active slot and ``recovered`` takes
    that standby's place, until another failure needs it."""
    if teaming.failback or recovered not in teaming.active:
        return teaming
    before = active_slots(teaming, down)
    replacement = before[teaming.active.index(recovered)]
    if replacement is None or replacement == recovered:
        return teaming
    active = tuple(replacement if u == recovered else u for u in teaming.active)
    standby = tuple(recovered if u == replacement else u for u in teaming.standby)
    return replace(teaming, active=active, standby=standby)


def has_reverse_teaming(teaming: EffectiveTeaming) -> bool:
    """True when flooded frames reach a port only from its own uplink: every
    policy that needs no LAG on the physical switch (the switch floods BUM
    frames to every uplink of the team, so only one copy may pass)."""
    return teaming.policy != "ip_hash"

"""NIC teaming: which uplink a vSwitch port transmits on, and how a team
changes when links fail and recover.

ESXi pins each virtual port to one uplink (no per-packet spreading) for the
port-ID and MAC-hash policies; explicit failover takes the first healthy uplink
in order. A failed active uplink is replaced by the first healthy standby
uplink ("use this uplink if one of the active adapters' connectivity is
down"), so ports pinned to surviving uplinks do not move. Failback decides what
happens when the failed uplink recovers: yes, it takes its slot back; no, it
becomes a standby and the replacement keeps the slot (``after_recovery``).

Load-based teaming (route based on physical NIC load, distributed switches
only) places ports by port ID and then moves the busiest port off an uplink
loaded above 75% for 30 s (``controller.loadbalance``); a move lasts while
its uplink is alive.

IP hash needs a static EtherChannel on the physical switch; ports are then not
pinned for reception (the switch delivers each frame once, on any member). For
transmission the uplink is chosen per packet, as vSphere documents it: "the
last octet of both source and destination IP addresses ... XOR ... based on
the number of uplinks", i.e. (src ^ dst) mod N over the active slots
(``ip_hash_bucket``; the flows match it bit by bit, so N is 1, 2, 4 or 8).
A slot whose uplink failed and has no standby goes to a survivor. Frames that
are not IPv4 use slot 0 (vSphere hashes the bytes where the addresses would
be; flows cannot read them).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from vlab.bindings import PortBinding
from vlab.lab.lacp import LAG_HASH_FIELDS
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
    port: PortBinding,
    teaming: EffectiveTeaming,
    down: frozenset[str] = frozenset(),
    mac: Optional[str] = None,
    moved_to: Optional[str] = None,
) -> Optional[str]:
    """The uplink ``port`` transmits on, or None when no uplink can carry it;
    ``mac`` is its effective MAC (source MAC hash; default the configured one);
    ``moved_to`` where load-based teaming moved it (kept while that uplink
    serves an active slot; otherwise the port is placed by its port ID).

    A port hashes to a slot of the configured active list; only when that slot
    has no uplink is it re-hashed over the surviving ones, so a failure moves
    only the ports that were on the failed uplink."""
    slots = active_slots(teaming, down)
    alive = tuple(u for u in slots if u is not None)
    if not alive:
        return None
    if teaming.policy == "explicit_failover":
        return alive[0]
    if teaming.policy == "load_based" and moved_to in alive:
        return moved_to
    if teaming.policy == "source_mac_hash":
        # vSphere: "the virtual switch uses the virtual machine MAC address
        # and the number of uplinks in the NIC team"; the function is not
        # documented. The MAC's last octet modulo the team size (as commonly
        # described) spreads sequentially assigned MACs evenly.
        key = int((mac or port.mac).split(":")[-1], 16)
    else:
        # originating_port, and load_based until it moves the port: the
        # virtual port ID. (ip_hash is chosen per packet by the flows; this
        # is its first bucket's uplink.)
        key = port.ofport
    return slots[key % len(slots)] or alive[key % len(alive)]


def lag_action(teaming: EffectiveTeaming, members: tuple[int, ...], vlan: int) -> tuple:
    """The ``("bundle", fields, basis, members)`` action that sends a frame of
    a ``vlan`` port group out of one LAG member (OpenFlow port numbers)."""
    mode = teaming.load_balancing
    basis = vlan if mode.endswith("Vlan") else 0
    return ("bundle", LAG_HASH_FIELDS[mode], basis, tuple(members))


def ip_hash_bucket(src: str, dst: str, slots: int) -> int:
    """vSphere's IP-hash bucket of a packet: the last octets of its source and
    destination IPv4 addresses, XOR, modulo the number of active uplinks."""
    return (int(src.rsplit(".", 1)[1]) ^ int(dst.rsplit(".", 1)[1])) % slots


def ip_hash_uplinks(
    teaming: EffectiveTeaming, down: frozenset[str] = frozenset()
) -> tuple[Optional[str], ...]:
    """The uplink each IP-hash bucket transmits on (None: no uplink is up)."""
    slots = active_slots(teaming, down)
    alive = tuple(u for u in slots if u is not None)
    if not alive:
        return tuple(None for _ in slots)
    return tuple(u if u is not None else alive[k % len(alive)] for k, u in enumerate(slots))


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
    return teaming.policy not in ("ip_hash", "lag")

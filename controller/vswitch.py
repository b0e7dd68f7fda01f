"""Base vSwitch semantics as a pure flow compiler.

What an ESXi vSwitch does, and so what these flows do:

* No MAC learning: the hypervisor knows every vNIC's and vmk's MAC and port,
  so known unicast goes straight to the owning port.
* VLANs per port group: 0 = EST (untagged), 1-4094 = VST (tagged on uplinks,
  untagged to the guest), 4095 = VGT (the guest sees and sends tags). A VLAN on
  a vSwitch is one broadcast domain, as on ESXi, whatever port group it is in.
* Each local port transmits on one pinned uplink (``teaming.pinned_uplink``).
  Unknown unicast from a guest goes to that uplink only, never to other guests;
  broadcast and multicast go to the other local ports of the VLAN and out the
  pinned uplink.
* Frames from an uplink are never sent to another uplink (no loops without
  STP), and reach a local port only if they came in on the uplink that port is
  pinned to ("reverse teaming": the physical switch delivers a flooded frame on
  every uplink, and only one copy may reach the guest).

``compile_vswitch(binding)`` returns the complete, sorted flow set of one bridge.
"""
from __future__ import annotations

from typing import Iterable, Optional

from vlab.bindings import PortBinding, SwitchBinding

from .pipeline import (OFPVID_NONE, OFPVID_PRESENT, Concern, FlowSpec, Priority,
                       Table, cookie)
from .teaming import pinned_uplink

MULTICAST = ("01:00:00:00:00:00", "01:00:00:00:00:00")
VGT = 4095
COOKIE = cookie(Concern.VSWITCH)


def _vid(vlan: int) -> int:
    """OXM vlan_vid for a VLAN domain (0 = untagged)."""
    return OFPVID_PRESENT | vlan if vlan else OFPVID_NONE


class _View:
    """Per-bridge facts the flow builders share: each local port's VLAN and
    pinned uplink, the uplinks' OpenFlow numbers."""

    def __init__(self, b: SwitchBinding):
        self.b = b
        self.uplink_no = {p.name: p.ofport for p in b.uplink_ports()}
        self.vlan: dict[str, int] = {}
        self.pin: dict[str, Optional[str]] = {}
        for p in b.local_ports():
            pg = b.switch.port_group(p.port_group)
            self.vlan[p.name] = pg.vlan
            self.pin[p.name] = pinned_uplink(p, pg.teaming, b.uplinks_down)
        self.locals = b.local_ports()
        self.domains = sorted({v for v in self.vlan.values() if v != VGT})

    def members(self, vlan: int) -> list[PortBinding]:
        return [p for p in self.locals if self.vlan[p.name] == vlan]

    def vgt_ports(self) -> list[PortBinding]:
        return [p for p in self.locals if self.vlan[p.name] == VGT]

    def uplink_of(self, p: PortBinding) -> Optional[int]:
        up = self.pin[p.name]
        return self.uplink_no[up] if up is not None else None


def _out(tagged: Iterable[int], untagged: Iterable[int], vlan: int) -> tuple:
    """Actions delivering one frame of ``vlan`` (as carried inside the
    pipeline) to trunk-like ports as is and to access ports without its tag."""
    tagged, untagged = sorted(set(tagged)), sorted(set(untagged))
    actions = [("output", p) for p in tagged]
    if untagged:
        if vlan:
            actions.append(("pop_vlan",))
        actions += [("output", p) for p in untagged]
    return tuple(actions)


def _ingress(v: _View) -> list[FlowSpec]:
    flows = [FlowSpec.make(Table.INGRESS, Priority.INGRESS_CLASSIFY, {"in_port": p.ofport},
                           goto=Table.FORWARD, cookie=COOKIE)
             for p in v.b.uplink_ports()]
    for p in v.locals:
        vlan = v.vlan[p.name]
        if vlan == VGT:
            flows.append(FlowSpec.make(Table.INGRESS, Priority.INGRESS_CLASSIFY,
                                       {"in_port": p.ofport}, goto=Table.FORWARD, cookie=COOKIE))
            continue
        # A guest on an EST/VST port group sends untagged frames; tagged ones
        # are dropped (only VGT lets the guest choose its VLAN).
        actions = (("push_vlan", 0x8100), ("set_field", "vlan_vid", _vid(vlan))) if vlan else ()
        flows.append(FlowSpec.make(Table.INGRESS, Priority.INGRESS_CLASSIFY,
                                   {"in_port": p.ofport, "vlan_vid": OFPVID_NONE},
                                   actions, goto=Table.FORWARD, cookie=COOKIE))
    return flows


def _unicast(v: _View) -> list[FlowSpec]:
    flows = []
    for p in v.locals:
        vlan = v.vlan[p.name]
        match = {"eth_dst": p.mac}
        if vlan != VGT:
            match["vlan_vid"] = _vid(vlan)
        deliver = _out([p.ofport], [], 0) if vlan == VGT else _out([], [p.ofport], vlan)
        pinned = v.uplink_of(p)
        for up in v.b.uplink_ports():
            if up.ofport == pinned:
                flows.append(FlowSpec.make(Table.FORWARD, Priority.UPLINK_TO_PINNED_PORT,
                                           {**match, "in_port": up.ofport}, deliver, cookie=COOKIE))
            else:
                flows.append(FlowSpec.make(Table.FORWARD, Priority.UPLINK_TO_OTHER_PORT,
                                           {**match, "in_port": up.ofport}, (), cookie=COOKIE))
        flows.append(FlowSpec.make(Table.FORWARD, Priority.LOCAL_UNICAST, match, deliver,
                                   cookie=COOKIE))
    return flows


def _flood_from_local(v: _View) -> list[FlowSpec]:
    flows = []
    vgt = v.vgt_ports()
    for p in v.locals:
        uplink = [v.uplink_of(p)] if v.uplink_of(p) is not None else []
        others_vgt = [q.ofport for q in vgt if q is not p]
        if v.vlan[p.name] == VGT:
            # A VGT guest picks the VLAN per frame: flood within that VLAN.
            for vlan in v.domains:
                members = [q.ofport for q in v.members(vlan)]
                flows.append(FlowSpec.make(
                    Table.FORWARD, Priority.FLOOD,
                    {"in_port": p.ofport, "vlan_vid": _vid(vlan), "eth_dst": MULTICAST},
                    _out(uplink + others_vgt, members, vlan), cookie=COOKIE))
            flows.append(FlowSpec.make(
                Table.FORWARD, Priority.FLOOD - 10, {"in_port": p.ofport, "eth_dst": MULTICAST},
                _out(uplink + others_vgt, [], 0), cookie=COOKIE))
        else:
            vlan = v.vlan[p.name]
            members = [q.ofport for q in v.members(vlan) if q is not p]
            flows.append(FlowSpec.make(
                Table.FORWARD, Priority.FLOOD, {"in_port": p.ofport, "eth_dst": MULTICAST},
                _out(uplink + others_vgt, members, vlan), cookie=COOKIE))
        # Unknown unicast: to the pinned uplink only (never flooded to guests).
        flows.append(FlowSpec.make(Table.FORWARD, Priority.PORT_DEFAULT, {"in_port": p.ofport},
                                   _out(uplink, [], 0), cookie=COOKIE))
    return flows


def _flood_from_uplinks(v: _View) -> list[FlowSpec]:
    flows = []
    for up in v.b.uplink_ports():
        pinned_here = lambda ports: [q.ofport for q in ports if v.uplink_of(q) == up.ofport]  # noqa: E731
        vgt = pinned_here(v.vgt_ports())
        for vlan in v.domains:
            flows.append(FlowSpec.make(
                Table.FORWARD, Priority.FLOOD,
                {"in_port": up.ofport, "vlan_vid": _vid(vlan), "eth_dst": MULTICAST},
                _out(vgt, pinned_here(v.members(vlan)), vlan), cookie=COOKIE))
        if vgt:
            flows.append(FlowSpec.make(Table.FORWARD, Priority.FLOOD - 10,
                                       {"in_port": up.ofport, "eth_dst": MULTICAST},
                                       _out(vgt, [], 0), cookie=COOKIE))
    return flows


def compile_vswitch(binding: SwitchBinding) -> list[FlowSpec]:
    """Every flow of one vSwitch bridge, sorted (stable for diffing)."""
    v = _View(binding)
    return sorted(_ingress(v) + _unicast(v) + _flood_from_local(v) + _flood_from_uplinks(v))

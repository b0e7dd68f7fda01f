"""vSwitch semantics as a pure flow compiler.

What an ESXi vSwitch does, and so what these flows do:

* No MAC learning, in any mode: the hypervisor knows every vNIC's and vmk's
  MAC and port, so known unicast goes straight to the owning port, and unknown
  unicast from a guest goes to its pinned uplink only, never to other guests.
* VLANs per port group: 0 = EST (untagged), 1-4094 = VST (tagged on uplinks,
  untagged to the guest), 4095 = VGT (the guest sees and sends tags). A VLAN on
  a vSwitch is one broadcast domain, as on ESXi, whatever port group it is in.
* Teaming pins each local port to one uplink (``teaming.pinned_uplink``),
  except IP hash: vs_in_port writes a port's IPv4 packets' hash bucket into
  ``HASH_REG`` and vs_forward sends each bucket by its own uplink
  (``teaming.ip_hash_uplinks``); and a LAG, whose ports' frames leave by
  OVS's ``bundle`` action over its members (``teaming.lag_action``: the
  members host OVS's LACP has in the bundle). Frames from an uplink never
  go to another uplink (no loops without STP).
* Security policy per port group (``controller.portsecurity``, shared with
  NSX logical switches). Forged transmits = reject: a guest frame whose
  source MAC is not the port's effective MAC is dropped at ingress. MAC
  address changes = reject: the effective MAC stays the configured one, and
  once the guest's MAC differs from it nothing is delivered to the port;
  = accept: the effective MAC is the guest's, and frames to it are
  delivered. Promiscuous = accept and the guest's NIC is in
  promiscuous mode: the port also receives every frame of its VLAN that the
  vSwitch handles on this host (the automatic monitor port; no mirror session).
* Multicast is delivered by each vNIC's own multicast filter (what the guest
  driver programmed; no IGMP snooping on the vSwitch), so a group sharing a
  MAC with a joined group (the 32:1 overlap) is delivered too.

Delivery to a local port happens in two steps, named after pktcap-uw's
capture points. ``PortOutput``: the ports a frame is dispatched to (its
destination, broadcast/multicast members, promiscuous ports). ``VnicRx``: what
passes the port's receive filters: reverse teaming (a frame that came in on an
uplink passes only if it is the uplink the port transmits on, because the
physical switch floods BUM frames to every uplink and only one copy may reach
the guest; promiscuous ports are filtered the same way), the MAC-change
policy and the multicast filter. A port with a PortOutput capture session gets
a copy of every dispatched frame, 802.1Q tag included, before the filters.

``compile_vswitch(binding)`` returns the complete, sorted flow set of one bridge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from vlab.bindings import CAPTURE_BASE, PortBinding, SwitchBinding
from vlab.lab.model import VGT_VLAN
from vlab.protocols import ETH_IPV4, ETH_VLAN

from .beacon import ETH_BEACON, beaconing, uplink_mac
from .pipeline import OFPVID_NONE, OFPVID_PRESENT, Concern, FlowSpec, Priority, Table, cookie
from .portsecurity import PortSecurity
from .teaming import has_reverse_teaming, ip_hash_uplinks, lag_action, pinned_uplink

BROADCAST = "ff:ff:ff:ff:ff:ff"
MULTICAST = ("01:00:00:00:00:00", "01:00:00:00:00:00")
VGT = VGT_VLAN
COOKIE = cookie(Concern.VSWITCH)
HASH_REG = "reg1"  # an IP-hash port's packet: its bucket, from vs_in_port to vs_forward


def _vlan_name(vlan: int) -> str:
    if vlan == VGT:
        return "VLAN 4095 (VGT: every VLAN)"
    return f"VLAN {vlan} (VST)" if vlan else "VLAN 0 (EST, untagged)"


def _vid(vlan: int) -> int:
    """OXM vlan_vid for a VLAN domain (0 = untagged)."""
    return OFPVID_PRESENT | vlan if vlan else OFPVID_NONE


@dataclass(frozen=True)
class Dst:
    """A class of destination address, as forwarding distinguishes them."""

    kind: str  # unicast | broadcast | group | multicast | unknown
    mac: Optional[str] = None


def capture_port(p: PortBinding) -> int:
    """OpenFlow number of ``p``'s PortOutput capture port."""
    return CAPTURE_BASE + p.ofport


class View:
    """Per-bridge facts the flow builders share, and the predicates they
    compile, each also able to say why not (``*_refusal``), so a trace
    explains a drop with the rule that made it (controller.explain)."""

    def __init__(self, b: SwitchBinding):
        self.b = b
        self.uplink_no = {p.name: p.ofport for p in b.uplink_ports()}
        self.locals = b.local_ports()
        self.vlan = {p.name: b.switch.port_group(p.port_group).vlan for p in self.locals}
        self.pin: dict[str, Optional[int]] = {}
        # IP-hash ports: the uplink of each hash bucket (the pin is bucket 0's).
        self.ip_hash: dict[str, tuple[Optional[int], ...]] = {}
        # Beacon probing in shotgun: every live uplink of the team.
        self.shotgun: dict[str, list[int]] = {}
        # Ports whose team is a LAG: the bundle action that picks a member.
        self.lag: dict[str, tuple] = {}
        self.security: dict[str, PortSecurity] = {}
        self.teaming = {}
        for p in self.locals:
            team = b.teaming(p.port_group)
            self.security[p.name] = PortSecurity.of(b, p)
            down = b.down_for(team)
            up = pinned_uplink(p, team, down, self.security[p.name].effective_mac, b.moved_to(p.name))
            self.pin[p.name] = self.uplink_no[up] if up is not None else None
            if b.shotgun and team.failure_detection == "beacon_probing":
                live = [u for u in team.active + team.standby if u not in b.uplinks_down]
                self.shotgun[p.name] = [self.uplink_no[u] for u in live]
            elif team.lag is not None:
                # A LAG with no vmnic on this host: no way out (pin None).
                members = tuple(self.uplink_no[u] for u in team.active)
                if members:
                    self.lag[p.name] = lag_action(team, members, b.switch.port_group(p.port_group).vlan)
                self.pin[p.name] = None
            elif team.policy == "ip_hash":
                buckets = ip_hash_uplinks(team, down)
                self.ip_hash[p.name] = tuple(self.uplink_no.get(u) for u in buckets)
                self.pin[p.name] = self.ip_hash[p.name][0] if buckets else None
            self.teaming[p.name] = team
        self.domains = sorted({v for v in self.vlan.values() if v != VGT})

    # -- who is who --------------------------------------------------------
    def members(self, vlan: Optional[int]) -> list[PortBinding]:
        """Local ports in a VLAN (VGT ports are in every VLAN); None = VGT only."""
        return [p for p in self.locals if self.vlan[p.name] == VGT or self.vlan[p.name] == vlan]

    def delivery_mac(self, p: PortBinding) -> str:
        """The unicast address frames reach ``p`` by: its effective MAC."""
        return self.security[p.name].effective_mac

    def promiscuous(self, p: PortBinding) -> bool:
        return self.security[p.name].promiscuous

    # -- the two delivery steps --------------------------------------------
    def port_output(self, src: Optional[PortBinding], vlan: Optional[int], dst: Dst) -> list[PortBinding]:
        """Local ports a frame is dispatched to (pktcap-uw PortOutput)."""
        members = [p for p in self.members(vlan) if p is not src]
        if dst.kind == "unicast":
            return [p for p in members if self.delivery_mac(p) == dst.mac or self.promiscuous(p)]
        if dst.kind == "unknown":
            return [p for p in members if self.promiscuous(p)]
        return members

    def vnic_rx(self, p: PortBinding, from_uplink: Optional[int], dst: Dst) -> bool:
        """Does a dispatched frame pass ``p``'s receive filters (VnicRx)?"""
        return self.rx_refusal(p, from_uplink, dst) is None

    # -- why not: the same predicates, as the reasons a trace gives ----------
    def rx_refusal(self, p: PortBinding, from_uplink: Optional[int], dst: Dst) -> Optional[str]:
        """Which of ``p``'s receive filters refuses a dispatched frame, in
        ESXi's terms (None: it is delivered)."""
        blocked = self.security[p.name].inbound_refusal()
        if blocked:
            return blocked
        if from_uplink is not None and p.name in self.lag and from_uplink not in self.lag[p.name][3]:
            # The port channel delivers each frame once, by one member of the
            # LAG; a copy flooded to another uplink is not the LAG's.
            return (
                f"reverse teaming: came in on {self.uplink_name(from_uplink)}, not a member of "
                f"{self.teaming[p.name].lag}, the LAG {p.name} transmits on"
            )
        if (
            from_uplink is not None
            and has_reverse_teaming(self.teaming[p.name])
            and from_uplink not in self.shotgun.get(p.name, [self.pin[p.name]])
        ):
            pinned = self.uplink_name(self.pin[p.name])
            return f"reverse teaming: came in on {self.uplink_name(from_uplink)}, " + (
                f"{p.name} transmits on {pinned}" if pinned else f"{p.name} has no active uplink"
            )
        if dst.kind in ("group", "multicast"):
            if self.promiscuous(p) or p.guest.allmulti or p.guest.mcast is None:
                return None
            if not (dst.kind == "group" and dst.mac in p.guest.mcast):
                return f"multicast filter: {p.name}'s guest has not joined {dst.mac or 'this multicast MAC'}"
        return None

    def dispatch_refusal(
        self, p: PortBinding, src: Optional[PortBinding], vlan: Optional[int], dst: Dst
    ) -> Optional[str]:
        """Why ``p`` is not among the ports a frame is dispatched to
        (PortOutput), or None when it is."""
        if p is src:
            return f"a frame never goes back to the port it came from ({p.name})"
        if p not in self.members(vlan):
            mine = self.vlan[p.name]
            return f"VLAN: {p.name} is in {_vlan_name(mine)}, the frame in {_vlan_name(vlan or 0)}"
        if dst.kind == "unicast" and self.delivery_mac(p) != dst.mac and not self.promiscuous(p):
            return f"the frame is for {dst.mac}; {p.name} receives unicast for {self.delivery_mac(p)}"
        if dst.kind == "unknown" and not self.promiscuous(p):
            return (
                f"unknown unicast: no port here has {dst.mac or 'that MAC'}, and a vSwitch "
                f"(which learns nothing) floods unknown unicast to no port"
            )
        return None

    def ingress_refusal(self, p: PortBinding, eth_src: str, tagged: bool) -> Optional[str]:
        """Why the vSwitch refuses a frame ``p`` sends, at its door."""
        forged = self.security[p.name].forged_refusal(eth_src)
        if forged:
            return forged
        if tagged and self.vlan[p.name] != VGT:
            return (
                f"VLAN: {p.name}'s port group {p.port_group} is "
                f"{_vlan_name(self.vlan[p.name])}; only a VGT (4095) port group lets "
                f"the guest send 802.1Q-tagged frames"
            )
        return None

    def uplink_name(self, ofport: Optional[int]) -> Optional[str]:
        return next((name for name, n in self.uplink_no.items() if n == ofport), None)

    def classify(self, vlan: Optional[int], mac: str) -> Dst:
        """The class of destination ``mac`` is in ``vlan`` here."""
        mac = mac.lower()
        for dst in self.exact_destinations(vlan):
            if dst.mac == mac:
                return dst
        return Dst("multicast", mac) if int(mac[:2], 16) & 1 else Dst("unknown", mac)

    # -- address classes seen in a VLAN -------------------------------------
    def exact_destinations(self, vlan: Optional[int]) -> list[Dst]:
        members = self.members(vlan)
        unicast = sorted({self.delivery_mac(p) for p in members})
        groups = sorted({m for p in members if p.guest.mcast for m in p.guest.mcast} - {BROADCAST})
        return (
            [Dst("unicast", m) for m in unicast]
            + [Dst("broadcast", BROADCAST)]
            + [Dst("group", m) for m in groups]
        )


def _actions(
    v: View,
    vlan: Optional[int],
    uplinks: list[int],
    dispatched: list[PortBinding],
    from_uplink: Optional[int],
    dst: Dst,
) -> tuple:
    """Capture copies and tagged outputs first (a LAG's bundle action among
    them), then pop the tag for access ports."""
    accepted = [p for p in dispatched if v.vnic_rx(p, from_uplink, dst)]
    bundles = [u for u in uplinks if isinstance(u, tuple)]
    tagged = sorted(
        {u for u in uplinks if not isinstance(u, tuple)}
        | {capture_port(p) for p in dispatched if p.capture}
        | {p.ofport for p in accepted if v.vlan[p.name] == VGT}
    )
    untagged = sorted({p.ofport for p in accepted if v.vlan[p.name] != VGT})
    actions = [("output", n) for n in tagged] + bundles
    if untagged:
        if vlan:
            actions.append(("pop_vlan",))
        actions += [("output", n) for n in untagged]
    return tuple(actions)


def _flow(table, priority, match, actions=(), goto=None) -> FlowSpec:
    return FlowSpec.make(table, priority, match, actions, goto, cookie=COOKIE)


def _ip_hash_buckets(v: View, p: PortBinding, match: dict, actions: tuple) -> list[FlowSpec]:
    """An IP-hash port's IPv4 packets, one flow per combination of the low
    bits of their addresses' last octets: the bucket (src ^ dst) mod N into
    HASH_REG (N is a power of two, so that is the XOR of the low bits)."""
    n = len(v.ip_hash.get(p.name, ()))
    if n < 2:
        return []
    low = f"0.0.0.{n - 1}"
    return [
        _flow(
            Table.INGRESS,
            Priority.INGRESS_IP_HASH,
            {**match, "eth_type": ETH_IPV4, "ipv4_src": (f"0.0.0.{a}", low), "ipv4_dst": (f"0.0.0.{b}", low)},
            actions + (("set_field", HASH_REG, a ^ b),),
            goto=Table.FORWARD,
        )
        for a in range(n)
        for b in range(n)
    ]


def _uplink_choices(v: View, src: Optional[PortBinding]) -> list[tuple[dict, list[int]]]:
    """(extra match, uplinks) for a frame ``src`` sends out of its team: one
    choice for a pinned port, one per hash bucket for an IP-hash port; a LAG
    port's one choice is its bundle action in place of an uplink number."""
    if src is None:
        return [({}, [])]
    if src.name in v.lag:
        return [({}, [v.lag[src.name]])]
    if src.name in v.shotgun:
        return [({}, v.shotgun[src.name])]
    buckets = v.ip_hash.get(src.name)
    if buckets is None:
        return [({}, [v.pin[src.name]] if v.pin[src.name] is not None else [])]
    return [({HASH_REG: k}, [u] if u is not None else []) for k, u in enumerate(buckets)]


def _ingress(v: View) -> list[FlowSpec]:
    flows = [
        _flow(Table.INGRESS, Priority.INGRESS_CLASSIFY, {"in_port": p.ofport}, goto=Table.FORWARD)
        for p in v.b.uplink_ports()
    ]
    # On a beaconing uplink: this vSwitch's own beacons (from its other
    # uplinks' MACs) go to the controller; any other beacon is dropped.
    team = beaconing(v.b)
    for u in team:
        flows.append(
            _flow(Table.INGRESS, Priority.BEACON_OTHER, {"in_port": v.uplink_no[u], "eth_type": ETH_BEACON})
        )
        for sender in team:
            if sender != u:
                src = uplink_mac(v.b.host, sender)
                match = {"in_port": v.uplink_no[u], "eth_type": ETH_BEACON, "eth_src": src}
                flows.append(_flow(Table.INGRESS, Priority.BEACON, match, (("output", "controller"),)))
    for p in v.locals:
        # Forged transmits = reject: only frames from the effective MAC get in.
        match: dict = {"in_port": p.ofport, **v.security[p.name].source_match()}
        vlan = v.vlan[p.name]
        if vlan == VGT:
            flows.append(_flow(Table.INGRESS, Priority.INGRESS_CLASSIFY, match, goto=Table.FORWARD))
            flows += _ip_hash_buckets(v, p, match, ())
            continue
        # A guest on an EST/VST port group sends untagged frames; tagged ones
        # are dropped (only VGT lets the guest choose its VLAN).
        actions = (("push_vlan", ETH_VLAN), ("set_field", "vlan_vid", _vid(vlan))) if vlan else ()
        untagged = {**match, "vlan_vid": OFPVID_NONE}
        flows.append(_flow(Table.INGRESS, Priority.INGRESS_CLASSIFY, untagged, actions, goto=Table.FORWARD))
        flows += _ip_hash_buckets(v, p, untagged, actions)
    return flows + [_flow(Table.INGRESS, Priority.INGRESS_REFUSED, {"in_port": p.ofport}) for p in v.locals]


def _forward_from(v: View, in_port: int, src: Optional[PortBinding], vlan: int) -> list[FlowSpec]:
    """FORWARD flows for frames of ``vlan`` entering on ``in_port`` (an uplink
    when ``src`` is None, else the local port ``src``)."""
    from_uplink = in_port if src is None else None
    base = {"in_port": in_port, "vlan_vid": _vid(vlan)}
    flows = []
    for dst in v.exact_destinations(vlan):
        # Known unicast stays on the host; everything else also leaves by the
        # source's own uplink (never from one uplink to another).
        for extra, out in [({}, [])] if dst.kind == "unicast" else _uplink_choices(v, src):
            flows.append(
                _flow(
                    Table.FORWARD,
                    Priority.EXACT,
                    {**base, **extra, "eth_dst": dst.mac},
                    _actions(v, vlan, out, v.port_output(src, vlan, dst), from_uplink, dst),
                )
            )
    for dst, prio, match in (
        (Dst("multicast"), Priority.MULTICAST, {**base, "eth_dst": MULTICAST}),
        (Dst("unknown"), Priority.DEFAULT, base),
    ):
        for extra, out in _uplink_choices(v, src):
            flows.append(
                _flow(
                    Table.FORWARD,
                    prio,
                    {**match, **extra},
                    _actions(v, vlan, out, v.port_output(src, vlan, dst), from_uplink, dst),
                )
            )
    return flows


def _forward_vgt_other_vlans(v: View, in_port: int, src: Optional[PortBinding]) -> list[FlowSpec]:
    """Frames of VLANs no EST/VST port group uses here: only VGT ports and
    the uplink carry them."""
    from_uplink = in_port if src is None else None
    choices = [c for c in _uplink_choices(v, src) if c[1]]
    vgt = [p for p in v.members(None) if p is not src]
    if not vgt and not choices:
        return []
    flows = [
        _flow(
            Table.FORWARD,
            Priority.MULTICAST_ANY_VLAN,
            {"in_port": in_port, "eth_dst": MULTICAST, **extra},
            _actions(v, None, out, vgt, from_uplink, Dst("multicast")),
        )
        for extra, out in _uplink_choices(v, src)
    ]
    for p in vgt:
        dst = Dst("unicast", v.delivery_mac(p))
        flows.append(
            _flow(
                Table.FORWARD,
                Priority.EXACT_ANY_VLAN,
                {"in_port": in_port, "eth_dst": dst.mac},
                _actions(v, None, [], [p], from_uplink, dst),
            )
        )
    for extra, out in choices:
        flows.append(
            _flow(
                Table.FORWARD,
                Priority.DEFAULT_ANY_VLAN,
                {"in_port": in_port, **extra},
                _actions(v, None, out, [], None, Dst("unknown")),
            )
        )
    return flows


def _forward(v: View) -> list[FlowSpec]:
    flows = []
    for up in v.b.uplink_ports():
        for vlan in v.domains:
            flows += _forward_from(v, up.ofport, None, vlan)
        flows += _forward_vgt_other_vlans(v, up.ofport, None)
    for p in v.locals:
        vlan = v.vlan[p.name]
        if vlan == VGT:
            for domain in v.domains:
                flows += _forward_from(v, p.ofport, p, domain)
            flows += _forward_vgt_other_vlans(v, p.ofport, p)
        else:
            flows += _forward_from(v, p.ofport, p, vlan)
    return flows


def compile_vswitch(binding: SwitchBinding) -> list[FlowSpec]:
    """Every flow of one vSwitch bridge, sorted (stable for diffing)."""
    v = View(binding)
    refused = [
        _flow(Table.FORWARD, Priority.FORWARD_REFUSED, {"in_port": p.ofport})
        for p in (*binding.uplink_ports(), *v.locals)
    ]
    return sorted(_ingress(v) + _forward(v) + refused, key=lambda f: (f.table, -f.priority, repr(f.match)))


def pinning(binding: SwitchBinding) -> dict[str, Optional[str]]:
    """Local port name -> the uplink it transmits on (esxtop's TEAM-PNIC),
    or its LAG's name when its team is a LAG (a member per packet)."""
    v = View(binding)
    names = {n: name for name, n in v.uplink_no.items()}
    return {p.name: v.teaming[p.name].lag if p.name in v.lag else names.get(v.pin[p.name]) for p in v.locals}

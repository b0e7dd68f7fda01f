"""The NSX distributed firewall (DFW) as a pure flow compiler.

On ESXi the DFW is a filter in the vNIC's slot (dvfilter): everything the VM
sends and receives passes it, wherever the VM runs and however the packet
arrived, so it sees every connection whole. Here each protected vNIC gets its
own connection-tracking zone in its host's vSwitch:

* frames a protected VM sends: IPv4 ones are sent from table INGRESS through
  ``ct`` in the vNIC's zone to DFW_FROM_VM, which passes established and
  related packets, drops invalid ones, decides new connections by the rules
  (first match wins, then the default action), commits allowed ones and
  resubmits them where they were going (FORWARD, or DISCOVERY on an overlay);
* frames for a protected vNIC: every ``output`` to it, in whatever table the
  other concerns put it, becomes "remember the port in reg0, resubmit to
  DFW_TO_VM", which tracks IPv4 in the destination vNIC's zone and
  DFW_TO_VM_CT gives the same kind of verdict before the output.

A rule is evaluated at a vNIC for the direction in which the VM is one of its
endpoints: at the source VM's vNIC for what it sends (its destinations become
``ipv4_dst`` matches), at the destination VM's vNIC for what it receives. ARP
and other non-IP frames pass: the DFW is an L3/L4 filter.

vMotion carries the VM's connection table to the new host (``Session``s, read
from the old host's conntrack): the new host commits those connections on
their first packet in either direction, as an imported state entry, before
any rule is asked. ``protect(flows, binding, lab, sessions)`` returns the
bridge's flow list with the DFW in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import Optional

from vlab.bindings import SwitchBinding, conntrack_zones, dfw_protected_vms
from vlab.lab.firewall import Service, resolve, scope
from vlab.lab.model import FirewallRule, Lab
from vlab.protocols import ETH_IPV4 as IPV4
from vlab.protocols import IPPROTO_TCP, IPPROTO_UDP

from .pipeline import Concern, FlowSpec, Priority, Table, cookie

COOKIE = cookie(Concern.DFW)
DEST_REG = "reg0"  # the protected vNIC an output was meant for

# ct_state bits (OVS nicira extension)
NEW, EST, REL, INV, TRK = 0x01, 0x02, 0x04, 0x10, 0x20


@dataclass(frozen=True, order=True)
class Session:
    """One tracked connection, as conntrack's original direction has it."""

    proto: int
    src: str
    dst: str
    sport: Optional[int] = None
    dport: Optional[int] = None

    def to_json(self) -> list:
        return [self.proto, self.src, self.dst, self.sport, self.dport]

    @staticmethod
    def from_json(item: list) -> "Session":
        """From [proto, src, dst, sport, dport] (an expiry may follow)."""
        return Session(*item[:5])


def expiry_of(item: list) -> Optional[float]:
    """The wall-clock time an exported session ages out (its conntrack
    entry's remaining timeout at export), or None when it was not recorded."""
    return item[5] if len(item) > 5 else None


def _port_masks(low: int, high: int) -> list[int | tuple[int, int]]:
    """A port range as value/mask pairs (OpenFlow has no range match)."""
    out: list[int | tuple[int, int]] = []
    while low <= high:
        size = low & -low if low else 1 << 16
        while low + size - 1 > high:
            size >>= 1
        out.append(low if size == 1 else (low, 0xFFFF & ~(size - 1)))
        low += size
    return out


def _service_matches(service: Service) -> list[dict]:
    if service.proto is None:
        return [{}]
    if service.ports is None:
        return [{"ip_proto": service.proto}]
    field = f"{service.name}_dst"
    return [{"ip_proto": service.proto, field: m} for m in _port_masks(*service.ports)]


def _net_match(field: str, net: IPv4Network) -> dict:
    if net.prefixlen == 0:
        return {}
    if net.prefixlen == 32:
        return {field: str(net.network_address)}
    return {field: (str(net.network_address), str(net.netmask))}


def _rule_matches(lab: Lab, rule: FirewallRule, vm: str, sending: bool) -> list[dict]:
    """Matches for ``rule`` at ``vm``'s vNIC, for what it sends (``sending``)
    or receives; empty when the rule cannot apply there."""
    sources, dests = resolve(lab, rule.sources), resolve(lab, rule.destinations)
    me, peer, peer_field = (sources, dests, "ipv4_dst") if sending else (dests, sources, "ipv4_src")
    own_field = "ipv4_src" if sending else "ipv4_dst"
    if me.holds_vm(vm):
        mine: list[dict] = [{}]  # the vNIC itself is the endpoint
    elif me.networks:
        mine = [_net_match(own_field, n) for n in me.networks]
    else:
        return []
    peers = [_net_match(peer_field, n) for n in peer.networks_of(lab)]
    services = [m for s in rule.services for m in _service_matches(Service.parse(s))]
    return [{**a, **b, **c} for a in mine for b in peers for c in services]


def _session_matches(s: Session) -> list[dict]:
    """A session in both orientations: its first packet on the new host may
    be a reply."""
    out = []
    for src, dst, sport, dport in ((s.src, s.dst, s.sport, s.dport), (s.dst, s.src, s.dport, s.sport)):
        m: dict = {"ip_proto": s.proto, "ipv4_src": src, "ipv4_dst": dst}
        name = {IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp"}.get(s.proto)
        if name and sport is not None:
            m[f"{name}_src"], m[f"{name}_dst"] = sport, dport
        out.append(m)
    return out


def _flow(table: int, priority: int, match: dict, actions=()) -> FlowSpec:
    return FlowSpec.make(table, priority, match, actions, cookie=COOKIE)


def _verdicts(
    lab: Lab,
    vm: str,
    zone: int,
    table: int,
    key: dict,
    sending: bool,
    allow: tuple,
    sessions: tuple[Session, ...],
) -> list[FlowSpec]:
    """The verdict flows of one direction of one vNIC: ``key`` identifies the
    vNIC (in_port or reg0), ``allow`` is what passing means there."""
    dfw = lab.distributed_firewall
    commit = (("ct", True, zone, None),) + allow
    state = lambda bits, mask: {**key, "eth_type": IPV4, "ct_state": (bits, mask)}  # noqa: E731
    flows = [
        _flow(table, Priority.DFW_STATE, state(TRK | EST, TRK | EST), allow),
        _flow(table, Priority.DFW_STATE, state(TRK | REL, TRK | REL), allow),
        _flow(table, Priority.DFW_INVALID, state(TRK | INV, TRK | INV)),
    ]
    new = state(TRK | NEW, TRK | NEW)
    for s in sessions:
        flows += [_flow(table, Priority.DFW_IMPORTED, {**new, **m}, commit) for m in _session_matches(s)]
    for i, rule in enumerate(dfw.rules):
        if vm not in scope(lab, rule.applied_to):
            continue
        actions = commit if rule.action == "allow" else ()
        flows += [
            _flow(table, Priority.DFW_RULES - i, {**new, **m}, actions)
            for m in _rule_matches(lab, rule, vm, sending)
        ]
    flows.append(_flow(table, Priority.DFW_DEFAULT, new, commit if dfw.default_action == "allow" else ()))
    return flows


def _detour(action: tuple, protected: dict) -> tuple:
    if action[0] == "output" and action[1] in protected:
        return (("set_field", DEST_REG, action[1]), ("resubmit", Table.DFW_TO_VM))
    return (action,)


def protect(
    flows: list[FlowSpec],
    binding: SwitchBinding,
    lab: Lab,
    sessions: Optional[dict[str, tuple[Session, ...]]] = None,
) -> list[FlowSpec]:
    """``flows`` of one bridge with the DFW placed in front of every
    protected vNIC on it; unchanged when the lab has no DFW."""
    vms = dfw_protected_vms(lab)
    ports = {p.ofport: p for p in binding.ports if p.kind == "vnic" and p.owner in vms}
    if not ports:
        return flows
    zones, sessions = conntrack_zones(lab), sessions or {}
    out: list[FlowSpec] = []
    resume: dict[int, int] = {}  # in_port -> table its frames continue in
    for f in flows:
        match = dict(f.match)
        if f.table == Table.INGRESS and match.get("in_port") in ports and f.goto is not None:
            port = match["in_port"]
            resume[port] = f.goto
            # The vSwitch's own checks (forged transmits, VLAN) and an IP-hash
            # bucket stay in this flow; its IPv4 frames then detour through
            # the vNIC's zone. The copies keep the originals' order.
            out.append(
                _flow(
                    Table.INGRESS,
                    Priority.DFW_DETOUR + f.priority - Priority.INGRESS_CLASSIFY,
                    {**match, "eth_type": IPV4},
                    f.actions + (("ct", False, zones[ports[port].name], Table.DFW_FROM_VM),),
                )
            )
        actions = tuple(a for action in f.actions for a in _detour(action, ports))
        out.append(FlowSpec(f.table, f.priority, f.match, actions, f.goto, f.cookie))
    for ofport, p in sorted(ports.items()):
        zone, mine = zones[p.name], sessions.get(p.name, ())
        if ofport in resume:
            out += _verdicts(
                lab,
                p.owner,
                zone,
                Table.DFW_FROM_VM,
                {"in_port": ofport},
                True,
                (("resubmit", resume[ofport]),),
                mine,
            )
        key = {DEST_REG: ofport}
        out += [
            _flow(
                Table.DFW_TO_VM,
                Priority.DFW_TO_CT,
                {**key, "eth_type": IPV4},
                (("ct", False, zone, Table.DFW_TO_VM_CT),),
            ),
            _flow(Table.DFW_TO_VM, Priority.DFW_NON_IP, key, (("output", ofport),)),
        ]
        out += _verdicts(lab, p.owner, zone, Table.DFW_TO_VM_CT, key, False, (("output", ofport),), mine)
    return out

"""ARP suppression on one host, as a pure flow compiler.

With ARP suppression on a logical switch, an ARP request from a local VM
for an IP in the controller's ARP table is answered by the host itself: the
reply is built from the request in the switch (swap the addresses, fill in
the MAC from the table) and sent back out of the requester's port. Nothing
crosses the physical network. A request for an unknown IP misses and is
replicated like any broadcast (table L2).

The distributed router's interfaces answer ARP for their own gateway IP
with the vMAC on every host, whether suppression is on or not: the router
is local everywhere.

``compile_arp(binding, tables)`` returns the ARP-table flows of the bridge.
"""

from __future__ import annotations

from vlab.bindings import SwitchBinding
from vlab.protocols import ARP_REPLY, ARP_REQUEST, ETH_ARP

from .nsx import NsxTables
from .pipeline import Concern, FlowSpec, Priority, Table, cookie

COOKIE = cookie(Concern.ARP_SUPPRESSION)


def reply_actions(mac: str, ip: str) -> tuple:
    """Turn an ARP request for ``ip`` into the reply ``ip is at mac``, back
    to the requester (OVS's classic in-switch ARP responder)."""
    return (
        ("move", "eth_src", "eth_dst", 48),
        ("set_field", "eth_src", mac),
        ("set_field", "arp_op", ARP_REPLY),
        ("move", "arp_sha", "arp_tha", 48),
        ("move", "arp_spa", "arp_tpa", 32),
        ("set_field", "arp_sha", mac),
        ("set_field", "arp_spa", ip),
        ("output", "in_port"),
    )


def _flow(priority, match, actions=(), goto=None) -> FlowSpec:
    return FlowSpec.make(Table.ARP, priority, match, actions, goto, cookie=COOKIE)


def compile_arp(binding: SwitchBinding, tables: NsxTables) -> list[FlowSpec]:
    if binding.tunnel_port() is None:
        return []
    flows = [_flow(Priority.MISS, {}, goto=Table.ROUTE)]
    vnis = sorted({tables.vni(p.logical_switch) for p in binding.logical_ports()})
    for vni in vnis:
        request = {"tunnel_id": vni, "eth_type": ETH_ARP, "arp_op": ARP_REQUEST}
        answers: dict[str, str] = {}
        if tables.switches[vni].arp_suppression:
            answers.update({ip: mac for (v, ip), mac in tables.arp_table.items() if v == vni})
        lif = tables.router_ports.get(vni)
        if lif is not None:
            answers[str(lif.ip.ip)] = lif.mac
        for ip, mac in sorted(answers.items()):
            flows.append(_flow(Priority.EXACT, {**request, "arp_tpa": ip}, reply_actions(mac, ip)))
    return flows

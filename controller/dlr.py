"""The NSX distributed logical router on one host, as a pure flow compiler.

Every prepared host runs an instance of each distributed router: its
interfaces (LIFs) have the same gateway IP and virtual MAC on every host, so
a VM's first hop is always local. A frame a local VM sends to the vMAC for
an IP on another of the router's logical switches is routed right here: new
source MAC (the vMAC), destination MAC from the controller's ARP table, TTL
decremented, VNI changed to the destination switch. Table L2 then delivers
it to a local port, or encapsulates it straight to the destination VM's
VTEP. Routed traffic between two VMs on one host never leaves the host;
between hosts it crosses the underlay once, VTEP to VTEP.

Destinations the ARP table does not know are dropped (a real DLR would ARP
for them; here the ARP table is complete once the guests are up).

``compile_router(binding, tables)`` returns the ROUTE-table flows of the bridge.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from vlab.bindings import SwitchBinding
from vlab.protocols import ETH_IPV4

from .nsx import NsxTables
from .pipeline import Concern, FlowSpec, Priority, Table, cookie

COOKIE = cookie(Concern.ROUTER)


def _flow(priority, match, actions=(), goto=None) -> FlowSpec:
    return FlowSpec.make(Table.ROUTE, priority, match, actions, goto, cookie=COOKIE)


def compile_router(binding: SwitchBinding, tables: NsxTables) -> list[FlowSpec]:
    if binding.tunnel_port() is None:
        return []
    flows = [_flow(Priority.MISS, {}, goto=Table.L2)]
    local_vnis = {tables.vni(p.logical_switch) for p in binding.logical_ports()}
    for src_vni in sorted(local_vnis):
        src_lif = tables.router_ports.get(src_vni)
        if src_lif is None:
            continue
        to_router = {"tunnel_id": src_vni, "eth_dst": src_lif.mac}
        # Frames for the vMAC that no route below takes: dropped.
        flows.append(_flow(Priority.DEFAULT, to_router))
        for dst_vni, lif in sorted(tables.router_ports.items()):
            if lif.router != src_lif.router or dst_vni == src_vni:
                continue
            for (v, ip), mac in sorted(tables.arp_table.items()):
                if v != dst_vni or IPv4Address(ip) not in lif.ip.network:
                    continue
                flows.append(
                    _flow(
                        Priority.EXACT,
                        {**to_router, "eth_type": ETH_IPV4, "ipv4_dst": ip},
                        (
                            ("set_field", "eth_src", lif.mac),
                            ("set_field", "eth_dst", mac),
                            ("dec_ttl",),
                            ("set_field", "tunnel_id", dst_vni),
                        ),
                        goto=Table.L2,
                    )
                )
    return flows

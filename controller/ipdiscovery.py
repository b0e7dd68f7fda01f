"""NSX IP discovery by snooping: the frames that teach the controller's ARP
table a VM's IP, and what each such frame teaches.

A host prepared for NSX snoops, per logical switch (``ip_discovery``):

* **ARP snooping**: ARP requests and replies a local VM sends; the sender
  IP is bound to the vNIC when the sender MAC is the vNIC's own. The first
  binding per vNIC wins (NSX's trust on first use with a binding limit of
  one), so a guest that ARPs from many addresses cannot fill the table.
* **DHCP snooping**: DHCP ACKs on the logical switch (from a local server
  port or decapsulated from the tunnel); ``yiaddr`` is bound to the client
  whose MAC is ``chaddr``. A new ACK replaces that vNIC's DHCP binding.

Only frames that can still teach something reach the controller: ARP from
an address the table already binds to that vNIC is passed on in the switch,
and a vNIC that holds its ARP binding is not copied any more, so steady
traffic causes no packet-ins. Copies are sent with the frame itself
continuing through the pipeline (suppression, routing, switching).

``compile_discovery(binding, tables)`` gives the flows; ``snoop(frame)``
parses a packet-in. Both are pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Optional

from vlab.bindings import SwitchBinding
from vlab.protocols import ETH_ARP, ETH_IPV4, IPPROTO_UDP

from .nsx import NsxTables
from .pipeline import Concern, FlowSpec, Priority, Table, cookie
from .portsecurity import PortSecurity

COOKIE = cookie(Concern.IP_DISCOVERY)
DHCP_SERVER_PORT, DHCP_CLIENT_PORT = 67, 68
DHCPACK = 5
TO_CONTROLLER = ("output", "controller")
DHCP_ACK_MATCH = {
    "eth_type": ETH_IPV4,
    "ip_proto": IPPROTO_UDP,
    "udp_src": DHCP_SERVER_PORT,
    "udp_dst": DHCP_CLIENT_PORT,
}


@dataclass(frozen=True)
class Snooped:
    """An IP -> MAC binding read from one frame, and how it was read."""

    method: str  # arp_snooping | dhcp_snooping
    mac: str
    ip: str


def _flow(table, priority, match, actions=(), goto=None) -> FlowSpec:
    return FlowSpec.make(table, priority, match, actions, goto, cookie=COOKIE)


def compile_discovery(binding: SwitchBinding, tables: NsxTables) -> list[FlowSpec]:
    """The DISCOVERY-table flows of the VTEP's vSwitch (none elsewhere), and
    the ingress copy of DHCP ACKs arriving through the tunnel."""
    tunnel = binding.tunnel_port()
    if tunnel is None:
        return []
    flows = [_flow(Table.DISCOVERY, Priority.MISS, {}, goto=Table.ARP)]
    dhcp_vnis = set()
    for p in binding.logical_ports():
        vni = tables.vni(p.logical_switch)
        methods = tables.switches[vni].ip_discovery
        if "dhcp_snooping" in methods:
            dhcp_vnis.add(vni)
        if "arp_snooping" not in methods:
            continue
        mac = PortSecurity.of(binding, p).effective_mac
        arp = {"in_port": p.ofport, "eth_type": ETH_ARP, "arp_sha": mac}
        # Already known: nothing to learn, no packet-in.
        for ip in tables.known_ips(vni, mac):
            flows.append(_flow(Table.DISCOVERY, Priority.EXACT, {**arp, "arp_spa": ip}, goto=Table.ARP))
        if p.name not in tables.arp_snooped:
            flows.append(_flow(Table.DISCOVERY, Priority.DEFAULT, arp, (TO_CONTROLLER,), goto=Table.ARP))
    for vni in sorted(dhcp_vnis):
        flows.append(
            _flow(
                Table.DISCOVERY,
                Priority.EXACT,
                {**DHCP_ACK_MATCH, "tunnel_id": vni},
                (TO_CONTROLLER,),
                goto=Table.ARP,
            )
        )
        flows.append(
            _flow(
                Table.INGRESS,
                Priority.TUNNEL_SNOOP,
                {**DHCP_ACK_MATCH, "in_port": tunnel.ofport, "tunnel_id": vni},
                (TO_CONTROLLER,),
                goto=Table.L2,
            )
        )
    return flows


def _usable(ip: str) -> bool:
    addr = IPv4Address(ip)
    return not (
        addr.is_unspecified or addr.is_multicast or addr.is_loopback or addr == IPv4Address("255.255.255.255")
    )


def snoop(frame: bytes) -> Optional[Snooped]:
    """The binding a copied frame teaches, or None (malformed, an ARP probe
    from 0.0.0.0, a sender MAC that is not the frame's source, a DHCP
    message that is not an ACK with an address)."""
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.l2 import ARP, Ether

    try:
        eth = Ether(frame)
        if ARP in eth:
            arp = eth[ARP]
            if (
                arp.op in (1, 2)
                and arp.hwlen == 6
                and arp.plen == 4
                and arp.hwsrc.lower() == eth.src.lower()
                and _usable(arp.psrc)
            ):
                return Snooped("arp_snooping", arp.hwsrc.lower(), arp.psrc)
            return None
        if BOOTP in eth and DHCP in eth:
            options = {o[0]: o[1] for o in eth[DHCP].options if isinstance(o, tuple) and len(o) > 1}
            chaddr = eth[BOOTP].chaddr[:6]
            if options.get("message-type") == DHCPACK and len(chaddr) == 6 and _usable(eth[BOOTP].yiaddr):
                return Snooped("dhcp_snooping", ":".join(f"{b:02x}" for b in chaddr), eth[BOOTP].yiaddr)
    except Exception:  # whatever a guest sends must not reach the driver
        return None
    return None

"""Protocol numbers, written once: Ethernet types and IP protocols, by name
and back. Pure constants; everything that builds or reads a frame uses these."""

from __future__ import annotations

ETH_IPV4 = 0x0800
ETH_ARP = 0x0806
ETH_VLAN = 0x8100
ETH_LOCAL_EXPERIMENTAL = 0x88B5  # IEEE 802 local experimental: a frame no L3 stage reads

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17

IP_PROTOCOLS = {"icmp": IPPROTO_ICMP, "tcp": IPPROTO_TCP, "udp": IPPROTO_UDP}
PROTOCOL_NAMES = {number: name for name, number in IP_PROTOCOLS.items()}

ARP_REQUEST, ARP_REPLY = 1, 2

VXLAN_PORT = 4789  # IANA's VXLAN UDP port, OVS's default for type=vxlan

# The IPv4 all-hosts group (224.0.0.1) as a multicast MAC: in every guest
# NIC's filter once the interface is up, and where IGMP general queries go.
ALL_HOSTS_MAC = "01:00:5e:00:00:01"

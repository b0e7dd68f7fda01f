"""Frames the hypervisor sends on a guest's behalf (built with scapy).

* RARP "notify switches" (ethertype 0x8035, broadcast, sourced from the VM's
  MAC): after a failover, failback or vMotion, so physical switches move the
  MAC to the port it now arrives on, even for a VM that never speaks.
* A spoofed IGMP general query sent to the guest after vMotion: ESXi cannot
  know which IPv4 groups hide behind a multicast MAC (32 groups share one), so
  it makes the guest re-send its own reports; the guest answers within the
  query's max response time, and snooping switches learn the new port.
"""

from __future__ import annotations

from typing import Optional

from scapy.contrib.igmp import IGMP
from scapy.layers.inet import IP, IPOption_Router_Alert
from scapy.layers.l2 import ARP, Dot1Q, Ether

from vlab.protocols import ALL_HOSTS_MAC

BROADCAST = "ff:ff:ff:ff:ff:ff"
ETH_P_RARP = 0x8035


def rarp(mac: str, vlan: Optional[int]) -> bytes:
    """A RARP request from ``mac``, 802.1Q-tagged when ``vlan`` is set (1-4094)."""
    body = ARP(op=3, hwsrc=mac, hwdst=mac, psrc="0.0.0.0", pdst="0.0.0.0")
    if vlan:
        frame = Ether(dst=BROADCAST, src=mac) / Dot1Q(vlan=vlan, type=ETH_P_RARP) / body
    else:
        frame = Ether(dst=BROADCAST, src=mac, type=ETH_P_RARP) / body
    return bytes(frame).ljust(64 if vlan else 60, b"\0")


def igmp_general_query(src_mac: str, src_ip: str, max_response_s: float) -> bytes:
    """An IGMPv2 general query (to 224.0.0.1) with the given max response time."""
    code = max(1, min(255, round(max_response_s * 10)))  # units of 1/10 s
    frame = (
        Ether(dst=ALL_HOSTS_MAC, src=src_mac)
        / IP(src=src_ip, dst="224.0.0.1", ttl=1, options=[IPOption_Router_Alert()])
        / IGMP(type=0x11, mrcode=code, gaddr="0.0.0.0")
    )
    return bytes(frame)

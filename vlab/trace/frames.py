"""The frame a user describes for ``vlab trace``: built from fields (the
lab's names for MACs and IPs, ranges checked) or read from a pcap."""

from __future__ import annotations

import re
from ipaddress import IPv4Address
from pathlib import Path
from typing import Optional

from controller.portsecurity import PortSecurity
from controller.simulate import TCP_ACK, TCP_SYN, Frame, frame_of
from vlab import naming
from vlab.bindings import SwitchBinding
from vlab.lab.resolve import vteps
from vlab.protocols import (
    ARP_REQUEST,
    ETH_ARP,
    ETH_IPV4,
    ETH_LOCAL_EXPERIMENTAL,
    IPPROTO_ICMP,
    IPPROTO_TCP,
    IPPROTO_UDP,
)

BROADCAST = "ff:ff:ff:ff:ff:ff"
OUTSIDE_MAC = "00:50:56:ff:ff:fe"  # a frame from the physical network, by default
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


class TraceError(ValueError):
    """A frame or port the trace cannot take (exit code 2)."""


# -- the frame ----------------------------------------------------------------
def _endpoints(lab) -> dict[str, tuple[str, Optional[str]]]:
    """Every name a user may give for an endpoint -> (MAC, IPv4 or None):
    VM names (their first vNIC), vNIC port names, VMkernel adapters as
    HOST/vmkN and their port names."""
    from vlab.bindings import vmk_mac

    out: dict[str, tuple[str, Optional[str]]] = {}
    for vm in lab.vms:
        for i, nic in enumerate(vm.vnics):
            entry = (nic.mac.lower(), str(nic.ip.ip) if nic.ip else None)
            out[naming.vnic_port(vm.name, nic.name)] = entry
            if i == 0:
                out[vm.name] = entry
    for host in lab.esxi_hosts:
        for vmk in host.vmkernel:
            entry = ((vmk.mac or vmk_mac(host.name, vmk.name)).lower(), str(vmk.ip.ip))
            out[f"{host.name}/{vmk.name}"] = entry
    return out


def _mac_of(lab, name: str, what: str) -> tuple[str, Optional[str]]:
    if name.lower() in ("broadcast", "bcast"):
        return BROADCAST, None
    if _MAC.match(name):
        return name.lower(), None
    endpoints = _endpoints(lab)
    if name not in endpoints:
        raise TraceError(
            f"{what} {name!r} is not a MAC, 'broadcast', a VM, a vNIC port or HOST/vmkN of the lab"
        )
    return endpoints[name]


def build_frame(
    lab,
    binding: SwitchBinding,
    port: str,
    *,
    dst: str = "broadcast",
    src: Optional[str] = None,
    vlan: Optional[int] = None,
    arp: Optional[str] = None,
    ip_src: Optional[str] = None,
    ip_dst: Optional[str] = None,
    tcp: Optional[int] = None,
    udp: Optional[int] = None,
    icmp: bool = False,
    sport: int = 40000,
    syn_ack: bool = False,
    ttl: int = 64,
    vni: Optional[int] = None,
    tun_src: Optional[str] = None,
) -> Frame:
    """The frame a user describes, entering ``binding`` at ``port``. The
    source MAC and IP default to the port's own (a vNIC's or vmk's). A frame
    entering by the VXLAN tunnel port is the inner frame, as decapsulation
    leaves it: with its VNI and the sending VTEP's address (default: the
    first other VTEP of the lab)."""
    p = next((q for q in binding.ports if q.name == port), None)
    if p is None:
        raise TraceError(f"{binding.host} has no port {port!r} on {binding.bridge}")
    tunnel = _tunnel_metadata(lab, binding, p, vni, tun_src)
    own_mac, own_ip = OUTSIDE_MAC, None
    if p.mac is not None:
        # What the switch holds for the port: after an accepted MAC change, the guest's.
        own_mac = PortSecurity.of(binding, p).effective_mac if p.kind == "vnic" else p.mac.lower()
        known = _endpoints(lab)
        own_ip = known.get(port, (None, None))[1] or known.get(f"{binding.host}/{port}", (None, None))[1]
    _in_range(vlan, 0, 4094, "--vlan")
    _in_range(tcp, 0, 65535, "--tcp")
    _in_range(udp, 0, 65535, "--udp")
    _in_range(sport, 0, 65535, "--sport")
    _in_range(ttl, 0, 255, "--ttl")
    eth_src = _mac_of(lab, src, "--src")[0] if src else own_mac
    eth_dst, dst_ip = _mac_of(lab, "broadcast" if arp and dst == "broadcast" else dst, "--dst")
    # With no L3 asked for, a plain Ethernet frame of the IEEE local
    # experimental ethertype: no firewall or router stage takes it for IP.
    fields: dict = {
        "eth_src": eth_src,
        "eth_dst": eth_dst,
        "vlan": vlan,
        "ttl": ttl,
        "eth_type": ETH_LOCAL_EXPERIMENTAL,
    }
    src_ip = ip_src or own_ip
    if arp is not None:
        if src_ip is None:
            raise TraceError("--arp needs --ip-src (the port has no IP of its own)")
        fields.update(
            eth_type=ETH_ARP,
            arp_op=ARP_REQUEST,
            arp_sha=eth_src,
            arp_spa=_ip(src_ip, "--ip-src"),
            arp_tha="00:00:00:00:00:00",
            arp_tpa=_ip(arp, "--arp"),
        )
        return Frame(p.ofport, **fields, **tunnel)
    if sum(x is not None and x is not False for x in (tcp, udp, icmp or None)) > 1:
        raise TraceError("give one of --tcp, --udp, --icmp")
    target = ip_dst or dst_ip
    if tcp is not None or udp is not None or icmp or ip_dst:
        if target is None or src_ip is None:
            raise TraceError(
                "an IP frame needs --ip-dst (or a --dst with an IP) and --ip-src (or a port with an IP)"
            )
        fields.update(eth_type=ETH_IPV4, ipv4_src=_ip(src_ip, "--ip-src"), ipv4_dst=_ip(target, "--ip-dst"))
        if tcp is not None:
            fields.update(
                ip_proto=IPPROTO_TCP,
                tcp_src=sport,
                tcp_dst=tcp,
                tcp_flags=TCP_SYN | TCP_ACK if syn_ack else TCP_SYN,
            )
        elif udp is not None:
            fields.update(ip_proto=IPPROTO_UDP, udp_src=sport, udp_dst=udp)
        else:
            fields.update(ip_proto=IPPROTO_ICMP)
    return Frame(p.ofport, **fields, **tunnel)


def _tunnel_metadata(lab, binding: SwitchBinding, p, vni: Optional[int], tun_src: Optional[str]) -> dict:
    """``tunnel_id`` and ``tun_ipv4_src`` of a frame from the tunnel port."""
    if p.kind != "tunnel":
        if vni is not None or tun_src is not None:
            raise TraceError(f"--vni and --tun-src are for frames from the tunnel port, not {p.name}")
        return {}
    segments = ", ".join(f"{ls.name} {ls.vni}" for ls in lab.nsx.logical_switches)
    if vni is None:
        raise TraceError(
            f"a frame from {p.name} carries a VNI: give --vni (the lab's logical switches: {segments})"
        )
    _in_range(vni, 1, (1 << 24) - 1, "--vni")
    if tun_src is None:
        others = [v for h, v in vteps(lab).items() if h != binding.host]
        if not others:
            raise TraceError("no other VTEP in the lab to send from: give --tun-src")
        tun_src = str(others[0].ip.ip)
    return {"tunnel_id": vni, "tun_ipv4_src": _ip(tun_src, "--tun-src")}


def _in_range(value: Optional[int], low: int, high: int, what: str) -> None:
    if value is not None and not low <= value <= high:
        raise TraceError(f"{what} {value} is not within {low}-{high}")


def _ip(text: str, what: str) -> str:
    try:
        return str(IPv4Address(text))
    except ValueError:
        raise TraceError(f"{what} {text!r} is not an IPv4 address") from None


def frame_from_pcap(path: Path, index: int, in_port: int) -> Frame:
    """Frame ``index`` (1-based) of a pcap or pcapng, entering at ``in_port``,
    parsed as a Drop capture's packet-in is (``controller.simulate.frame_of``)."""
    from scapy.layers.l2 import Ether
    from scapy.utils import rdpcap

    try:
        packets = rdpcap(str(path))
    except Exception as exc:  # scapy raises its own exceptions for a file that is no pcap
        raise TraceError(f"--pcap {path}: not a readable pcap ({exc})") from None
    if not 1 <= index <= len(packets):
        raise TraceError(f"--pcap {path}: no frame {index} (it has {len(packets)})")
    pkt = packets[index - 1]
    if Ether not in pkt:
        raise TraceError(f"--pcap {path}: frame {index} is not Ethernet")
    return frame_of(bytes(pkt[Ether]), in_port)

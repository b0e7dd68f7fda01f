"""Guests: the VMs and the plain hosts, real Linux stacks with exactly the
lab's addresses and default routes. Routers and firewalls are hosts too;
what makes them forward is in ``routers``."""

from __future__ import annotations

from ipaddress import IPv4Interface
from typing import Optional

from mininet.node import Host

from vlab.lab.model import Host as LabHost
from vlab.lab.model import HostInterface, Lab


def address(node: Host, intf: str, ip: Optional[IPv4Interface]) -> None:
    """Give a guest interface exactly the lab's address and bring it up."""
    if ip is not None:
        node.cmd(f"ip addr flush dev {intf}; ip addr add {ip} dev {intf}")
    node.cmd(f"ip link set {intf} up")


def configure_vms(lab: Lab, node_of) -> None:
    """Addresses and default routes of every VM (``node_of(name)`` -> node)."""
    for vm in lab.vms:
        node = node_of(vm.name)
        # A vMotion moves the vNIC's backend veth, which the guest sees as
        # a carrier drop, and Linux then empties its ARP cache. On ESXi the
        # guest sees no link event and its memory, ARP cache included,
        # moves intact; keep the cache across carrier changes (the sysctl
        # Wi-Fi roaming uses) so a moved guest does not re-ARP.
        node.cmd("sysctl -qw net.ipv4.conf.all.arp_evict_nocarrier=0")
        for nic in vm.vnics:
            address(node, nic.name, nic.ip)
            if nic.gateway is not None:
                node.cmd(f"ip route replace default via {nic.gateway}")


def configure_interface(node: Host, intf: HostInterface) -> None:
    """A physical host's (or router's) interface: MTU and address."""
    node.cmd(f"ip link set {intf.name} mtu {intf.mtu}")
    address(node, intf.name, intf.ip)


def configure_routes(node: Host, h: LabHost) -> None:
    """A physical host's (or router's) default gateway and static routes,
    once its interfaces (and a router's forwarding and firewall) are up."""
    if h.gateway is not None:
        node.cmd(f"ip route replace default via {h.gateway}")
    for r in h.routes:
        node.cmd(f"ip route replace {r.to} via {r.via}")

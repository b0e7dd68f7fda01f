"""Routers and firewalls: hosts that forward, with their first-hop virtual
gateways (HSRP/VRRP-like) and, for firewalls, a stateful nftables ruleset
compiled from the lab (``vlab.perimeter``). Their addresses and static
routes are configured as any host's (``guests``)."""

from __future__ import annotations

from pathlib import Path

from mininet.node import Host

from vlab import naming, perimeter
from vlab.lab.model import Host as LabHost
from vlab.lab.model import HostInterface, Lab

from .readiness import NotReady


def configure_router(node: Host, h: LabHost, lab: Lab, run_dir: Path) -> None:
    """What makes host ``h`` (interfaces and virtual gateways up) a router or
    firewall: forwarding and firewall rules. Nothing for a plain host."""
    if h.kind in ("router", "firewall"):
        # Routes may be asymmetric (a stretched L2 with two exits): no
        # reverse-path filter, as on a data-centre router.
        node.cmd(
            "sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0"
        )
    if h.firewall is not None:
        start_firewall(node, h, lab, run_dir)


def start_firewall(node: Host, h: LabHost, lab: Lab, run_dir: Path) -> None:
    """Load the perimeter firewall's ruleset (written to the run directory)."""
    rules = Path(run_dir) / f"{h.name}.nft"
    rules.write_text(perimeter.ruleset(lab, h.firewall))
    loose = 1 if h.firewall.tcp_loose else 0
    out = node.cmd(
        f"sysctl -qw net.netfilter.nf_conntrack_tcp_loose={loose} 2>&1; nft -f {rules} 2>&1; echo rc=$?"
    ).strip()
    if not out.endswith("rc=0"):
        raise NotReady(f"{h.name}: firewall rules not loaded: {out}")


def virtual_gateway(node: Host, intf: HostInterface) -> None:
    """The virtual gateway as a macvlan on the interface: frames to the
    virtual MAC land there and are routed. The device name is
    ``naming.virtual_gateway``, inside the router's own namespace. The
    address is a /32 so the subnet route (and the ARP the router sends)
    stays on the interface itself; arp_ignore/arp_announce keep each device
    answering only for its own address."""
    dev = naming.virtual_gateway(intf.name)
    out = node.cmd(
        f"sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2; "
        f"ip link add {dev} link {intf.name} address {intf.vip.mac} type macvlan mode bridge"
        f" && ip addr add {intf.vip.ip}/32 dev {dev}"
        # A gratuitous ARP from the virtual MAC when it comes up, as an
        # HSRP/VRRP router announces itself: the site's switches learn
        # where the gateway is instead of flooding frames for it.
        f" && sysctl -qw net.ipv4.conf.{dev}.arp_notify=1 && ip link set {dev} up; echo rc=$?"
    )
    if not out.strip().endswith("rc=0"):
        raise NotReady(f"{node.name}: virtual gateway {intf.vip.ip} on {intf.name}: {out}")

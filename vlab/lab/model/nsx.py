"""NSX: logical switches (VNIs, IP discovery) and distributed routers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    StrictBool,
    StrictInt,
)

from .types import (
    IPv4If,
    LabModel,
    Mac,
    Mtu,
    Name,
)
from .vsphere import Security

IpDiscoveryMethod = Literal["vmtools", "arp_snooping", "dhcp_snooping"]


class LogicalSwitch(LabModel):
    """An NSX logical switch: one VXLAN segment (VNI) in unicast replication
    mode. With ``arp_suppression`` the source host answers ARP requests for
    IPs in the controller's ARP table instead of replicating them.
    ``ip_discovery`` says how that table learns a VM's IP: from VMware Tools
    (the guest's configured addresses), by snooping the VM's ARP frames
    (first binding per vNIC wins) or by snooping DHCP ACKs sent to it.
    ``security`` is the policy of the logical switch's port group on the
    prepared distributed switch (NSX-V backs each logical switch with one);
    unset fields inherit from that switch, then the distributed switch's
    defaults (reject/reject/reject)."""

    name: Name
    vni: Annotated[StrictInt, Field(ge=5000, le=16777215)]
    arp_suppression: StrictBool = True
    ip_discovery: tuple[IpDiscoveryMethod, ...] = ("vmtools", "arp_snooping", "dhcp_snooping")
    security: Security = Security()


class RouterInterface(LabModel):
    """A logical interface (LIF) of a distributed router on a logical switch:
    the same gateway IP and virtual MAC on every host."""

    logical_switch: Name
    ip: IPv4If


class DistributedRouter(LabModel):
    """An NSX distributed logical router: one instance in every prepared
    host, routing on the host where the packet enters."""

    name: Name
    mac: Mac = "02:50:56:56:44:52"  # the vMAC, the same on every host
    interfaces: tuple[RouterInterface, ...] = Field(min_length=1)


class Nsx(LabModel):
    """The NSX overlay: logical switches and distributed routers over the
    hosts' VTEPs (VMkernel adapters with ``stack: vxlan``). Host preparation
    sets the MTU of every vSwitch carrying a VTEP to ``transport_mtu``;
    VXLAN adds 50 bytes, so below 1550 full-size guest frames cannot cross."""

    transport_mtu: Mtu = 1600
    logical_switches: tuple[LogicalSwitch, ...] = ()
    distributed_routers: tuple[DistributedRouter, ...] = ()

"""The physical side: switches (ports, LAGs, SPAN), routers, firewalls and
plain hosts with their interfaces and routes, DCI links and sites."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import (
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
)

from .security import PerimeterFirewall
from .types import (
    IPv4Addr,
    IPv4If,
    IPv4Net,
    LabModel,
    Mac,
    Mtu,
    Name,
    PortNumber,
    SwitchVlan,
)


class SwitchPort(LabModel):
    """Configuration of one physical switch port (ports not listed are trunks
    carrying every VLAN, untagged frames on the native VLAN)."""

    port: PortNumber
    mode: Literal["trunk", "access"] = "trunk"
    vlan: Optional[SwitchVlan] = None
    allowed_vlans: Optional[tuple[SwitchVlan, ...]] = Field(default=None, min_length=1)


class Lag(LabModel):
    """A port channel bundling physical switch ports: static (``lacp: off``,
    "channel-group N mode on") or negotiated by LACP (``active`` or
    ``passive``, "mode active|passive"); ``lacp_rate`` is the rate the
    switch asks its partner to send LACPDUs at ("lacp rate fast|normal")."""

    name: Name
    ports: tuple[PortNumber, ...] = Field(min_length=2)
    lacp: Literal["off", "active", "passive"] = "off"
    lacp_rate: Optional[Literal["slow", "fast"]] = None


class Span(LabModel):
    """A SPAN session: copies of the frames ``source_ports`` send (tx),
    receive (rx) or both, delivered to ``destination``. As on most switches,
    the destination port then carries only mirrored frames and ignores what
    it receives."""

    name: Name
    source_ports: tuple[PortNumber, ...] = Field(min_length=1)
    direction: Literal["tx", "rx", "both"] = "both"
    destination: PortNumber


class PhysicalSwitch(LabModel):
    """A MAC-learning physical switch with a readable MAC table."""

    name: Name
    site: Optional[Name] = None
    # MAC table aging time (s). Open vSwitch clamps it to 15..3600
    # (mac-learning.c), so a lower value would be accepted and not applied.
    mac_aging: Annotated[StrictInt, Field(ge=15, le=3600)] = 300
    # Data-centre switches carry jumbo frames; the transport MTU an overlay
    # can use is set on the ESXi side (nsx.transport_mtu).
    mtu: Mtu = 9000
    igmp_snooping: StrictBool = False
    # How long a snooped group membership lives without a new report (s).
    igmp_aging: Annotated[StrictInt, Field(ge=15, le=3600)] = 300
    ports: tuple[SwitchPort, ...] = ()
    lags: tuple[Lag, ...] = ()
    spans: tuple[Span, ...] = ()
    # Remote SPAN VLANs (Cisco's "remote-span" VLAN setting): MAC learning
    # off, every frame flooded, so mirrored copies reach the analyser
    # whatever their addresses; OVS's flood_vlans.
    rspan_vlans: tuple[SwitchVlan, ...] = ()


class GatewayAddress(LabModel):
    """A virtual first-hop gateway (HSRP/VRRP style): an IP and its virtual MAC."""

    ip: IPv4Addr
    mac: Mac


class HostInterface(LabModel):
    """A plain host's or router's NIC, plugged into a physical switch port;
    ``vlan`` makes that switch port an access port in that VLAN. ``vip``
    makes a router answer for a virtual gateway too (a macvlan with the
    virtual MAC); what the router itself sends, ARP included, keeps the
    interface's own MAC and IP, as HSRP and VRRP routers do."""

    name: Name
    switch: Name
    port: PortNumber
    vlan: Optional[SwitchVlan] = None
    ip: Optional[IPv4If] = None
    mac: Optional[Mac] = None
    mtu: Mtu = 1500
    vip: Optional[GatewayAddress] = None


class Route(LabModel):
    """A static route."""

    to: IPv4Net
    via: IPv4Addr


class Host(LabModel):
    """A router (IP forwarding on), a stateful perimeter firewall (a router
    that filters, see ``PerimeterFirewall``) or a plain host (backup proxy,
    monitor, user)."""

    name: Name
    kind: Literal["host", "router", "firewall"] = "host"
    site: Optional[Name] = None
    interfaces: tuple[HostInterface, ...] = Field(min_length=1)
    gateway: Optional[IPv4Addr] = None
    routes: tuple[Route, ...] = ()
    firewall: Optional[PerimeterFirewall] = None


class SwitchPortRef(LabModel):
    """One end of a switch-to-switch link."""

    switch: Name
    port: PortNumber


class DciLink(LabModel):
    """A link between physical switches (a stretched L2 DCI when the ends are
    in different sites). ``isolate`` keeps first-hop gateway addresses local
    to each site (FHRP isolation, as OTV's filters do): frames from or to the
    gateway MAC and ARP for its IP do not cross, so each site's hosts use
    their own site's gateway (local egress)."""

    name: Name
    a: SwitchPortRef
    b: SwitchPortRef
    isolate: tuple[GatewayAddress, ...] = ()
    # float first: a union reports its first member's error, and "must be a
    # valid number" is the right message for a speed that may be 2.5.
    speed: Annotated[StrictFloat | StrictInt, Field(gt=0, le=100)] = Field(description="link speed in Gbit/s")


class Site(LabModel):
    """A data centre site."""

    name: Name

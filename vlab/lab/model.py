"""The lab file as typed, immutable objects.

A lab describes *intent*: ESXi hosts with their uplinks, vSwitches, port groups
and VMkernel adapters; VMs and where they start; physical switches, routers and
plain hosts; sites and DCI links. Which host a VM is on *now* and which uplink a
port is pinned to are *bindings*, kept elsewhere (see ``controller.bindings``).

Every model forbids unknown keys and is frozen; scalar fields are strict (a
quoted "10" is not a VLAN). Cross-references (a VM's port group exists on its
host, a port group's uplinks are on its vSwitch, ...) are checked by
``vlab.lab.validate`` once the whole file has parsed.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal, Optional

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
)

from vlab.naming import IFNAMSIZ

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_VMK_RE = re.compile(r"vmk[0-9]+")


def _name(value: str) -> str:
    # Checked here rather than with StringConstraints so the user reads a
    # sentence, not a regular expression.
    if not _NAME_RE.fullmatch(value):
        raise ValueError("must start with a letter and contain only letters, digits, '-' and '_'")
    if len(value) > IFNAMSIZ:
        raise ValueError(
            f"must be at most {IFNAMSIZ} characters, as it becomes part of Linux interface names"
        )
    return value


def _vmk_name(value: str) -> str:
    if not _VMK_RE.fullmatch(value):
        raise ValueError("must be vmk followed by a number, like vmk0")
    return value


# Node and object names: they end up in Linux interface names and OVS port
# names, so keep them to letters, digits, '-' and '_' (no dots, no spaces).
Name = Annotated[StrictStr, AfterValidator(_name)]
# A port group's VLAN: 0 = external switch tagging (EST), 1-4094 = virtual
# switch tagging (VST), 4095 = virtual guest tagging (VGT, a trunk to the guest).
EST_VLAN, VGT_VLAN = 0, 4095
VlanId = Annotated[StrictInt, Field(ge=EST_VLAN, le=VGT_VLAN)]
SwitchVlan = Annotated[StrictInt, Field(ge=1, le=4094)]
PortNumber = Annotated[StrictInt, Field(ge=1, le=4096)]
Mtu = Annotated[StrictInt, Field(ge=1280, le=9000)]
# The distributed firewall rules a lab may have: rule i of the policy gets an
# OpenFlow priority of its own, in a band that holds this many
# (controller.pipeline).
MAX_FIREWALL_RULES = 1000


def _mac(value: str) -> str:
    parts = value.split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError("MAC address must look like 00:50:56:aa:bb:cc")
    try:
        octets = [int(p, 16) for p in parts]
    except ValueError:
        raise ValueError("MAC address must look like 00:50:56:aa:bb:cc") from None
    if octets[0] & 1:
        raise ValueError("MAC address must be unicast (first octet even)")
    if octets == [0] * 6:
        raise ValueError("MAC address must not be all zeros")
    return value.lower()


def _text(value: object) -> str:
    # Same wording as pydantic's own string_type error; the loader appends
    # the value it got.
    if not isinstance(value, str):
        raise ValueError("must be a valid string")
    return value


def _ipv4_interface(value: object) -> ipaddress.IPv4Interface:
    value = _text(value)
    if "/" not in value:
        raise ValueError("must include the prefix length, like 10.0.0.1/24")
    try:
        iface = ipaddress.IPv4Interface(value)
    except ValueError as exc:
        raise ValueError(f"not an IPv4 address/prefix: {exc}") from None
    if iface.network.prefixlen < 31 and iface.ip in (
        iface.network.network_address,
        iface.network.broadcast_address,
    ):
        raise ValueError("must not be the network or broadcast address of its subnet")
    return iface


def _ipv4_address(value: object) -> ipaddress.IPv4Address:
    value = _text(value)
    try:
        return ipaddress.IPv4Address(value)
    except ValueError as exc:
        raise ValueError(f"not an IPv4 address: {exc}") from None


def _ipv4_network(value: object) -> ipaddress.IPv4Network:
    value = _text(value)
    try:
        return ipaddress.IPv4Network(value)
    except ValueError as exc:
        raise ValueError(f"not an IPv4 network: {exc}") from None


def _speed(value: int) -> int:
    if value not in (1, 10, 25):
        raise ValueError("must be 1, 10 or 25")
    return value


Mac = Annotated[StrictStr, AfterValidator(_mac)]
# Not Literal[1, 10, 25]: a Literal compares with ==, so it takes True (YAML
# 'yes') as 1 and 10.0 as 10; a strict int refuses both.
Speed = Annotated[StrictInt, AfterValidator(_speed)]
IPv4If = Annotated[ipaddress.IPv4Interface, BeforeValidator(_ipv4_interface)]
IPv4Addr = Annotated[ipaddress.IPv4Address, BeforeValidator(_ipv4_address)]
IPv4Net = Annotated[ipaddress.IPv4Network, BeforeValidator(_ipv4_network)]
Policy = Literal["accept", "reject"]


class LabModel(BaseModel):
    """Base of every lab object: unknown keys are errors, objects are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Security(LabModel):
    """vSphere security policy. ``None`` means "inherit" (from the vSwitch, or
    the vSwitch type's default: standard Reject/Accept/Accept, distributed
    Reject/Reject/Reject)."""

    promiscuous: Optional[Policy] = None
    mac_changes: Optional[Policy] = None
    forged_transmits: Optional[Policy] = None


class Teaming(LabModel):
    """NIC teaming and failover. Fields left unset inherit from the vSwitch;
    on the vSwitch, ``active=None`` means every uplink of the vSwitch is active."""

    policy: Optional[Literal["originating_port", "source_mac_hash", "ip_hash", "explicit_failover"]] = None
    active: Optional[tuple[Name, ...]] = None
    standby: Optional[tuple[Name, ...]] = None
    unused: Optional[tuple[Name, ...]] = None
    failure_detection: Optional[Literal["link_status", "beacon_probing"]] = None
    notify_switches: Optional[StrictBool] = None
    failback: Optional[StrictBool] = None


class PortGroup(LabModel):
    """A port group: VLAN 0 = external switch tagging (untagged), 1-4094 =
    virtual switch tagging, 4095 = virtual guest tagging (trunk to the guest)."""

    name: Name
    vlan: VlanId = 0
    teaming: Teaming = Teaming()
    security: Security = Security()


class StandardSwitch(LabModel):
    """A vSphere standard switch (vSS) on one host; ``uplinks`` are vmnic names."""

    name: Name
    uplinks: tuple[Name, ...] = ()
    mtu: Mtu = 1500
    teaming: Teaming = Teaming()
    security: Security = Security()
    port_groups: tuple[PortGroup, ...] = ()


class MirrorPort(LabModel):
    """A VM's vNIC taking part in a port mirroring session. For a source,
    ``direction`` is vSphere's, seen from the distributed switch: ``ingress``
    = what the VM sends into the switch, ``egress`` = what the switch
    delivers to the VM, ``both`` = both (VMware, "vSphere 5 New Networking
    Features - Port Mirroring": "the traffic seeks ingress to the VDS and
    hence the source is called Ingress"). A destination ignores it."""

    vm: Name
    vnic: Name = "eth0"
    direction: Literal["both", "ingress", "egress"] = "both"


class MirrorSession(LabModel):
    """A vSphere port mirroring session on a distributed switch.

    * ``type: erspan`` is "Encapsulated Remote Mirroring (L3) Source": copies
      of the sources' frames go to ``destination_ip`` (a monitoring host),
      encapsulated as ERSPAN type II (``encapsulation: erspan``, what vSphere
      sends by default) or plain GRE (``gre``), from the host's VMkernel
      address through its routing table and uplinks. ``session_id`` is the
      ERSPAN session ID (the GRE key for gre); default: the session's
      position in the list, from 1.
    * ``type: local`` is "Distributed Port Mirroring": copies go to
      ``destination_vnics``, as on vSphere only where the destination runs
      on the same host as the source.

    ``snap_length`` is vSphere's "Mirrored packet length" (each copy cut to
    that many bytes; unset = whole frames). ``normal_traffic`` is "Normal
    I/O on destination ports" (vSphere's default: disallowed): a destination
    vNIC then receives only mirrored frames and what it sends is dropped."""

    name: Name
    type: Literal["erspan", "local"]
    enabled: StrictBool = True
    sources: tuple[MirrorPort, ...] = Field(min_length=1)
    destination_ip: Optional[IPv4Addr] = None
    encapsulation: Literal["erspan", "gre"] = "erspan"
    session_id: Optional[Annotated[StrictInt, Field(ge=0, le=1023)]] = None
    destination_vnics: tuple[MirrorPort, ...] = ()
    snap_length: Optional[Annotated[StrictInt, Field(ge=60, le=9000)]] = None
    normal_traffic: Literal["allowed", "disallowed"] = "disallowed"


class DistributedSwitch(LabModel):
    """A vSphere distributed switch (VDS): port groups defined once for every
    member host; ``uplinks`` are dvUplink names each member maps to a vmnic.
    ``mirrors`` are its port mirroring sessions."""

    name: Name
    uplinks: tuple[Name, ...] = ()
    mtu: Mtu = 1500
    teaming: Teaming = Teaming()
    security: Security = Security()
    port_groups: tuple[PortGroup, ...] = ()
    mirrors: tuple[MirrorSession, ...] = ()


class DistributedSwitchMember(LabModel):
    """A host's membership of a distributed switch: dvUplink name -> vmnic."""

    name: Name
    uplinks: dict[Name, Name] = Field(default_factory=dict)


class Uplink(LabModel):
    """A physical NIC (vmnic) and the physical switch port it plugs into."""

    name: Name
    speed: Speed = Field(description="link speed in GbE")
    switch: Name
    port: PortNumber


class VmkernelAdapter(LabModel):
    """A VMkernel adapter: an internal port of a vSwitch whose IP lives in the
    host namespace's routing table (the VMkernel TCP/IP stack)."""

    name: Annotated[StrictStr, AfterValidator(_vmk_name)]
    port_group: Name
    ip: IPv4If
    # vxlan: the NSX VTEP (VXLAN tunnel endpoint) of this host, on the
    # VXLAN TCP/IP stack; its gateway reaches VTEPs in other transport subnets.
    stack: Literal["default", "vmotion", "provisioning", "vxlan"] = "default"
    gateway: Optional[IPv4Addr] = None
    mac: Optional[Mac] = None


class EsxiHost(LabModel):
    """An ESXi host: a namespace running its own Open vSwitch instance."""

    name: Name
    site: Optional[Name] = None
    uplinks: tuple[Uplink, ...] = ()
    vswitches: tuple[StandardSwitch, ...] = ()
    distributed_switches: tuple[DistributedSwitchMember, ...] = ()
    vmkernel: tuple[VmkernelAdapter, ...] = ()
    # How the default TCP/IP stack picks a reply's vmk: by destination (ESXi's
    # routing table) or strictly by source address (policy routing).
    egress: Literal["destination", "source"] = "destination"


class Vnic(LabModel):
    """A VM's virtual NIC: its configured MAC and the guest's IP settings.
    It connects to a VLAN-backed ``port_group`` or to an NSX
    ``logical_switch`` (exactly one of the two)."""

    name: Name = "eth0"
    port_group: Optional[Name] = None
    logical_switch: Optional[Name] = None
    mac: Mac
    ip: Optional[IPv4If] = None
    gateway: Optional[IPv4Addr] = None


class Vm(LabModel):
    """A virtual machine (a Mininet host with a real TCP/IP stack); ``host`` is
    where it starts."""

    name: Name
    host: Name
    vnics: tuple[Vnic, ...] = Field(min_length=1)


class SwitchPort(LabModel):
    """Configuration of one physical switch port (ports not listed are trunks
    carrying every VLAN, untagged frames on the native VLAN)."""

    port: PortNumber
    mode: Literal["trunk", "access"] = "trunk"
    vlan: Optional[SwitchVlan] = None
    allowed_vlans: Optional[tuple[SwitchVlan, ...]] = None


class Lag(LabModel):
    """A static EtherChannel (no LACP) bundling physical switch ports."""

    name: Name
    ports: tuple[PortNumber, ...] = Field(min_length=2)


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
    mac_aging: Annotated[StrictInt, Field(ge=10, le=3600)] = 300
    # Data-centre switches carry jumbo frames; the transport MTU an overlay
    # can use is set on the ESXi side (nsx.transport_mtu).
    mtu: Mtu = 9000
    igmp_snooping: StrictBool = False
    # How long a snooped group membership lives without a new report (s).
    igmp_aging: Annotated[StrictInt, Field(ge=15, le=3600)] = 300
    ports: tuple[SwitchPort, ...] = ()
    lags: tuple[Lag, ...] = ()
    spans: tuple[Span, ...] = ()


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


def _service(value: object) -> str:
    """'any', 'icmp', 'tcp/80', 'udp/53' or a port range 'tcp/8000-8080'."""
    value = _text(value).lower()
    if value in ("any", "icmp"):
        return value
    proto, _, ports = value.partition("/")
    if proto not in ("tcp", "udp") or not ports:
        raise ValueError("must be 'any', 'icmp' or protocol/port like 'tcp/80', 'udp/53', 'tcp/8000-8080'")
    low, _, high = ports.partition("-")
    try:
        lo, hi = int(low), int(high or low)
    except ValueError:
        raise ValueError(f"port {ports!r} is not a number or range") from None
    if not 1 <= lo <= hi <= 65535:
        raise ValueError(f"port range {ports!r} must be within 1-65535, low to high")
    return value


Service = Annotated[StrictStr, BeforeValidator(_service)]
Verdict = Literal["allow", "drop"]


class FirewallRule(LabModel):
    """One stateful rule; the first rule matching a new connection decides,
    replies and related packets of an allowed connection always pass.
    ``sources``/``destinations`` name VMs, security groups (distributed
    firewall only) or IPv4 networks; ``any`` matches everything.
    ``applied_to`` (distributed firewall only) limits the vNICs enforcing the
    rule to these VMs or groups; empty = every vNIC in the firewall's scope."""

    name: Name
    sources: tuple[StrictStr, ...] = ("any",)
    destinations: tuple[StrictStr, ...] = ("any",)
    services: tuple[Service, ...] = ("any",)
    action: Verdict
    applied_to: tuple[StrictStr, ...] = ()


class PerimeterFirewall(LabModel):
    """A stateful perimeter firewall (Linux conntrack with nftables on a
    ``kind: firewall`` host). Like a commercial firewall it keeps state per
    connection and drops what does not fit it: a TCP segment of a connection
    it has not seen open (mid-stream, a SYN-ACK without the SYN) is invalid,
    unless ``tcp_loose`` lets it pick such connections up."""

    rules: tuple[FirewallRule, ...] = ()
    default_action: Verdict = "drop"
    tcp_loose: StrictBool = False


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


class Expectation(LabModel):
    """What a teacher expects of a lab (``vlab lab validate``): pairs of
    endpoint names (``vm1``, ``esx1/vmk0``, ``router/eth1``) that must or must
    not reach each other by ping."""

    reachable: tuple[tuple[StrictStr, StrictStr], ...] = ()
    unreachable: tuple[tuple[StrictStr, StrictStr], ...] = ()


IpDiscoveryMethod = Literal["vmtools", "arp_snooping", "dhcp_snooping"]


class LogicalSwitch(LabModel):
    """An NSX logical switch: one VXLAN segment (VNI) in unicast replication
    mode. With ``arp_suppression`` the source host answers ARP requests for
    IPs in the controller's ARP table instead of replicating them.
    ``ip_discovery`` says how that table learns a VM's IP: from VMware Tools
    (the guest's configured addresses), by snooping the VM's ARP frames
    (first binding per vNIC wins) or by snooping DHCP ACKs sent to it."""

    name: Name
    vni: Annotated[StrictInt, Field(ge=5000, le=16777215)]
    arp_suppression: StrictBool = True
    ip_discovery: tuple[IpDiscoveryMethod, ...] = ("vmtools", "arp_snooping", "dhcp_snooping")


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


class SecurityGroup(LabModel):
    """An NSX security group: VMs by name and IP sets."""

    name: Name
    vms: tuple[Name, ...] = ()
    ips: tuple[IPv4Net, ...] = ()


class DistributedFirewall(LabModel):
    """The NSX distributed firewall: stateful rules enforced at each vNIC in
    its scope (``applied_to``: VMs or groups; empty = every VM), on what the
    VM sends and what it receives, with connection tracking in the vSwitch.
    A connection's state moves with its VM on vMotion. ``default_action`` is
    the last rule."""

    groups: tuple[SecurityGroup, ...] = ()
    rules: tuple[FirewallRule, ...] = Field(default=(), max_length=MAX_FIREWALL_RULES)
    default_action: Verdict = "allow"
    applied_to: tuple[StrictStr, ...] = ()


class Lab(LabModel):
    """A whole lab. ``link_scale`` multiplies every link speed (1/100 turns
    1 GbE into 10 Mbit/s) because a userspace OVS datapath tops out near
    1 Gbit/s per flow on these machines (README, "Design notes")."""

    name: Name
    description: StrictStr = ""
    link_scale: Annotated[StrictFloat | StrictInt, Field(gt=0, le=1)] = 0.01
    datapath: Literal["netdev", "system"] = "netdev"
    sites: tuple[Site, ...] = ()
    physical_switches: tuple[PhysicalSwitch, ...] = ()
    distributed_switches: tuple[DistributedSwitch, ...] = ()
    esxi_hosts: tuple[EsxiHost, ...] = ()
    vms: tuple[Vm, ...] = ()
    hosts: tuple[Host, ...] = ()
    dci_links: tuple[DciLink, ...] = ()
    nsx: Optional[Nsx] = None
    distributed_firewall: Optional[DistributedFirewall] = None
    expect: Optional[Expectation] = None

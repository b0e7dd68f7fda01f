"""vSphere objects: vSwitches and distributed switches with their port
groups, security, teaming and traffic shaping policies and mirror sessions; ESXi hosts with
their uplinks and VMkernel adapters; VMs and their vNICs."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import (
    Field,
    StrictBool,
    StrictInt,
)

from .types import (
    IPv4Addr,
    IPv4If,
    LabModel,
    Mac,
    Mtu,
    Name,
    Policy,
    PortNumber,
    Speed,
    VlanId,
    VmkName,
)


class Security(LabModel):
    """vSphere security policy. ``None`` means "inherit" (from the vSwitch, or
    the vSwitch type's default: standard Reject/Accept/Accept, distributed
    Reject/Reject/Reject)."""

    promiscuous: Optional[Policy] = None
    mac_changes: Optional[Policy] = None
    forged_transmits: Optional[Policy] = None


# IP-hash teams the testbed emulates: the hash is (src ^ dst) mod N, which
# flows can match bit by bit only when N is a power of two.
IP_HASH_TEAM_SIZES = (1, 2, 4, 8)


class Teaming(LabModel):
    """NIC teaming and failover. Fields left unset inherit from the vSwitch;
    on the vSwitch, ``active=None`` means every uplink of the vSwitch is active."""

    policy: Optional[
        Literal["originating_port", "source_mac_hash", "ip_hash", "explicit_failover", "load_based"]
    ] = None
    active: Optional[tuple[Name, ...]] = None
    standby: Optional[tuple[Name, ...]] = None
    unused: Optional[tuple[Name, ...]] = None
    failure_detection: Optional[Literal["link_status", "beacon_probing"]] = None
    notify_switches: Optional[StrictBool] = None
    failback: Optional[StrictBool] = None


# vSphere's values when shaping is enabled and a value is left unset (the
# vSphere Client's defaults): average and peak in Kbit/s, burst in KB.
SHAPING_DEFAULTS = {"average_bandwidth": 100000, "peak_bandwidth": 100000, "burst_size": 102400}
Kbps = Annotated[StrictInt, Field(ge=1)]


class Shaping(LabModel):
    """A vSphere traffic shaping policy, in the vSphere Client's units:
    ``average_bandwidth`` and ``peak_bandwidth`` in Kbit/s (1000 bit/s),
    ``burst_size`` in KB (1024 bytes). ``None`` means "inherit" (a standard
    port group from its vSwitch; then vSphere's defaults: disabled, and
    ``SHAPING_DEFAULTS`` for values an enabled policy leaves unset)."""

    enabled: Optional[StrictBool] = None
    average_bandwidth: Optional[Kbps] = None
    peak_bandwidth: Optional[Kbps] = None
    burst_size: Optional[Annotated[StrictInt, Field(ge=1)]] = None


class PortGroup(LabModel):
    """A port group: VLAN 0 = external switch tagging (untagged), 1-4094 =
    virtual switch tagging, 4095 = virtual guest tagging (trunk to the guest).

    Traffic shaping is vSphere's: a standard port group shapes outbound
    traffic only (``shaping``: what its ports send into the switch); a
    distributed port group shapes both directions, classified "according to
    the traffic direction in the switch": ``ingress_shaping`` is what a port
    sends into the switch, ``egress_shaping`` what the switch delivers to it."""

    name: Name
    vlan: VlanId = 0
    teaming: Teaming = Teaming()
    security: Security = Security()
    shaping: Shaping = Shaping()
    ingress_shaping: Shaping = Shaping()
    egress_shaping: Shaping = Shaping()


class StandardSwitch(LabModel):
    """A vSphere standard switch (vSS) on one host; ``uplinks`` are vmnic names.
    ``shaping`` is its outbound traffic shaping policy, which port groups
    inherit field by field."""

    name: Name
    uplinks: tuple[Name, ...] = ()
    mtu: Mtu = 1500
    teaming: Teaming = Teaming()
    security: Security = Security()
    shaping: Shaping = Shaping()
    port_groups: tuple[PortGroup, ...] = ()


class MirrorPort(LabModel):
    """A distributed port taking part in a port mirroring session: a VM's
    vNIC (``vm``, ``vnic``) or a host's VMkernel adapter (``host``, ``vmk``).
    For a source, ``direction`` is vSphere's, seen from the distributed
    switch: ``ingress`` = what the VM or vmk sends into the switch,
    ``egress`` = what the switch delivers to it, ``both`` = both (VMware,
    "vSphere 5 New Networking Features - Port Mirroring": "the traffic seeks
    ingress to the VDS and hence the source is called Ingress"). A
    destination ignores it. ``uplink`` exists to be refused with vSphere's
    reason: uplinks are never sources, only an RSPAN session's destination
    (``destination_uplinks``)."""

    vm: Optional[Name] = None
    vnic: Name = "eth0"
    host: Optional[Name] = None
    vmk: Optional[VmkName] = None
    uplink: Optional[Name] = None
    direction: Literal["both", "ingress", "egress"] = "both"


class MirrorSession(LabModel):
    """A vSphere port mirroring session on a distributed switch, one of the
    session types vSphere's client offers:

    * ``type: erspan`` is "Encapsulated Remote Mirroring (L3) Source": copies
      of the sources' frames go to ``destination_ip`` (a monitoring host),
      encapsulated as ERSPAN type II (``encapsulation: erspan``, what vSphere
      sends by default), ERSPAN type III (``erspan3``) or plain GRE
      (``gre``), from the host's VMkernel address through its routing table
      and uplinks. ``session_id`` is the ERSPAN session ID (the GRE key for
      gre); default: the session's position in the list, from 1.
    * ``type: rspan`` is "Remote Mirroring Source": copies leave by the
      ``destination_uplinks`` (dvUplink names) tagged with
      ``encapsulation_vlan``, for a physical switch to carry that VLAN to an
      analyser; ``preserve_original_vlan`` keeps the source port group's own
      tag inside (two tags on the wire).
    * ``type: local`` is "Distributed Port Mirroring": copies go to
      ``destination_vnics``, as on vSphere only where the destination runs
      on the same host as the source.

    ``snap_length`` is vSphere's "Mirrored packet length" (each copy cut to
    that many bytes; unset = whole frames). ``normal_traffic`` is "Normal
    I/O on destination ports" (vSphere's default: disallowed): a destination
    vNIC then receives only mirrored frames and what it sends is dropped."""

    name: Name
    type: Literal["erspan", "rspan", "local"]
    enabled: StrictBool = True
    sources: tuple[MirrorPort, ...] = Field(min_length=1)
    destination_ip: Optional[IPv4Addr] = None
    encapsulation: Literal["erspan", "erspan3", "gre"] = "erspan"
    session_id: Optional[Annotated[StrictInt, Field(ge=0, le=1023)]] = None
    destination_vnics: tuple[MirrorPort, ...] = ()
    destination_uplinks: tuple[Name, ...] = ()
    encapsulation_vlan: Optional[Annotated[StrictInt, Field(ge=1, le=4094)]] = None
    preserve_original_vlan: StrictBool = False
    snap_length: Optional[Annotated[StrictInt, Field(ge=60, le=9000)]] = None
    normal_traffic: Literal["allowed", "disallowed"] = "disallowed"


# A LAG's load balancing modes, as the vSphere API names them
# (VMwareUplinkLacpPolicy loadbalanceAlgorithm); vSphere's default first.
LAG_LOAD_BALANCING = (
    "srcDestIpTcpUdpPortVlan",
    "srcDestIpTcpUdpPort",
    "srcDestIpVlan",
    "srcDestIp",
    "srcIpVlan",
    "srcIp",
    "destIpVlan",
    "destIp",
    "srcMac",
    "destMac",
    "srcDestMac",
    "srcTcpUdpPort",
    "destTcpUdpPort",
    "srcDestTcpUdpPort",
    "srcIpTcpUdpPort",
    "srcIpTcpUdpPortVlan",
    "destIpTcpUdpPort",
    "destIpTcpUdpPortVlan",
    "srcPortId",
    "vlan",
)


class LacpLag(LabModel):
    """A link aggregation group of a distributed switch (enhanced LACP): its
    ``ports`` LAG ports, named ``<name>-0`` .. ``<name>-<ports-1>`` as the
    vSphere Client shows them, to which each member host assigns a vmnic
    (``distributed_switches[].uplinks``). ``mode`` is the LACP negotiating
    mode (active: send LACPDUs; passive: answer only), required because the
    two sides' modes decide whether the bundle forms. ``timeout``: how fast
    the LAG asks its partner to send (fast: every 1 s, partner expired after
    3 s; slow: every 30 s, after 90 s)."""

    name: Name
    ports: Annotated[StrictInt, Field(ge=2, le=24)] = 2
    mode: Literal["active", "passive"]
    timeout: Literal["slow", "fast"] = "slow"
    load_balancing: Literal[LAG_LOAD_BALANCING] = LAG_LOAD_BALANCING[0]

    def port_names(self) -> tuple[str, ...]:
        return tuple(f"{self.name}-{i}" for i in range(self.ports))


class DistributedSwitch(LabModel):
    """A vSphere distributed switch (VDS): port groups defined once for every
    member host; ``uplinks`` are dvUplink names each member maps to a vmnic,
    as are the ports of its ``lags``. ``mirrors`` are its port mirroring
    sessions."""

    name: Name
    uplinks: tuple[Name, ...] = ()
    mtu: Mtu = 1500
    teaming: Teaming = Teaming()
    security: Security = Security()
    port_groups: tuple[PortGroup, ...] = ()
    lags: tuple[LacpLag, ...] = ()
    mirrors: tuple[MirrorSession, ...] = ()


class DistributedSwitchMember(LabModel):
    """A host's membership of a distributed switch: dvUplink or LAG port
    name (``lag1-0``) -> vmnic."""

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

    name: VmkName
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

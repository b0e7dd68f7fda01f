"""The lab file as typed, immutable objects.

A lab describes *intent*: ESXi hosts with their uplinks, vSwitches, port groups
and VMkernel adapters; VMs and where they start; physical switches, routers and
plain hosts; sites and DCI links. Which host a VM is on *now* and which uplink a
port is pinned to are *bindings*, kept elsewhere (see ``controller.bindings``).

Every model forbids unknown keys and is frozen; scalar fields are strict (a
quoted "10" is not a VLAN). Cross-references (a VM's port group exists on its
host, a port group's uplinks are on its vSwitch, ...) are checked by
``vlab.lab.check`` once the whole file has parsed.

One module per part of the lab: ``types`` (field types), ``vsphere``,
``physical``, ``security``, ``nsx``; this one holds the whole ``Lab`` and
exports every model.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import (
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
)

from .nsx import (
    DistributedRouter,
    IpDiscoveryMethod,
    LogicalSwitch,
    Nsx,
    RouterInterface,
)
from .physical import (
    DciLink,
    GatewayAddress,
    Host,
    HostInterface,
    Lag,
    PhysicalSwitch,
    Route,
    Site,
    Span,
    SwitchPort,
    SwitchPortRef,
)
from .security import (
    DistributedFirewall,
    FirewallRule,
    PerimeterFirewall,
    SecurityGroup,
    Service,
    Verdict,
)
from .types import (
    EST_VLAN,
    MAX_FIREWALL_RULES,
    VGT_VLAN,
    IPv4Addr,
    IPv4If,
    IPv4Net,
    LabModel,
    Mac,
    Mtu,
    Name,
    Policy,
    PortNumber,
    Speed,
    SwitchVlan,
    VlanId,
)
from .vsphere import (
    LAG_LOAD_BALANCING,
    SHAPING_DEFAULTS,
    DistributedSwitch,
    DistributedSwitchMember,
    EsxiHost,
    LacpLag,
    MirrorPort,
    MirrorSession,
    PortGroup,
    Security,
    Shaping,
    StandardSwitch,
    Teaming,
    Uplink,
    Vm,
    VmkernelAdapter,
    Vnic,
)


class Expectation(LabModel):
    """What a teacher expects of a lab (``vlab lab validate``): pairs of
    endpoint names (``vm1``, ``esx1/vmk0``, ``router/eth1``) that must or must
    not reach each other by ping."""

    reachable: tuple[tuple[StrictStr, StrictStr], ...] = ()
    unreachable: tuple[tuple[StrictStr, StrictStr], ...] = ()


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


__all__ = [
    "EST_VLAN",
    "VmkName",
    "DciLink",
    "DistributedFirewall",
    "DistributedRouter",
    "DistributedSwitch",
    "DistributedSwitchMember",
    "EsxiHost",
    "Expectation",
    "FirewallRule",
    "GatewayAddress",
    "Host",
    "HostInterface",
    "IPv4Addr",
    "IPv4If",
    "IPv4Net",
    "IpDiscoveryMethod",
    "Lab",
    "LabModel",
    "Lag",
    "LacpLag",
    "LAG_LOAD_BALANCING",
    "LogicalSwitch",
    "MAX_FIREWALL_RULES",
    "Mac",
    "MirrorPort",
    "MirrorSession",
    "Mtu",
    "Name",
    "Nsx",
    "PerimeterFirewall",
    "PhysicalSwitch",
    "Policy",
    "PortGroup",
    "PortNumber",
    "Route",
    "RouterInterface",
    "Security",
    "SecurityGroup",
    "SHAPING_DEFAULTS",
    "Service",
    "Shaping",
    "Site",
    "Span",
    "Speed",
    "StandardSwitch",
    "SwitchPort",
    "SwitchPortRef",
    "SwitchVlan",
    "Teaming",
    "Uplink",
    "VGT_VLAN",
    "Verdict",
    "VlanId",
    "Vm",
    "VmkernelAdapter",
    "Vnic",
]

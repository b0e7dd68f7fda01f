"""The effective configuration of each host's vSwitches.

Port groups inherit teaming, security and (on a standard switch) traffic
shaping from their vSwitch, and a distributed
switch's port groups appear on every member host with dvUplink names mapped to
that host's vmnics; an NSX logical switch is a port group of the vSwitch
that carries the host's VTEP, and inherits that switch's security policy.
This module resolves all of that once, so topologies and
flow compilers read plain, fully specified values.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, Optional

from .model import (
    SHAPING_DEFAULTS,
    DistributedSwitch,
    EsxiHost,
    Lab,
    PortGroup,
    Security,
    Shaping,
    StandardSwitch,
    Teaming,
    VmkernelAdapter,
)

# vSphere defaults: a standard switch is Reject/Accept/Accept, a distributed
# switch Reject/Reject/Reject (promiscuous, MAC changes, forged transmits).
DEFAULT_SECURITY = {
    "standard": ("reject", "accept", "accept"),
    "distributed": ("reject", "reject", "reject"),
}


@dataclass(frozen=True)
class EffectiveSecurity:
    """Security policy with inheritance resolved."""

    promiscuous: str
    mac_changes: str
    forged_transmits: str


@dataclass(frozen=True)
class EffectiveTeaming:
    """Teaming with inheritance resolved; uplinks are this host's vmnic names."""

    policy: str
    active: tuple[str, ...]
    standby: tuple[str, ...]
    unused: tuple[str, ...]
    failure_detection: str
    notify_switches: bool
    failback: bool
    # A team whose active uplink is a LAG (policy "lag"): its name and load
    # balancing mode; ``active`` are then its member vmnics on this host.
    lag: Optional[str] = None
    load_balancing: Optional[str] = None


@dataclass(frozen=True)
class HostLag:
    """A distributed switch's LAG as it exists on one host: the vmnics this
    host assigned to its ports (in port order) and its LACP settings."""

    name: str
    members: tuple[str, ...]
    mode: str
    timeout: str
    load_balancing: str


@dataclass(frozen=True)
class Shaper:
    """An enabled traffic shaping policy, inheritance resolved, in vSphere's
    units: Kbit/s (1000 bit/s) and KB (1024 bytes), before ``link_scale``."""

    average_kbps: int
    peak_kbps: int
    burst_kb: int


@dataclass(frozen=True)
class PortShaping:
    """A port's traffic shaping in the switch's terms: ``ingress`` is what the
    port sends into the switch (a VM's outbound traffic, the only direction
    a standard switch shapes), ``egress`` what the switch delivers to the
    port. ``None``: that direction is not shaped."""

    ingress: Optional[Shaper] = None
    egress: Optional[Shaper] = None


@dataclass(frozen=True)
class HostPortGroup:
    """A port group as it exists on one host's vSwitch."""

    name: str
    vlan: int
    teaming: EffectiveTeaming
    security: EffectiveSecurity
    shaping: PortShaping = PortShaping()


@dataclass(frozen=True)
class HostSegment:
    """An NSX logical switch as it exists on one host's VTEP vSwitch (in
    NSX-V, a port group of the prepared distributed switch)."""

    name: str
    vni: int
    security: EffectiveSecurity


@dataclass(frozen=True)
class HostSwitch:
    """One vSwitch (standard, or a distributed switch's host proxy switch) on
    one host: an OVS bridge in that host's OVS instance."""

    host: str
    name: str
    kind: Literal["standard", "distributed"]
    index: int  # position on the host, 0-based
    uplinks: tuple[str, ...]  # vmnic names: standalone uplinks in order, then LAG members
    mtu: int
    port_groups: tuple[HostPortGroup, ...]
    segments: tuple[HostSegment, ...] = ()  # the VTEP's vSwitch only
    lags: tuple[HostLag, ...] = ()  # a distributed switch's LAGs

    def lag_of(self, uplink: str) -> Optional[HostLag]:
        """The LAG ``uplink`` (a vmnic) is a member of, if any."""
        return next((g for g in self.lags if uplink in g.members), None)

    def port_group(self, name: str) -> HostPortGroup:
        for pg in self.port_groups:
            if pg.name == name:
                return pg
        raise KeyError(name)

    def segment(self, name: str) -> HostSegment:
        for ls in self.segments:
            if ls.name == name:
                return ls
        raise KeyError(name)


def _pick(*values):
    for v in values:
        if v is not None:
            return v
    return None


def effective_security(kind: str, switch: Security, pg: Security) -> EffectiveSecurity:
    dflt = DEFAULT_SECURITY[kind]
    return EffectiveSecurity(
        promiscuous=_pick(pg.promiscuous, switch.promiscuous, dflt[0]),
        mac_changes=_pick(pg.mac_changes, switch.mac_changes, dflt[1]),
        forged_transmits=_pick(pg.forged_transmits, switch.forged_transmits, dflt[2]),
    )


def effective_shaper(*layers: Shaping) -> Optional[Shaper]:
    """The shaping policy of the first layer (port group, then vSwitch) that
    sets each field; ``None`` when it ends up disabled."""
    enabled = _pick(*(layer.enabled for layer in layers), False)
    if not enabled:
        return None
    value = {f: _pick(*(getattr(layer, f) for layer in layers), d) for f, d in SHAPING_DEFAULTS.items()}
    return Shaper(value["average_bandwidth"], value["peak_bandwidth"], value["burst_size"])


def port_shaping(kind: str, switch: StandardSwitch | DistributedSwitch, pg: PortGroup) -> PortShaping:
    if kind == "standard":
        return PortShaping(ingress=effective_shaper(pg.shaping, switch.shaping))
    return PortShaping(
        ingress=effective_shaper(pg.ingress_shaping), egress=effective_shaper(pg.egress_shaping)
    )


def _failover_order(t: Teaming) -> bool:
    return any(x is not None for x in (t.active, t.standby, t.unused))


def effective_teaming(
    uplinks: tuple[str, ...],
    switch: Teaming,
    pg: Teaming,
    rename: Optional[dict[str, str]] = None,
    lags: tuple[HostLag, ...] = (),
) -> EffectiveTeaming:
    """Merge port-group over vSwitch teaming. The failover order (active,
    standby, unused) is overridden as a unit, as in the vSphere client: an
    uplink the order does not list is unused when ``active`` is given and
    active otherwise. ``rename`` maps dvUplink names to vmnic names. An
    active list that is one LAG (of ``lags``) makes the team that LAG: its
    members are the active uplinks and its load balancing mode replaces the
    port group's policy, as on a distributed switch."""
    order = pg if _failover_order(pg) else switch
    standby = tuple(order.standby or ())
    unused = tuple(order.unused or ())
    if order.active is not None:
        active = tuple(order.active)
        unused += tuple(u for u in uplinks if u not in active + standby + unused)
    else:
        active = tuple(u for u in uplinks if u not in standby + unused)

    # On a distributed switch, a dvUplink this host does not map to a vmnic
    # does not exist here: drop it rather than hand out a non-vmnic name.
    def r(names):
        if rename is None:
            return tuple(names)
        return tuple(rename[n] for n in names if n in rename)

    lag = next((g for g in lags if active == (g.name,)), None)
    if lag is not None:
        return EffectiveTeaming(
            policy="lag",
            active=lag.members,
            standby=(),
            unused=r(unused) + tuple(m for g in lags if g is not lag for m in g.members),
            failure_detection=_pick(pg.failure_detection, switch.failure_detection, "link_status"),
            notify_switches=_pick(pg.notify_switches, switch.notify_switches, True),
            failback=_pick(pg.failback, switch.failback, True),
            lag=lag.name,
            load_balancing=lag.load_balancing,
        )
    return EffectiveTeaming(
        policy=_pick(pg.policy, switch.policy, "originating_port"),
        active=r(active),
        standby=r(standby),
        unused=r(unused),
        failure_detection=_pick(pg.failure_detection, switch.failure_detection, "link_status"),
        notify_switches=_pick(pg.notify_switches, switch.notify_switches, True),
        failback=_pick(pg.failback, switch.failback, True),
    )


def _resolve(
    host: EsxiHost,
    sw: StandardSwitch | DistributedSwitch,
    kind: str,
    index: int,
    uplink_map: Optional[dict[str, str]],
) -> HostSwitch:
    lags = tuple(
        HostLag(
            name=g.name,
            members=tuple(uplink_map[n] for n in g.port_names() if n in uplink_map),
            mode=g.mode,
            timeout=g.timeout,
            load_balancing=g.load_balancing,
        )
        for g in getattr(sw, "lags", ())
        if uplink_map is not None
    )
    pgs = tuple(
        HostPortGroup(
            name=pg.name,
            vlan=pg.vlan,
            teaming=effective_teaming(sw.uplinks, sw.teaming, pg.teaming, uplink_map, lags),
            security=effective_security(kind, sw.security, pg.security),
            shaping=port_shaping(kind, sw, pg),
        )
        for pg in sw.port_groups
    )
    vmnics = tuple((uplink_map or {}).get(u, u) for u in sw.uplinks if uplink_map is None or u in uplink_map)
    vmnics += tuple(m for g in lags for m in g.members)
    return HostSwitch(
        host=host.name,
        name=sw.name,
        kind=kind,
        index=index,
        uplinks=vmnics,
        mtu=sw.mtu,
        port_groups=pgs,
        lags=lags,
    )


def host_switches(lab: Lab, host: EsxiHost) -> tuple[HostSwitch, ...]:
    """Every vSwitch of ``host``: its standard switches, then its distributed
    switch memberships. Assumes ``lab`` passed ``check_references``."""
    out = [_resolve(host, sw, "standard", i, None) for i, sw in enumerate(host.vswitches)]
    dvs = {d.name: d for d in lab.distributed_switches}
    for member in host.distributed_switches:
        out.append(_resolve(host, dvs[member.name], "distributed", len(out), dict(member.uplinks)))
    vtep = vtep_of(host)
    if vtep is not None and lab.nsx is not None:
        # NSX host preparation sets the transport MTU on the VTEP's vSwitch,
        # and the logical switches become port groups of it.
        models = list(host.vswitches) + [dvs[m.name] for m in host.distributed_switches]
        out = [
            replace(sw, mtu=lab.nsx.transport_mtu, segments=_segments(lab, models[sw.index]))
            if any(pg.name == vtep.port_group for pg in sw.port_groups)
            else sw
            for sw in out
        ]
    return tuple(out)


def _segments(lab: Lab, carrier: StandardSwitch | DistributedSwitch) -> tuple[HostSegment, ...]:
    # A logical switch is a distributed port group (NSX-V creates it on the
    # prepared distributed switch), so its defaults are the distributed ones
    # whatever switch this lab put the VTEP on.
    return tuple(
        HostSegment(ls.name, ls.vni, effective_security("distributed", carrier.security, ls.security))
        for ls in lab.nsx.logical_switches
    )


def dvs_members(lab: Lab, dvs: DistributedSwitch) -> list[EsxiHost]:
    """The ESXi hosts that are members of distributed switch ``dvs``."""
    return [h for h in lab.esxi_hosts if any(m.name == dvs.name for m in h.distributed_switches)]


def vtep_of(host: EsxiHost) -> Optional[VmkernelAdapter]:
    """``host``'s VTEP: its VMkernel adapter on the VXLAN stack, if any."""
    return next((v for v in host.vmkernel if v.stack == "vxlan"), None)


def link_mbps(lab: Lab, gbps: float) -> float:
    """The rate a link of ``gbps`` is shaped to in this lab (its ``link_scale``)."""
    return gbps * 1000 * lab.link_scale


def vteps(lab: Lab) -> dict[str, VmkernelAdapter]:
    """ESXi host name -> its VTEP vmk, for hosts that have one."""
    return {h.name: vtep_of(h) for h in lab.esxi_hosts if vtep_of(h) is not None}


def overlay_switch(lab: Lab, host: EsxiHost) -> Optional[HostSwitch]:
    """The vSwitch of ``host`` that carries its VTEP: VMs on logical switches
    connect to it (in NSX-v, the VXLAN-prepared distributed switch)."""
    vtep = vtep_of(host)
    return None if vtep is None else switch_of_port_group(lab, host, vtep.port_group)[0]


def switch_of_port_group(lab: Lab, host: EsxiHost, pg_name: str) -> tuple[HostSwitch, HostPortGroup]:
    """The vSwitch of ``host`` that carries port group ``pg_name``."""
    for sw in host_switches(lab, host):
        for pg in sw.port_groups:
            if pg.name == pg_name:
                return sw, pg
    raise KeyError(f"{host.name} has no port group {pg_name}")


def mirror_session_id(dvs: DistributedSwitch, index: int) -> int:
    """The ERSPAN session ID (GRE key) of ``dvs.mirrors[index]``: its own, or
    its position in the list, from 1."""
    m = dvs.mirrors[index]
    return m.session_id if m.session_id is not None else index + 1


def sites_of(lab: Lab) -> dict[str, dict[str, list[str]]]:
    """Each site's members: its ESXi hosts, physical switches and plain
    hosts (the grouping ``vlab inspect`` shows); members with no ``site`` are
    under ``""`` when the lab has sites at all."""
    if not lab.sites:
        return {}
    out = {s.name: {"esxi_hosts": [], "physical_switches": [], "hosts": []} for s in lab.sites}
    for kind, items in (
        ("esxi_hosts", lab.esxi_hosts),
        ("physical_switches", lab.physical_switches),
        ("hosts", lab.hosts),
    ):
        for item in items:
            site = out.setdefault(item.site or "", {"esxi_hosts": [], "physical_switches": [], "hosts": []})
            site[kind].append(item.name)
    return out


def find(items, name: str):
    """The element of a tuple of named lab objects called ``name`` (or None)."""
    return next((i for i in items if i.name == name), None)


__all__ = [
    "EffectiveSecurity",
    "EffectiveTeaming",
    "HostLag",
    "HostPortGroup",
    "HostSegment",
    "HostSwitch",
    "host_switches",
    "switch_of_port_group",
    "vtep_of",
    "overlay_switch",
    "effective_teaming",
    "effective_security",
    "find",
    "sites_of",
    "PortGroup",
]

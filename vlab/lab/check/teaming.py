"""Teaming that needs the physical side: IP-hash teaming and static LAGs,
load-based teaming, and a distributed switch's LACP LAGs."""

from __future__ import annotations

from typing import Iterator, Optional

from ..lacp import LAG_HASH_FIELDS, why_never_forms
from ..model import VGT_VLAN, Lab
from ..model.vsphere import IP_HASH_TEAM_SIZES, LAG_LOAD_BALANCING
from ..resolve import effective_teaming, host_switches
from .common import Problem


def ip_hash_needs_lag(lab: Lab) -> Iterator[Problem]:
    """IP-hash teaming needs each host's active uplinks in one static
    EtherChannel, and the testbed hashes over 1, 2, 4 or 8 of them
    (``IP_HASH_TEAM_SIZES``). The problem is reported at the ``teaming.policy`` that asks
    for ip_hash: the port group's own, or its switch's when it is inherited."""
    # Only static port channels: an LACP one never bundles a host that
    # speaks no LACP, so it would carry nothing.
    lag_of = {
        (sw.name, p): (sw.name, lag.name)
        for sw in lab.physical_switches
        for lag in sw.lags
        if lag.lacp == "off"
        for p in lag.ports
    }
    dvs_index = {d.name: d_i for d_i, d in enumerate(lab.distributed_switches)}
    for i, host in enumerate(lab.esxi_hosts):
        plugs = {u.name: (u.switch, u.port) for u in host.uplinks}
        switches = [(f"esxi_hosts[{i}].vswitches[{j}]", sw, None) for j, sw in enumerate(host.vswitches)]
        switches += [
            (
                f"distributed_switches[{dvs_index[m.name]}]",
                lab.distributed_switches[dvs_index[m.name]],
                dict(m.uplinks),
            )
            for m in host.distributed_switches
            if m.name in dvs_index
        ]
        for sbase, sw, dv_map in switches:
            lag_names = {lag.name for lag in getattr(sw, "lags", ())}
            for k, pg in enumerate(sw.port_groups):
                t = effective_teaming(sw.uplinks, sw.teaming, pg.teaming)
                if t.policy != "ip_hash" or lag_names & set(t.active):
                    continue  # (a LAG's own load balancing replaces the policy)
                active = t.active
                if dv_map is not None:
                    # dvUplink -> vmnic; one this host does not map has no NIC here.
                    active = tuple(dv_map[u] for u in active if u in dv_map)
                where = (
                    f"{sbase}.port_groups[{k}].teaming.policy"
                    if pg.teaming.policy is not None
                    else f"{sbase}.teaming.policy"
                )
                problem = lag_problem(active, plugs, lag_of)
                if t.failure_detection == "beacon_probing":
                    # A port channel never sends a frame back into itself, so
                    # no member would hear another: VMware says do not combine.
                    yield (
                        where,
                        f"{pg.name} on {host.name}: ip_hash with beacon_probing: a port channel "
                        "sends no beacon back into the LAG, so no uplink would hear another",
                    )
                elif problem is not None:
                    yield (
                        where,
                        (
                            "ip_hash needs every active uplink in one static LAG "
                            f"(physical_switches[].lags); {pg.name} on {host.name}: "
                            f"{problem}"
                        ),
                    )
                elif size_problem(active) is not None:
                    yield where, f"{pg.name} on {host.name}: {size_problem(active)}"


def beacon_warnings(lab: Lab) -> list[Problem]:
    """Beacon probing in a team of fewer than three uplinks cannot tell
    which uplink failed (VMware recommends three or more)."""
    out = []
    for host in lab.esxi_hosts:
        for sw in host_switches(lab, host):
            for pg in sw.port_groups:
                t = pg.teaming
                n = len(t.active + t.standby)
                if t.failure_detection == "beacon_probing" and n == 1:
                    out.append(
                        (
                            f"{host.name}/{sw.name}/{pg.name}.teaming.failure_detection",
                            "beacon probing over 1 uplink does nothing: it has no other uplink to hear",
                        )
                    )
                elif t.failure_detection == "beacon_probing" and n < 3:
                    out.append(
                        (
                            f"{host.name}/{sw.name}/{pg.name}.teaming.failure_detection",
                            f"beacon probing over {n} uplinks cannot tell which "
                            "one failed beyond the switch: it then sends on all of them (shotgun); "
                            "use three or more",
                        )
                    )
    return out


def lag_warnings(lab: Lab) -> list[Problem]:
    """A LAG that can never bundle a member (both ends passive, or its
    vmnics in no LACP port channel): allowed, since that is what a lab may
    set out to show, but its port groups then reach nothing off the host."""
    out = []
    for host in lab.esxi_hosts:
        for sw in host_switches(lab, host):
            for lag in sw.lags:
                why = why_never_forms(lab, host, lag)
                used = [pg.name for pg in sw.port_groups if pg.teaming.lag == lag.name]
                if why is not None and used:
                    out.append(
                        (
                            f"{host.name}/{sw.name}/{lag.name}",
                            f"{why}: {', '.join(used)} reach nothing off the host",
                        )
                    )
    return out


def size_problem(active) -> Optional[str]:
    """Why the testbed cannot hash over ``active`` (None: it can)."""
    if len(active) in IP_HASH_TEAM_SIZES:
        return None
    return (
        f"{len(active)} active uplinks; IP hash is emulated for teams of "
        + ", ".join(map(str, IP_HASH_TEAM_SIZES))
        + " (its (src ^ dst) mod N is matched bit by bit in flows)"
    )


def lag_problem(active, plugs, lag_of) -> Optional[str]:
    """Why the ``active`` vmnics are not all in one LAG, or None."""
    if not active:
        return "no active uplink"
    lags = set()
    for vmnic in active:
        switch, port = plugs[vmnic]
        if (switch, port) not in lag_of:
            return f"{vmnic} ({switch} port {port}) is in no static LAG (lacp: off)"
        lags.add(lag_of[(switch, port)])
    if len(lags) > 1:
        return (
            "active uplinks are in different LAGs ("
            + ", ".join(f"{sw}/{lag}" for sw, lag in sorted(lags))
            + ")"
        )
    return None


def load_based_where_vsphere_offers_it(lab: Lab) -> Iterator[Problem]:
    """Route based on physical NIC load is a distributed switch policy
    (vSphere offers it on no standard switch), over independent uplinks
    (no EtherChannel on the physical side), and not for the VTEP's port
    group (NSX-V's VXLAN teaming offers no load-based option)."""
    for i, host in enumerate(lab.esxi_hosts):
        for j, sw in enumerate(host.vswitches):
            base = f"esxi_hosts[{i}].vswitches[{j}]"
            places = [(f"{base}.teaming.policy", sw.teaming)]
            places += [
                (f"{base}.port_groups[{k}].teaming.policy", pg.teaming) for k, pg in enumerate(sw.port_groups)
            ]
            for path, teaming in places:
                if teaming.policy == "load_based":
                    yield (
                        path,
                        "load_based (route based on physical NIC load) is a distributed switch policy; "
                        "a standard switch does not offer it",
                    )
    in_lag = {(sw.name, p) for sw in lab.physical_switches for lag in sw.lags for p in lag.ports}
    vteps = {(h.name, v.port_group) for h in lab.esxi_hosts for v in h.vmkernel if v.stack == "vxlan"}
    for d, dvs in enumerate(lab.distributed_switches):
        for k, pg in enumerate(dvs.port_groups):
            team = effective_teaming(dvs.uplinks, dvs.teaming, pg.teaming)
            if team.policy != "load_based":
                continue
            where = (
                f"distributed_switches[{d}].port_groups[{k}].teaming.policy"
                if pg.teaming.policy is not None
                else f"distributed_switches[{d}].teaming.policy"
            )
            for host in lab.esxi_hosts:
                member = next((m for m in host.distributed_switches if m.name == dvs.name), None)
                if member is None:
                    continue
                if (host.name, pg.name) in vteps:
                    yield (
                        where,
                        f"{pg.name} carries {host.name}'s VTEP: NSX's VXLAN teaming has no load-based policy",
                    )
                plugs = {u.name: (u.switch, u.port) for u in host.uplinks}
                lagged = [
                    member.uplinks[u]
                    for u in team.active
                    if u in member.uplinks and plugs.get(member.uplinks[u]) in in_lag
                ]
                if lagged:
                    yield (
                        where,
                        f"{pg.name} on {host.name}: load-based teaming needs independent uplinks, but "
                        f"{', '.join(lagged)} are in a LAG on the physical switch "
                        "(remove the LAG, or use ip_hash)",
                    )


# The LAG load balancing modes the testbed reproduces, in vSphere's order:
# those with an OVS bundle hash field.
LAG_MODES_EMULATED = tuple(m for m in LAG_LOAD_BALANCING if m in LAG_HASH_FIELDS)


def lags_as_vsphere_allows(lab: Lab) -> Iterator[Problem]:
    """A distributed switch's LAGs, as vSphere's "LACP Teaming and Failover
    Configuration for Distributed Port Groups" allows them: one LAG active,
    alone, with an empty standby list (a LAG in standby is vSphere's
    migration step, not emulated), link status failure detection (a port
    channel sends no beacon back into itself), no load balancing policy of
    the port group's own (the LAG's mode replaces it), and a mode the
    testbed can hash by."""
    for d, dvs in enumerate(lab.distributed_switches):
        base = f"distributed_switches[{d}]"
        names = {lag.name for lag in dvs.lags}
        for k, lag in enumerate(dvs.lags):
            if lag.load_balancing not in LAG_MODES_EMULATED:
                yield (
                    f"{base}.lags[{k}].load_balancing",
                    f"{lag.load_balancing} has no hash in Open vSwitch's bundle action; the testbed "
                    f"reproduces {', '.join(LAG_MODES_EMULATED)}",
                )
        places = [(f"{base}.teaming", dvs.teaming)]
        places += [(f"{base}.port_groups[{k}].teaming", pg.teaming) for k, pg in enumerate(dvs.port_groups)]
        for path, own in places:
            for k, name in enumerate(own.standby or ()):
                if name in names:
                    yield (
                        f"{path}.standby[{k}]",
                        f"LAG {name} in standby is vSphere's migration step (active uplinks, standby LAG), "
                        "which the testbed does not emulate: make the LAG the only active uplink",
                    )
            active = own.active or ()
            lagged = [a for a in active if a in names]
            if lagged and len(active) > 1:
                yield (
                    f"{path}.active",
                    f"a LAG ({lagged[0]}) must be the only active uplink: vSphere does not mix active "
                    "LAGs with other LAGs or standalone uplinks",
                )
            elif lagged and own.standby:
                yield f"{path}.standby", "with a LAG active the standby list must be empty"
            elif lagged and own.policy is not None:
                yield (
                    f"{path}.policy",
                    f"the LAG {lagged[0]}'s load_balancing decides how frames spread over its members; "
                    "remove teaming.policy",
                )
        for k, pg in enumerate(dvs.port_groups):
            team = effective_teaming(dvs.uplinks, dvs.teaming, pg.teaming)
            lag = next((g for g in dvs.lags if team.active == (g.name,)), None)
            if lag is None:
                continue
            tbase = f"{base}.port_groups[{k}]"
            if pg.teaming.policy is not None and not pg.teaming.active:
                yield (
                    f"{tbase}.teaming.policy",
                    f"{pg.name} inherits LAG {lag.name} as its active uplink, whose load_balancing "
                    "decides how frames spread; remove teaming.policy",
                )
            if team.failure_detection == "beacon_probing":
                yield (
                    f"{tbase}.teaming.failure_detection",
                    f"{pg.name} uses LAG {lag.name}: a port channel sends no beacon back into itself, "
                    "so use link_status (LACP itself detects a silent partner)",
                )
            if pg.vlan == VGT_VLAN and lag.load_balancing.endswith("Vlan"):
                yield (
                    f"{tbase}.vlan",
                    f"LAG {lag.name} hashes by {lag.load_balancing}: the testbed hashes a port group's "
                    "VLAN, and a VGT (4095) port group has none; use a mode without the VLAN",
                )

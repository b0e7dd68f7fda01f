"""Teaming that needs the physical side: IP-hash teaming and static LAGs."""

from __future__ import annotations

from typing import Iterator, Optional

from ..model import Lab
from ..model.vsphere import IP_HASH_TEAM_SIZES
from ..resolve import effective_teaming, host_switches
from .common import Problem


def ip_hash_needs_lag(lab: Lab) -> Iterator[Problem]:
    """IP-hash teaming needs each host's active uplinks in one static
    EtherChannel, and the testbed hashes over 1, 2, 4 or 8 of them
    (``IP_HASH_TEAM_SIZES``). The problem is reported at the ``teaming.policy`` that asks
    for ip_hash: the port group's own, or its switch's when it is inherited."""
    lag_of = {
        (sw.name, p): (sw.name, lag.name)
        for sw in lab.physical_switches
        for lag in sw.lags
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
            for k, pg in enumerate(sw.port_groups):
                t = effective_teaming(sw.uplinks, sw.teaming, pg.teaming)
                if t.policy != "ip_hash":
                    continue
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
            return f"{vmnic} ({switch} port {port}) is in no LAG"
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

"""Checks of the vSphere side: distributed switches, node names, ESXi hosts
(uplinks, vSwitches, port groups, teaming, VMkernel adapters) and VMs."""

from __future__ import annotations

from typing import Iterator

from ... import naming
from ..model import VGT_VLAN, Lab, Teaming
from ..resolve import effective_teaming
from .common import Problem, Seen, dupes, gateway, ifname, shapeable


def distributed_switches(lab: Lab, seen: Seen) -> Iterator[Problem]:
    yield from dupes(lab.distributed_switches, "distributed switch", "distributed_switches")
    for i, dvs in enumerate(lab.distributed_switches):
        base = f"distributed_switches[{i}]"
        yield from dupes([type("U", (), {"name": u}) for u in dvs.uplinks], "dvUplink", f"{base}.uplinks")
        yield from dupes(dvs.lags, "LAG", f"{base}.lags")
        for k, lag in enumerate(dvs.lags):
            for name in (lag.name, *lag.port_names()):
                if name in dvs.uplinks:
                    yield f"{base}.lags[{k}].name", f"{name!r} is also a dvUplink of {dvs.name}"
        yield from switch_body(dvs, base, "distributed switch")


def node_names(lab: Lab) -> Iterator[Problem]:
    """Node names are one namespace (Mininet node names)."""
    nodes: dict[str, str] = {}
    for section, items in (("esxi_hosts", lab.esxi_hosts), ("vms", lab.vms), ("hosts", lab.hosts)):
        for i, item in enumerate(items):
            path = f"{section}[{i}].name"
            if item.name in naming.RESERVED_NODE_NAMES:
                yield path, f"{item.name!r} is reserved for the testbed's own node"
            if item.name in nodes:
                yield path, f"duplicate node name {item.name!r} (first at {nodes[item.name]})"
            nodes.setdefault(item.name, path)


def esxi_hosts(lab: Lab, seen: Seen) -> Iterator[Problem]:
    dvs_by_name = {d.name: d for d in lab.distributed_switches}
    for i, host in enumerate(lab.esxi_hosts):
        base = f"esxi_hosts[{i}]"
        yield from seen.site(host.site, f"{base}.site")
        yield from ifname(naming.control_port(host.name), f"{base}.name", "control")
        yield from dupes(host.uplinks, "uplink", f"{base}.uplinks")
        vmnics = {u.name for u in host.uplinks}
        for j, up in enumerate(host.uplinks):
            yield from seen.plug(up.switch, up.port, f"{base}.uplinks[{j}]", f"{host.name}/{up.name}")
            yield from shapeable(lab, up.speed, f"{base}.uplinks[{j}].speed")
        owner: dict[str, str] = {}  # vmnic -> vSwitch using it
        # Every vSwitch, standard or distributed, is an OVS bridge in the
        # host's namespace, next to the vmnics: one namespace for all names.
        # Checked before the port groups, or joining a distributed switch twice
        # would first show up as its port groups clashing with themselves.
        yield from dupes(host.vswitches, "vSwitch", f"{base}.vswitches")
        yield from dupes(
            host.distributed_switches, "distributed switch membership", f"{base}.distributed_switches"
        )
        vss_names = {sw.name for sw in host.vswitches}
        for j, member in enumerate(host.distributed_switches):
            if member.name in vss_names:
                yield (
                    f"{base}.distributed_switches[{j}].name",
                    f"{member.name!r} is also a standard vSwitch of {host.name}",
                )
        pgs: dict[str, int] = {}
        for j, sw in enumerate(host.vswitches):
            sbase = f"{base}.vswitches[{j}]"
            if sw.name in vmnics:
                yield f"{sbase}.name", f"vSwitch name {sw.name!r} clashes with an uplink name"
            for k, up in enumerate(sw.uplinks):
                if up not in vmnics:
                    yield f"{sbase}.uplinks[{k}]", f"{host.name} has no uplink {up!r}"
                elif owner.get(up) == sw.name:
                    yield f"{sbase}.uplinks[{k}]", f"{up} is listed twice"
                elif up in owner:
                    yield f"{sbase}.uplinks[{k}]", f"{up} is already an uplink of {owner[up]}"
                owner.setdefault(up, sw.name)
            yield from switch_body(sw, sbase, "vSwitch")
            for k, pg in enumerate(sw.port_groups):
                if pg.name in pgs:
                    yield f"{sbase}.port_groups[{k}].name", f"duplicate port group {pg.name!r} on {host.name}"
                pgs[pg.name] = pg.vlan
        for j, member in enumerate(host.distributed_switches):
            mbase = f"{base}.distributed_switches[{j}]"
            dvs = dvs_by_name.get(member.name)
            if dvs is None:
                yield f"{mbase}.name", f"unknown distributed switch {member.name!r}"
                continue
            if member.name in vmnics:
                yield (
                    f"{mbase}.name",
                    f"distributed switch name {member.name!r} clashes with an uplink name",
                )
            lag_ports = {n for lag in dvs.lags for n in lag.port_names()}
            for dvup, vmnic in member.uplinks.items():
                if dvup not in dvs.uplinks and dvup not in lag_ports:
                    yield f"{mbase}.uplinks.{dvup}", f"{dvs.name} has no dvUplink or LAG port {dvup!r}"
                if vmnic not in vmnics:
                    yield f"{mbase}.uplinks.{dvup}", f"{host.name} has no uplink {vmnic!r}"
                elif owner.get(vmnic) == dvs.name:
                    yield (f"{mbase}.uplinks.{dvup}", f"{vmnic} is already mapped to another dvUplink")
                elif vmnic in owner:
                    yield f"{mbase}.uplinks.{dvup}", f"{vmnic} is already an uplink of {owner[vmnic]}"
                owner.setdefault(vmnic, dvs.name)
            for pg in dvs.port_groups:
                if pg.name in pgs:
                    yield (
                        f"{mbase}.name",
                        f"port group {pg.name!r} of {dvs.name} clashes with one on {host.name}",
                    )
                pgs[pg.name] = pg.vlan
        seen.host_pgs[host.name] = pgs
        yield from dupes(host.vmkernel, "VMkernel adapter", f"{base}.vmkernel")
        for j, vmk in enumerate(host.vmkernel):
            vbase = f"{base}.vmkernel[{j}]"
            yield from ifname(vmk.name, f"{vbase}.name", "VMkernel adapter")
            if vmk.port_group not in pgs:
                yield f"{vbase}.port_group", f"{host.name} has no port group {vmk.port_group!r}"
            elif pgs[vmk.port_group] == VGT_VLAN:
                yield f"{vbase}.port_group", "a VMkernel adapter cannot use a VLAN 4095 (trunk) port group"
            yield from seen.unique_addr(vmk.mac, vmk.ip, vbase)
            yield from gateway(vmk.ip, vmk.gateway, f"{vbase}.gateway")
        gateway_of: dict[str, str] = {}
        for j, vmk in enumerate(host.vmkernel):
            if vmk.gateway is None:
                continue
            if vmk.stack in gateway_of:
                yield (
                    f"{base}.vmkernel[{j}].gateway",
                    f"the {vmk.stack} TCP/IP stack already has its default gateway on "
                    f"{gateway_of[vmk.stack]}",
                )
            gateway_of.setdefault(vmk.stack, vmk.name)


def vms(lab: Lab, seen: Seen) -> Iterator[Problem]:
    segments = {ls.name for ls in lab.nsx.logical_switches} if lab.nsx else set()
    for i, vm in enumerate(lab.vms):
        base = f"vms[{i}]"
        if vm.host not in seen.host_pgs:
            yield f"{base}.host", f"unknown ESXi host {vm.host!r}"
            continue
        yield from dupes(vm.vnics, "vNIC", f"{base}.vnics")
        for j, nic in enumerate(vm.vnics):
            nbase = f"{base}.vnics[{j}]"
            if (nic.port_group is None) == (nic.logical_switch is None):
                yield nbase, "give exactly one of port_group and logical_switch"
            elif nic.logical_switch is not None:
                if nic.logical_switch not in segments:
                    yield (
                        f"{nbase}.logical_switch",
                        f"unknown logical switch {nic.logical_switch!r} (nsx.logical_switches)",
                    )
                elif vm.host not in seen.vteps:
                    yield (
                        f"{nbase}.logical_switch",
                        f"{vm.host} has no VTEP (a VMkernel adapter with stack: vxlan)",
                    )
            elif nic.port_group not in seen.host_pgs[vm.host]:
                yield f"{nbase}.port_group", f"{vm.host} has no port group {nic.port_group!r}"
            yield from ifname(naming.vnic_port(vm.name, nic.name), f"{nbase}.name", "vNIC port")
            yield from seen.unique_addr(nic.mac, nic.ip, nbase)
            yield from gateway(nic.ip, nic.gateway, f"{nbase}.gateway")
        gateways = [j for j, nic in enumerate(vm.vnics) if nic.gateway is not None]
        if len(gateways) > 1:
            yield (
                f"{base}.vnics[{gateways[1]}].gateway",
                f"{vm.name} already has its default gateway on {vm.vnics[gateways[0]].name}: "
                "a guest has one default route",
            )


def switch_body(sw, base: str, what: str) -> Iterator[Problem]:
    """Checks shared by standard and distributed switches (whose teams may
    also name a LAG: ``teaming.lags_as_vsphere_allows`` says how)."""
    uplinks = set(sw.uplinks) | {lag.name for lag in getattr(sw, "lags", ())}
    yield from dupes(sw.port_groups, "port group", f"{base}.port_groups")
    # (path, teaming as written, what it overrides the vSwitch's with): the
    # vSwitch's own teaming resolves against nothing but itself.
    for tpath, teaming, override in [(f"{base}.teaming", sw.teaming, Teaming())] + [
        (f"{base}.port_groups[{k}].teaming", pg.teaming, pg.teaming) for k, pg in enumerate(sw.port_groups)
    ]:
        listed: dict[str, str] = {}
        for field in ("active", "standby", "unused"):
            for k, up in enumerate(getattr(teaming, field) or ()):
                if up not in uplinks:
                    yield f"{tpath}.{field}[{k}]", f"{up!r} is not an uplink of {what} {sw.name}"
                elif up in listed:
                    yield f"{tpath}.{field}[{k}]", f"{up} is already listed as {listed[up]}"
                listed.setdefault(up, field)
        # Judge the resolved order: the failover order is inherited as a unit,
        # so a port group listing only ``unused`` leaves every other uplink active.
        # A vSwitch without uplinks is internal-only; nothing to check there.
        eff = effective_teaming(sw.uplinks, sw.teaming, override)
        if sw.uplinks and not eff.active and not eff.standby:
            field = "unused" if teaming.active is None else "active"
            yield (f"{tpath}.{field}", "no active or standby uplink left: traffic could not leave the host")

"""Cross-reference checks a schema cannot express.

``check_references(lab)`` returns the first problem as ``(path, text)``, or
None. Checks follow the file's order (sites, switches, hosts, VMs, ...) so the
reported problem is the first one a reader meets.
"""

from __future__ import annotations

from ipaddress import IPv4Interface
from typing import Iterator, Optional

from .. import naming
from . import firewall
from .model import VGT_VLAN, Lab, Teaming
from .resolve import effective_teaming, mirror_session_id, overlay_switch, switch_of_port_group

Problem = tuple[str, str]


def _dupes(items, what: str, base: str, key=lambda x: x.name) -> Iterator[Problem]:
    seen: dict = {}
    for i, item in enumerate(items):
        k = key(item)
        if k in seen:
            yield f"{base}[{i}]", f"duplicate {what} {k!r} (first at {base}[{seen[k]}])"
        seen.setdefault(k, i)


def _ifname(name: str, path: str, role: str) -> Iterator[Problem]:
    if len(name) > naming.IFNAMSIZ:
        yield (
            path,
            (
                f"{role} interface name {name!r} is {len(name)} characters; "
                f"Linux allows at most {naming.IFNAMSIZ}"
            ),
        )


def _gateway(ip: Optional[IPv4Interface], gw, path: str) -> Iterator[Problem]:
    if gw is None:
        return
    if ip is None:
        yield path, "gateway given without an ip"
    elif gw not in ip.network:
        yield path, f"gateway {gw} is not in the subnet {ip.network}"
    elif gw == ip.ip:
        yield path, f"gateway {gw} is the interface's own address"


# Mininet's htb shaping refuses rates above 1000 Mbit/s (it logs and leaves
# the link unshaped), and a userspace OVS datapath carries < 1 Gbit/s per
# flow here anyway: a lab asking for more would silently measure the CPU.
MAX_LINK_MBPS = 1000


def _shapeable(lab: Lab, gbps: float, path: str) -> Iterator[Problem]:
    mbps = gbps * 1000 * lab.link_scale
    if mbps > MAX_LINK_MBPS:
        yield (
            path,
            (
                f"{gbps:g} Gbit/s x link_scale {lab.link_scale:g} = {mbps:g} Mbit/s; "
                f"emulated links must stay at or below {MAX_LINK_MBPS} Mbit/s "
                "(lower link_scale)"
            ),
        )


def _checks(lab: Lab) -> Iterator[Problem]:
    sites = {s.name for s in lab.sites}
    yield from _dupes(lab.sites, "site", "sites")

    # --- physical switches -------------------------------------------------
    yield from _dupes(lab.physical_switches, "physical switch", "physical_switches")
    switch_ports: dict[str, set[int]] = {}
    for i, sw in enumerate(lab.physical_switches):
        base = f"physical_switches[{i}]"
        if sw.site is not None and sw.site not in sites:
            yield f"{base}.site", f"unknown site {sw.site!r}"
        yield from _dupes(sw.ports, "port", f"{base}.ports", key=lambda p: p.port)
        for j, p in enumerate(sw.ports):
            if p.mode == "access" and p.vlan is None:
                yield f"{base}.ports[{j}].vlan", "an access port needs a vlan"
            if p.mode == "trunk" and p.vlan is not None:
                yield f"{base}.ports[{j}].vlan", "vlan is for access ports; trunks use allowed_vlans"
            if p.mode == "access" and p.allowed_vlans is not None:
                yield (
                    f"{base}.ports[{j}].allowed_vlans",
                    "allowed_vlans is for trunk ports; an access port carries only its vlan",
                )
            yield from _ifname(naming.fabric_port(sw.name, p.port), f"{base}.ports[{j}].port", "switch port")
        yield from _dupes(sw.lags, "LAG", f"{base}.lags")
        in_lag: dict[int, str] = {}
        for j, lag in enumerate(sw.lags):
            for k, port in enumerate(lag.ports):
                if port in in_lag:
                    yield (f"{base}.lags[{j}].ports[{k}]", f"port {port} is already in LAG {in_lag[port]!r}")
                in_lag[port] = lag.name
        yield from _dupes(sw.spans, "SPAN session", f"{base}.spans")
        for j, span in enumerate(sw.spans):
            if span.destination in span.source_ports:
                yield (
                    f"{base}.spans[{j}].destination",
                    f"port {span.destination} is also a source of the session",
                )
            if span.destination in in_lag:
                yield (
                    f"{base}.spans[{j}].destination",
                    f"port {span.destination} is in LAG {in_lag[span.destination]!r}",
                )
        switch_ports[sw.name] = set()

    used_ports: dict[tuple[str, int], str] = {}

    def plug(switch: str, port: int, path: str, who: str) -> Iterator[Problem]:
        if switch not in switch_ports:
            yield f"{path}.switch", f"unknown physical switch {switch!r}"
            return
        if (switch, port) in used_ports:
            yield f"{path}.port", (f"{switch} port {port} is already used by {used_ports[(switch, port)]}")
            return
        used_ports[(switch, port)] = who
        yield from _ifname(naming.fabric_port(switch, port), f"{path}.port", "switch port")

    # --- distributed switches ----------------------------------------------
    yield from _dupes(lab.distributed_switches, "distributed switch", "distributed_switches")
    for i, dvs in enumerate(lab.distributed_switches):
        base = f"distributed_switches[{i}]"
        yield from _dupes([type("U", (), {"name": u}) for u in dvs.uplinks], "dvUplink", f"{base}.uplinks")
        yield from _switch_body(dvs, base, "distributed switch")

    # --- node names are one namespace (Mininet node names) -----------------
    nodes: dict[str, str] = {}
    for section, items in (("esxi_hosts", lab.esxi_hosts), ("vms", lab.vms), ("hosts", lab.hosts)):
        for i, item in enumerate(items):
            path = f"{section}[{i}].name"
            if item.name in naming.RESERVED_NODE_NAMES:
                yield path, f"{item.name!r} is reserved for the testbed's own node"
            if item.name in nodes:
                yield path, f"duplicate node name {item.name!r} (first at {nodes[item.name]})"
            nodes.setdefault(item.name, path)

    macs: dict[str, str] = {}
    ips: dict[object, str] = {}

    def unique_addr(mac, ip, path: str) -> Iterator[Problem]:
        if mac is not None:
            if mac in macs:
                yield f"{path}.mac", f"duplicate MAC {mac} (first at {macs[mac]})"
            macs.setdefault(mac, f"{path}.mac")
        if ip is not None:
            if ip.ip in ips:
                yield f"{path}.ip", f"duplicate IP {ip.ip} (first at {ips[ip.ip]})"
            ips.setdefault(ip.ip, f"{path}.ip")

    # --- ESXi hosts ----------------------------------------------------------
    dvs_by_name = {d.name: d for d in lab.distributed_switches}
    host_pgs: dict[str, dict[str, int]] = {}
    for i, host in enumerate(lab.esxi_hosts):
        base = f"esxi_hosts[{i}]"
        if host.site is not None and host.site not in sites:
            yield f"{base}.site", f"unknown site {host.site!r}"
        yield from _ifname(naming.control_port(host.name), f"{base}.name", "control")
        yield from _dupes(host.uplinks, "uplink", f"{base}.uplinks")
        vmnics = {u.name for u in host.uplinks}
        for j, up in enumerate(host.uplinks):
            yield from plug(up.switch, up.port, f"{base}.uplinks[{j}]", f"{host.name}/{up.name}")
            yield from _shapeable(lab, up.speed, f"{base}.uplinks[{j}].speed")
        owner: dict[str, str] = {}  # vmnic -> vSwitch using it
        # Every vSwitch, standard or distributed, is an OVS bridge in the
        # host's namespace, next to the vmnics: one namespace for all names.
        # Checked before the port groups, or joining a distributed switch twice
        # would first show up as its port groups clashing with themselves.
        yield from _dupes(host.vswitches, "vSwitch", f"{base}.vswitches")
        yield from _dupes(
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
            yield from _switch_body(sw, sbase, "vSwitch")
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
            for dvup, vmnic in member.uplinks.items():
                if dvup not in dvs.uplinks:
                    yield f"{mbase}.uplinks.{dvup}", f"{dvs.name} has no dvUplink {dvup!r}"
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
        host_pgs[host.name] = pgs
        yield from _dupes(host.vmkernel, "VMkernel adapter", f"{base}.vmkernel")
        for j, vmk in enumerate(host.vmkernel):
            vbase = f"{base}.vmkernel[{j}]"
            yield from _ifname(vmk.name, f"{vbase}.name", "VMkernel adapter")
            if vmk.port_group not in pgs:
                yield f"{vbase}.port_group", f"{host.name} has no port group {vmk.port_group!r}"
            elif pgs[vmk.port_group] == VGT_VLAN:
                yield f"{vbase}.port_group", "a VMkernel adapter cannot use a VLAN 4095 (trunk) port group"
            yield from unique_addr(vmk.mac, vmk.ip, vbase)
            yield from _gateway(vmk.ip, vmk.gateway, f"{vbase}.gateway")
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

    # --- NSX: VTEPs, logical switches, distributed routers -------------------
    vteps = yield from _nsx(lab, host_pgs, unique_addr)

    # --- VMs -----------------------------------------------------------------
    segments = {ls.name for ls in lab.nsx.logical_switches} if lab.nsx else set()
    for i, vm in enumerate(lab.vms):
        base = f"vms[{i}]"
        if vm.host not in host_pgs:
            yield f"{base}.host", f"unknown ESXi host {vm.host!r}"
            continue
        yield from _dupes(vm.vnics, "vNIC", f"{base}.vnics")
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
                elif vm.host not in vteps:
                    yield (
                        f"{nbase}.logical_switch",
                        f"{vm.host} has no VTEP (a VMkernel adapter with stack: vxlan)",
                    )
            elif nic.port_group not in host_pgs[vm.host]:
                yield f"{nbase}.port_group", f"{vm.host} has no port group {nic.port_group!r}"
            yield from _ifname(naming.vnic_port(vm.name, nic.name), f"{nbase}.name", "vNIC port")
            yield from unique_addr(nic.mac, nic.ip, nbase)
            yield from _gateway(nic.ip, nic.gateway, f"{nbase}.gateway")

    # --- routers and plain hosts ---------------------------------------------
    sw_cfg = {sw.name: {p.port: p for p in sw.ports} for sw in lab.physical_switches}
    for i, h in enumerate(lab.hosts):
        base = f"hosts[{i}]"
        if h.site is not None and h.site not in sites:
            yield f"{base}.site", f"unknown site {h.site!r}"
        yield from _dupes(h.interfaces, "interface", f"{base}.interfaces")
        for j, intf in enumerate(h.interfaces):
            ibase = f"{base}.interfaces[{j}]"
            yield from plug(intf.switch, intf.port, ibase, f"{h.name}/{intf.name}")
            cfg = sw_cfg.get(intf.switch, {}).get(intf.port)
            if intf.vlan is not None and cfg is not None:
                yield (
                    f"{ibase}.vlan",
                    (
                        f"{intf.switch} port {intf.port} is configured under "
                        "physical_switches; set the VLAN in one place"
                    ),
                )
            yield from unique_addr(intf.mac, intf.ip, ibase)
            if intf.vip is not None:
                yield from _ifname(
                    naming.virtual_gateway(intf.name), f"{ibase}.name", "virtual gateway (vip)"
                )
            if intf.vip is not None and (
                intf.ip is None or intf.vip.ip not in intf.ip.network or intf.vip.ip == intf.ip.ip
            ):
                yield (
                    f"{ibase}.vip.ip",
                    f"the virtual gateway {intf.vip.ip} must be another address in the interface's subnet",
                )
        if h.gateway is not None and not any(
            x.ip is not None and h.gateway in x.ip.network for x in h.interfaces
        ):
            yield f"{base}.gateway", f"gateway {h.gateway} is in none of {h.name}'s subnets"
        for j, r in enumerate(h.routes):
            if not any(x.ip is not None and r.via in x.ip.network for x in h.interfaces):
                yield f"{base}.routes[{j}].via", f"next hop {r.via} is in none of {h.name}'s subnets"
        if h.kind == "firewall" and h.firewall is None:
            yield f"{base}.firewall", "a host of kind firewall needs a firewall section (rules)"
        elif h.kind != "firewall" and h.firewall is not None:
            yield f"{base}.firewall", f"only a host of kind firewall filters (this one is {h.kind})"
        elif h.firewall is not None:
            yield from _rules(lab, h.firewall.rules, f"{base}.firewall.rules", groups=False)

    # --- links between switches ----------------------------------------------
    yield from _dupes(lab.dci_links, "DCI link", "dci_links")
    for i, link in enumerate(lab.dci_links):
        for end in ("a", "b"):
            ref = getattr(link, end)
            yield from plug(ref.switch, ref.port, f"dci_links[{i}].{end}", f"DCI {link.name}")
        yield from _shapeable(lab, link.speed, f"dci_links[{i}].speed")

    # --- the distributed firewall ----------------------------------------------
    yield from _distributed_firewall(lab)

    # --- port mirroring sessions of distributed switches ---------------------
    yield from _mirrors(lab)

    # --- teaming that needs the physical side --------------------------------
    yield from _ip_hash_needs_lag(lab)
    yield from _expectations(lab)


def _nsx(lab: Lab, host_pgs: dict[str, dict[str, int]], unique_addr):
    """Check VTEPs and the ``nsx`` section; returns {host: VTEP vmk name}."""
    vteps: dict[str, str] = {}
    for i, host in enumerate(lab.esxi_hosts):
        for j, vmk in enumerate(host.vmkernel):
            if vmk.stack != "vxlan":
                continue
            path = f"esxi_hosts[{i}].vmkernel[{j}].stack"
            if lab.nsx is None:
                yield path, "a VTEP (stack: vxlan) needs an nsx section"
            elif host.name in vteps:
                yield path, f"{host.name} already has a VTEP, {vteps[host.name]}"
            vteps.setdefault(host.name, vmk.name)
            sw, _ = (
                switch_of_port_group(lab, host, vmk.port_group)
                if vmk.port_group in host_pgs[host.name]
                else (None, None)
            )
            if sw is not None and lab.nsx is not None:
                declared = _declared_mtu(lab, host, sw.name)
                if declared is not None and declared != lab.nsx.transport_mtu:
                    yield (
                        f"esxi_hosts[{i}].vmkernel[{j}].port_group",
                        f"{sw.name} carries the VTEP, so its MTU is nsx.transport_mtu "
                        f"({lab.nsx.transport_mtu}), not the {declared} it sets",
                    )
    if lab.nsx is None:
        return vteps
    nsx = lab.nsx
    yield from _dupes(nsx.logical_switches, "logical switch", "nsx.logical_switches")
    yield from _dupes(nsx.logical_switches, "VNI", "nsx.logical_switches", key=lambda x: x.vni)
    for i, ls in enumerate(nsx.logical_switches):
        for j, method in enumerate(ls.ip_discovery):
            if method in ls.ip_discovery[:j]:
                yield (f"nsx.logical_switches[{i}].ip_discovery[{j}]", f"{method} is listed twice")
    names = {ls.name for ls in nsx.logical_switches}
    yield from _dupes(nsx.distributed_routers, "distributed router", "nsx.distributed_routers")
    routed: dict[str, str] = {}
    for i, dlr in enumerate(nsx.distributed_routers):
        base = f"nsx.distributed_routers[{i}]"
        subnets: dict[object, int] = {}
        for j, lif in enumerate(dlr.interfaces):
            lbase = f"{base}.interfaces[{j}]"
            if lif.logical_switch not in names:
                yield f"{lbase}.logical_switch", f"unknown logical switch {lif.logical_switch!r}"
            elif lif.logical_switch in routed:
                yield (
                    f"{lbase}.logical_switch",
                    f"{lif.logical_switch} already has an interface on {routed[lif.logical_switch]}",
                )
            routed.setdefault(lif.logical_switch, dlr.name)
            if lif.ip.network in subnets:
                yield (
                    f"{lbase}.ip",
                    f"subnet {lif.ip.network} is already on interface {subnets[lif.ip.network]}",
                )
            subnets.setdefault(lif.ip.network, j)
            yield from unique_addr(None, lif.ip, lbase)
    return vteps


def _declared_mtu(lab: Lab, host, switch: str) -> Optional[int]:
    """The MTU a vSwitch sets explicitly in the file (None: left to the default)."""
    for sw in host.vswitches:
        if sw.name == switch:
            return sw.mtu if "mtu" in sw.model_fields_set else None
    for dvs in lab.distributed_switches:
        if dvs.name == switch:
            return dvs.mtu if "mtu" in dvs.model_fields_set else None
    return None


# VXLAN adds 50 bytes (outer Ethernet 14, IP 20, UDP 8, VXLAN 8) to a guest frame.
VXLAN_OVERHEAD = 50


def lab_warnings(lab: Lab) -> list[Problem]:
    """Things that are allowed but probably not what the author wants."""
    out = []
    if lab.nsx is not None and lab.nsx.transport_mtu < 1500 + VXLAN_OVERHEAD:
        out.append(
            (
                "nsx.transport_mtu",
                f"{lab.nsx.transport_mtu} is below {1500 + VXLAN_OVERHEAD}: VXLAN adds "
                f"{VXLAN_OVERHEAD} bytes, so full-size guest frames (bulk TCP) will not "
                "cross the overlay; small ones (ping) will",
            )
        )
    return out


def _switch_body(sw, base: str, what: str) -> Iterator[Problem]:
    """Checks shared by standard and distributed switches."""
    uplinks = set(sw.uplinks)
    yield from _dupes(sw.port_groups, "port group", f"{base}.port_groups")
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


def _ip_hash_needs_lag(lab: Lab) -> Iterator[Problem]:
    """IP-hash teaming needs each host's active uplinks in one static
    EtherChannel. The problem is reported at the ``teaming.policy`` that asks
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
                problem = _lag_problem(active, plugs, lag_of)
                if problem is not None:
                    where = (
                        f"{sbase}.port_groups[{k}].teaming.policy"
                        if pg.teaming.policy is not None
                        else f"{sbase}.teaming.policy"
                    )
                    yield (
                        where,
                        (
                            "ip_hash needs every active uplink in one static LAG "
                            f"(physical_switches[].lags); {pg.name} on {host.name}: "
                            f"{problem}"
                        ),
                    )


def _lag_problem(active, plugs, lag_of) -> Optional[str]:
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


def _words(lab: Lab, words, path: str, groups: bool) -> Iterator[Problem]:
    for k, word in enumerate(words):
        try:
            firewall.resolve(lab, (word,), groups=groups)
        except firewall.UnknownName as exc:
            yield f"{path}[{k}]", str(exc)


def _rules(lab: Lab, rules, base: str, groups: bool) -> Iterator[Problem]:
    yield from _dupes(rules, "rule", base)
    for i, rule in enumerate(rules):
        for field in ("sources", "destinations"):
            yield from _words(lab, getattr(rule, field), f"{base}[{i}].{field}", groups)
        if groups:
            yield from _words(lab, rule.applied_to, f"{base}[{i}].applied_to", groups)
        elif rule.applied_to:
            yield (
                f"{base}[{i}].applied_to",
                "applied_to is for the distributed firewall; a perimeter firewall "
                "filters everything it routes",
            )


def _distributed_firewall(lab: Lab) -> Iterator[Problem]:
    dfw = lab.distributed_firewall
    if dfw is None:
        return
    vms = {vm.name for vm in lab.vms}
    yield from _dupes(dfw.groups, "security group", "distributed_firewall.groups")
    for i, group in enumerate(dfw.groups):
        if group.name in vms:
            yield (
                f"distributed_firewall.groups[{i}].name",
                f"{group.name!r} is also a VM's name; rules could not tell them apart",
            )
        for j, vm in enumerate(group.vms):
            if vm not in vms:
                yield f"distributed_firewall.groups[{i}].vms[{j}]", f"unknown VM {vm!r}"
    yield from _words(lab, dfw.applied_to, "distributed_firewall.applied_to", True)
    yield from _rules(lab, dfw.rules, "distributed_firewall.rules", groups=True)


def _mirror_port(lab: Lab, dvs, ref, path: str) -> Iterator[Problem]:
    """A session's source or destination names a vNIC on ``dvs``."""
    vm = next((v for v in lab.vms if v.name == ref.vm), None)
    if vm is None:
        yield f"{path}.vm", f"unknown VM {ref.vm!r}"
        return
    nic = next((n for n in vm.vnics if n.name == ref.vnic), None)
    if nic is None:
        yield f"{path}.vnic", f"{vm.name} has no vNIC {ref.vnic!r}"
        return
    if nic.logical_switch is not None:
        host = next((h for h in lab.esxi_hosts if h.name == vm.host), None)
        sw = overlay_switch(lab, host) if host is not None else None
        on = sw is not None and sw.name == dvs.name
        where = f"logical switch {nic.logical_switch!r}"
    else:
        on = any(pg.name == nic.port_group for pg in dvs.port_groups)
        where = f"port group {nic.port_group!r}"
    if not on:
        yield path, f"{vm.name}/{nic.name} is on {where}, not on distributed switch {dvs.name}"


_LOCAL_ONLY = ("destination_vnics", "normal_traffic")
_ERSPAN_ONLY = ("destination_ip", "encapsulation", "session_id")


def _mirrors(lab: Lab) -> Iterator[Problem]:
    """Port mirroring sessions: every port a vNIC of the switch, the
    destination the session type needs, and vSphere's rules (a port is not
    both source and destination of a session, nor the destination of two)."""
    for i, dvs in enumerate(lab.distributed_switches):
        base = f"distributed_switches[{i}].mirrors"
        yield from _dupes(dvs.mirrors, "mirror session", base)
        destination_of: dict[tuple[str, str], str] = {}
        ids: dict[int, str] = {}
        for j, m in enumerate(dvs.mirrors):
            mbase = f"{base}[{j}]"
            wrong = _LOCAL_ONLY if m.type == "erspan" else _ERSPAN_ONLY
            for field in wrong:
                if field in m.model_fields_set:
                    other = "local" if m.type == "erspan" else "erspan"
                    yield (f"{mbase}.{field}", f"{field} is for {other} sessions, this one is {m.type}")
            if m.type == "erspan" and m.destination_ip is None:
                yield (
                    f"{mbase}.destination_ip",
                    ("an erspan session needs destination_ip (the monitoring host's address)"),
                )
            if m.type == "local" and not m.destination_vnics:
                yield (
                    f"{mbase}.destination_vnics",
                    ("a local session needs destination_vnics (the VMs that receive the copies)"),
                )
            if m.type == "erspan":
                sid = mirror_session_id(dvs, j)
                if sid in ids:
                    yield (f"{mbase}.session_id", f"session ID {sid} is already used by session {ids[sid]!r}")
                ids.setdefault(sid, m.name)
            sources: dict[tuple[str, str], int] = {}
            for k, src in enumerate(m.sources):
                yield from _mirror_port(lab, dvs, src, f"{mbase}.sources[{k}]")
                key = (src.vm, src.vnic)
                if key in sources:
                    yield (
                        f"{mbase}.sources[{k}]",
                        f"{src.vm}/{src.vnic} is already a source (sources[{sources[key]}])",
                    )
                sources.setdefault(key, k)
                own = [
                    n.ip.ip
                    for v in lab.vms
                    if v.name == src.vm
                    for n in v.vnics
                    if n.name == src.vnic and n.ip is not None
                ]
                if m.type == "erspan" and m.destination_ip in own:
                    yield (
                        f"{mbase}.destination_ip",
                        f"{m.destination_ip} is the address of "
                        f"source {src.vm}/{src.vnic}: its copies would be mirrored again",
                    )
            for k, dst in enumerate(m.destination_vnics):
                dpath = f"{mbase}.destination_vnics[{k}]"
                yield from _mirror_port(lab, dvs, dst, dpath)
                key = (dst.vm, dst.vnic)
                if key in sources:
                    yield (
                        dpath,
                        (f"{dst.vm}/{dst.vnic} is also a source of this session (sources[{sources[key]}])"),
                    )
                elif key in destination_of:
                    yield (
                        dpath,
                        (f"{dst.vm}/{dst.vnic} is already a destination of session {destination_of[key]!r}"),
                    )
                destination_of.setdefault(key, m.name)


def _expectations(lab: Lab) -> Iterator[Problem]:
    if lab.expect is None:
        return
    from ..reachability import endpoints

    names = {e.name for e in endpoints(lab)}
    for kind in ("reachable", "unreachable"):
        for i, pair in enumerate(getattr(lab.expect, kind)):
            for j, name in enumerate(pair):
                if name not in names:
                    yield (
                        f"expect.{kind}[{i}][{j}]",
                        f"unknown endpoint {name!r} (endpoints: {', '.join(sorted(names))})",
                    )


def check_references(lab: Lab) -> Optional[Problem]:
    """The first cross-reference problem of ``lab`` or None."""
    return next(_checks(lab), None)

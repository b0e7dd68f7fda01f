"""Checks of the NSX side: VTEPs, logical switches, distributed routers;
and the warning about a transport MTU too small for full-size frames."""

from __future__ import annotations

from typing import Iterator, Optional

from ..model import Lab
from ..resolve import switch_of_port_group, vtep_of
from .common import Problem, Seen, dupes


def nsx(lab: Lab, seen: Seen) -> Iterator[Problem]:
    """VTEPs (recorded in ``seen.vteps``) and the ``nsx`` section."""
    vteps = seen.vteps
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
                if vmk.port_group in seen.host_pgs[host.name]
                else (None, None)
            )
            if sw is not None and lab.nsx is not None:
                declared = declared_mtu(lab, host, sw.name)
                if declared is not None and declared != lab.nsx.transport_mtu:
                    yield (
                        f"esxi_hosts[{i}].vmkernel[{j}].port_group",
                        f"{sw.name} carries the VTEP, so its MTU is nsx.transport_mtu "
                        f"({lab.nsx.transport_mtu}), not the {declared} it sets",
                    )
    if lab.nsx is None:
        return
    nsx = lab.nsx
    yield from dupes(nsx.logical_switches, "logical switch", "nsx.logical_switches")
    yield from dupes(nsx.logical_switches, "VNI", "nsx.logical_switches", key=lambda x: x.vni)
    for i, ls in enumerate(nsx.logical_switches):
        for j, method in enumerate(ls.ip_discovery):
            if method in ls.ip_discovery[:j]:
                yield (f"nsx.logical_switches[{i}].ip_discovery[{j}]", f"{method} is listed twice")
        # Promiscuous ports on a logical switch would need every frame of the
        # VNI a host handles copied to them, tunnel traffic included: not built.
        inherited = _accepting_carriers(lab, seen, ls.name) if ls.security.promiscuous is None else ""
        if ls.security.promiscuous == "accept" or inherited:
            yield (
                f"nsx.logical_switches[{i}].security.promiscuous",
                "promiscuous: accept is not emulated on logical switches"
                + (f" (inherited from {inherited}; set reject here)" if inherited else ""),
            )
    names = {ls.name for ls in nsx.logical_switches}
    yield from dupes(nsx.distributed_routers, "distributed router", "nsx.distributed_routers")
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
            yield from seen.unique_addr(None, lif.ip, lbase)


def declared_mtu(lab: Lab, host, switch: str) -> Optional[int]:
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


def mtu_warnings(lab: Lab) -> list[Problem]:
    """A transport MTU too small for full-size guest frames."""
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


def _accepting_carriers(lab: Lab, seen: Seen, segment: str) -> str:
    """The vSwitches carrying a VTEP on which logical switch ``segment``
    inherits promiscuous: accept (comma-separated; "" when none)."""
    found: list[str] = []
    for host in lab.esxi_hosts:
        vtep = vtep_of(host)
        if vtep is None or vtep.port_group not in seen.host_pgs[host.name]:
            continue
        sw, _ = switch_of_port_group(lab, host, vtep.port_group)
        if sw.segment(segment).security.promiscuous == "accept" and sw.name not in found:
            found.append(sw.name)
    return ", ".join(found)

"""Traffic shaping policies the testbed can emulate: a standard switch
shapes outbound only, a distributed port group each direction; values the
emulated shaper (``vlab.lab.shaping``) cannot hold, and ports whose traffic
never passes it, are refused."""

from __future__ import annotations

from typing import Iterator, Optional

from ..model import DistributedSwitch, EsxiHost, Lab, PortGroup, Shaping, StandardSwitch
from ..resolve import dvs_members, effective_shaper, vtep_of
from ..shaping import KBIT, problems
from .common import MAX_LINK_MBPS, Problem


def _is_set(s: Shaping) -> bool:
    return s != Shaping()


def _emulable(lab: Lab, path: str, layers: tuple[Shaping, ...], mtu: int) -> Iterator[Problem]:
    """Problems of the policy ``layers`` resolve to (port group first), on a
    vSwitch with ``mtu``."""
    shaper = effective_shaper(*layers)
    if shaper is None:
        return
    for text in problems(shaper, lab.link_scale, mtu):
        yield path, text
    fastest = max(shaper.average_kbps, shaper.peak_kbps) * KBIT * lab.link_scale / 1e6
    if fastest > MAX_LINK_MBPS:
        yield (
            path,
            f"{fastest:g} Mbit/s after link_scale {lab.link_scale:g}; emulated rates must stay at "
            f"or below {MAX_LINK_MBPS} Mbit/s (lower link_scale)",
        )


def _vtep_port_groups(lab: Lab, hosts: list[EsxiHost]) -> set[str]:
    """The port groups that carry a VTEP on any of ``hosts``."""
    return {vtep_of(h).port_group for h in hosts if vtep_of(h) is not None}


def _vmk_on(lab: Lab, dvs: DistributedSwitch, pg: PortGroup) -> Optional[str]:
    """A VMkernel adapter (``host/vmkN``) on distributed port group ``pg``,
    if any: a member host's vmk whose port group no standard switch of that
    host has (port group names are unique on a host)."""
    for host in lab.esxi_hosts:
        if not any(m.name == dvs.name for m in host.distributed_switches):
            continue
        standard = {p.name for sw in host.vswitches for p in sw.port_groups}
        for vmk in host.vmkernel:
            if vmk.port_group == pg.name and pg.name not in standard:
                return f"{host.name}/{vmk.name}"
    return None


def _vtep_refusal(pg: PortGroup, inherited: bool = False) -> str:
    hint = "; set enabled: false on it to keep the vSwitch's policy off it" if inherited else ""
    return (
        f"{pg.name} carries a VTEP: shaping it is not emulated (OVS's userspace VXLAN sends the "
        f"overlay past the vmk's qdisc){hint}"
    )


def _mtu(lab: Lab, sw: StandardSwitch | DistributedSwitch, vteps: set[str]) -> int:
    """The MTU a switch runs at: NSX's transport MTU on the VTEP's switch
    (``vteps``: the VTEP port groups of the hosts it is on)."""
    if lab.nsx is not None and any(pg.name in vteps for pg in sw.port_groups):
        return lab.nsx.transport_mtu
    return sw.mtu


def shaping(lab: Lab) -> Iterator[Problem]:
    """One problem per policy a lab sets that is not vSphere's or not emulable."""
    for i, host in enumerate(lab.esxi_hosts):
        for j, sw in enumerate(host.vswitches):
            yield from _standard_switch(lab, host, f"esxi_hosts[{i}].vswitches[{j}]", sw)
    for d, dvs in enumerate(lab.distributed_switches):
        for k, pg in enumerate(dvs.port_groups):
            yield from _distributed_port_group(lab, dvs, f"distributed_switches[{d}].port_groups[{k}]", pg)


def _standard_switch(lab: Lab, host: EsxiHost, base: str, sw: StandardSwitch) -> Iterator[Problem]:
    vteps = _vtep_port_groups(lab, [host])
    mtu = _mtu(lab, sw, vteps)
    yield from _emulable(lab, f"{base}.shaping", (sw.shaping,), mtu)
    for k, pg in enumerate(sw.port_groups):
        path = f"{base}.port_groups[{k}]"
        for field in ("ingress_shaping", "egress_shaping"):
            if _is_set(getattr(pg, field)):
                yield (
                    f"{path}.{field}",
                    "a standard switch shapes outbound traffic only: use shaping "
                    "(ingress and egress shaping are distributed port group policies)",
                )
        yield from _emulable(lab, f"{path}.shaping", (pg.shaping, sw.shaping), mtu)
        if pg.name in vteps and effective_shaper(pg.shaping, sw.shaping) is not None:
            yield f"{path}.shaping", _vtep_refusal(pg, inherited=pg.shaping.enabled is None)


def _distributed_port_group(lab: Lab, dvs: DistributedSwitch, path: str, pg: PortGroup) -> Iterator[Problem]:
    if _is_set(pg.shaping):
        yield (
            f"{path}.shaping",
            "a distributed port group shapes each direction on its own: use ingress_shaping "
            "(what its ports send into the switch) and egress_shaping (what the switch delivers to them)",
        )
    vteps = _vtep_port_groups(lab, dvs_members(lab, dvs))
    mtu = _mtu(lab, dvs, vteps)
    for field in ("ingress_shaping", "egress_shaping"):
        yield from _emulable(lab, f"{path}.{field}", (getattr(pg, field),), mtu)
        if pg.name in vteps and effective_shaper(getattr(pg, field)) is not None:
            yield f"{path}.{field}", _vtep_refusal(pg)
    vmk = _vmk_on(lab, dvs, pg)
    if effective_shaper(pg.egress_shaping) is not None and vmk is not None:
        yield (
            f"{path}.egress_shaping",
            f"{pg.name} has a VMkernel adapter ({vmk}): shaping what the switch delivers to a VMkernel "
            "port is not emulated (OVS writes into its internal port past any qdisc)",
        )

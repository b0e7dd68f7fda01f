"""Traffic shaping policies the testbed can emulate: a standard switch
shapes outbound only, a distributed port group each direction; values the
emulated shaper (``vlab.lab.shaping``) cannot hold are refused."""

from __future__ import annotations

from typing import Iterator

from ..model import Lab, PortGroup, Shaping
from ..resolve import effective_shaper
from ..shaping import problems, tbf
from .common import MAX_LINK_MBPS, Problem


def _set(s: Shaping) -> bool:
    return s != Shaping()


def _emulable(lab: Lab, path: str, layers: tuple[Shaping, ...], mtu: int) -> Iterator[Problem]:
    shaper = effective_shaper(*layers)
    if shaper is None:
        return
    for text in problems(shaper, lab.link_scale, mtu):
        yield path, text
    q = tbf(shaper, lab.link_scale, mtu)
    fastest = max(q.rate_bps, q.peak_bps or 0) / 1e6
    if fastest > MAX_LINK_MBPS:
        yield (
            path,
            f"{fastest:g} Mbit/s after link_scale {lab.link_scale:g}; emulated rates must stay at "
            f"or below {MAX_LINK_MBPS} Mbit/s (lower link_scale)",
        )


def _vmk_port_groups(lab: Lab) -> set[str]:
    return {v.port_group for h in lab.esxi_hosts for v in h.vmkernel}


def shaping(lab: Lab) -> Iterator[Problem]:
    """One problem per policy a lab sets that is not vSphere's or not emulable.
    The MTU is the vSwitch's as configured (NSX raises the VTEP's vSwitch to
    the transport MTU, which only makes frames, and the bucket needed, larger:
    checked at the transport MTU there)."""
    transport = lab.nsx.transport_mtu if lab.nsx is not None else 0
    vmk_pgs = _vmk_port_groups(lab)
    for i, host in enumerate(lab.esxi_hosts):
        for j, sw in enumerate(host.vswitches):
            base = f"esxi_hosts[{i}].vswitches[{j}]"
            mtu = max(sw.mtu, transport)
            yield from _emulable(lab, f"{base}.shaping", (sw.shaping,), mtu)
            for k, pg in enumerate(sw.port_groups):
                path = f"{base}.port_groups[{k}]"
                for field in ("ingress_shaping", "egress_shaping"):
                    if _set(getattr(pg, field)):
                        yield (
                            f"{path}.{field}",
                            "a standard switch shapes outbound traffic only: use shaping "
                            "(ingress and egress shaping are distributed port group policies)",
                        )
                yield from _emulable(lab, f"{path}.shaping", (pg.shaping, sw.shaping), mtu)
    for d, dvs in enumerate(lab.distributed_switches):
        mtu = max(dvs.mtu, transport)
        for k, pg in enumerate(dvs.port_groups):
            yield from _distributed_port_group(
                lab, f"distributed_switches[{d}].port_groups[{k}]", pg, mtu, vmk_pgs
            )


def _distributed_port_group(
    lab: Lab, path: str, pg: PortGroup, mtu: int, vmk_pgs: set[str]
) -> Iterator[Problem]:
    if _set(pg.shaping):
        yield (
            f"{path}.shaping",
            "a distributed port group shapes each direction on its own: use ingress_shaping "
            "(what its ports send into the switch) and egress_shaping (what the switch delivers to them)",
        )
    yield from _emulable(lab, f"{path}.ingress_shaping", (pg.ingress_shaping,), mtu)
    yield from _emulable(lab, f"{path}.egress_shaping", (pg.egress_shaping,), mtu)
    if effective_shaper(pg.egress_shaping) is not None and pg.name in vmk_pgs:
        yield (
            f"{path}.egress_shaping",
            f"{pg.name} has a VMkernel adapter: shaping what the switch delivers to a VMkernel "
            "port is not emulated (OVS writes into its internal port past any qdisc)",
        )

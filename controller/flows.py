"""Every concern's flows for one bridge, in one place.

The managers (vSwitch semantics, NSX overlay, IP discovery, ARP
suppression, distributed router) each compile their part from the same binding; the driver installs
the union and resyncs per concern cookie.
"""

from __future__ import annotations

from vlab.bindings import SwitchBinding
from vlab.lab.model import Lab

from . import arpsuppress, dfw, dlr, dropcapture, ipdiscovery, mirror, overlay, vswitch
from .nsx import NsxTables
from .pipeline import FlowSpec
from .pipeline_check import check

# The cookie of every concern whose flows the driver owns.
COOKIES = (
    vswitch.COOKIE,
    overlay.COOKIE,
    ipdiscovery.COOKIE,
    arpsuppress.COOKIE,
    dlr.COOKIE,
    dfw.COOKIE,
    mirror.COOKIE,
    dropcapture.COOKIE,
)


def compile_bridge(
    binding: SwitchBinding,
    tables: NsxTables,
    lab: Lab,
    sessions: dict[str, tuple[dfw.Session, ...]] | None = None,
) -> list[FlowSpec]:
    """Forwarding first (vSwitch, overlay, router), then the passes that wrap
    a vNIC's traffic: the distributed firewall in front of protected vNICs,
    port mirroring, which copies what a vNIC sends and receives, and last
    the Drop capture's copies of what the pipeline drops."""
    flows = (
        vswitch.compile_vswitch(binding)
        + overlay.compile_overlay(binding, tables)
        + ipdiscovery.compile_discovery(binding, tables)
        + arpsuppress.compile_arp(binding, tables)
        + dlr.compile_router(binding, tables)
    )
    flows = dfw.protect(flows, binding, lab, sessions)
    flows = mirror.add_copies(flows, binding, lab)
    # Last: while a Drop capture runs, every drop also reaches the controller.
    flows = dropcapture.expose(flows, binding)
    # Every flow fits the declared pipeline, or compiling fails loudly.
    check(flows)
    return flows

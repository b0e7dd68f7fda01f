"""Every concern's flows for one bridge, in one place.

The managers (vSwitch semantics, NSX overlay, IP discovery, ARP
suppression, distributed router) each compile their part from the same binding; the driver installs
the union and resyncs per concern cookie.
"""
from __future__ import annotations

from vlab.bindings import SwitchBinding

from . import arpsuppress, dlr, ipdiscovery, overlay, vswitch
from .nsx import NsxTables
from .pipeline import FlowSpec

# The cookie of every concern whose flows the driver owns.
COOKIES = (vswitch.COOKIE, overlay.COOKIE, ipdiscovery.COOKIE, arpsuppress.COOKIE, dlr.COOKIE)


def compile_bridge(binding: SwitchBinding, tables: NsxTables) -> list[FlowSpec]:
    return (vswitch.compile_vswitch(binding) + overlay.compile_overlay(binding, tables)
            + ipdiscovery.compile_discovery(binding, tables) + arpsuppress.compile_arp(binding, tables) + dlr.compile_router(binding, tables))

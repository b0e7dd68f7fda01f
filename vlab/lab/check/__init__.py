"""Cross-reference checks a schema cannot express (``vlab check``).

``check_references(lab)`` returns the first problem as ``(path, text)``, or
None. Checks follow the file's order (sites, switches, hosts, VMs, ...) so the
reported problem is the first one a reader meets; each part of the lab has
its module, and ``Seen`` carries what was met before (``common``).
"""

from __future__ import annotations

from typing import Iterator, Optional

from ..model import Lab
from ..reachability import endpoints
from . import esxi, firewalls, mirrors, nsx, physical, shaping, teaming
from .common import Problem, Seen, dupes


def _checks(lab: Lab) -> Iterator[Problem]:
    seen = Seen(lab)
    yield from dupes(lab.sites, "site", "sites")
    yield from physical.physical_switches(lab, seen)
    yield from esxi.distributed_switches(lab, seen)
    yield from esxi.node_names(lab)
    yield from esxi.esxi_hosts(lab, seen)
    yield from nsx.nsx(lab, seen)
    yield from esxi.vms(lab, seen)
    yield from physical.hosts(lab, seen)
    yield from physical.dci_links(lab, seen)
    yield from physical.cabling(lab, seen)
    yield from firewalls.distributed_firewall(lab)
    yield from mirrors.mirrors(lab)
    yield from teaming.ip_hash_needs_lag(lab)
    yield from teaming.load_based_where_vsphere_offers_it(lab)
    yield from teaming.lags_as_vsphere_allows(lab)
    yield from shaping.shaping(lab)
    yield from _expectations(lab)


def _expectations(lab: Lab) -> Iterator[Problem]:
    if lab.expect is None:
        return
    names = {e.name for e in endpoints(lab)}
    for kind in ("reachable", "unreachable"):
        for i, pair in enumerate(getattr(lab.expect, kind)):
            for j, name in enumerate(pair):
                if name not in names:
                    yield (
                        f"expect.{kind}[{i}][{j}]",
                        f"unknown endpoint {name!r} (endpoints: {', '.join(sorted(names))})",
                    )


def lab_warnings(lab: Lab) -> list[Problem]:
    """Things that are allowed but probably not what the author wants."""
    return (
        teaming.beacon_warnings(lab)
        + teaming.lag_warnings(lab)
        + nsx.mtu_warnings(lab)
        + mirrors.mirror_warnings(lab)
    )


def check_references(lab: Lab) -> Optional[Problem]:
    """The first cross-reference problem of ``lab`` or None."""
    return next(_checks(lab), None)


__all__ = ["Problem", "check_references", "lab_warnings"]

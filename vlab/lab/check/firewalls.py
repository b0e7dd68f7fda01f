"""Checks of firewall rules: the distributed firewall (groups, applied_to,
rules) and perimeter firewalls' rules; every name a rule uses resolves."""

from __future__ import annotations

from typing import Iterator

from .. import firewall
from ..model import Lab
from .common import Problem, dupes


def words(lab: Lab, words, path: str, groups: bool) -> Iterator[Problem]:
    for k, word in enumerate(words):
        try:
            firewall.resolve(lab, (word,), groups=groups)
        except firewall.UnknownName as exc:
            yield f"{path}[{k}]", str(exc)


def rules(lab: Lab, rules, base: str, groups: bool) -> Iterator[Problem]:
    yield from dupes(rules, "rule", base)
    for i, rule in enumerate(rules):
        for field in ("sources", "destinations"):
            yield from words(lab, getattr(rule, field), f"{base}[{i}].{field}", groups)
        if groups:
            yield from words(lab, rule.applied_to, f"{base}[{i}].applied_to", groups)
        elif rule.applied_to:
            yield (
                f"{base}[{i}].applied_to",
                "applied_to is for the distributed firewall; a perimeter firewall "
                "filters everything it routes",
            )


def distributed_firewall(lab: Lab) -> Iterator[Problem]:
    dfw = lab.distributed_firewall
    if dfw is None:
        return
    vms = {vm.name for vm in lab.vms}
    yield from dupes(dfw.groups, "security group", "distributed_firewall.groups")
    for i, group in enumerate(dfw.groups):
        if group.name in vms:
            yield (
                f"distributed_firewall.groups[{i}].name",
                f"{group.name!r} is also a VM's name; rules could not tell them apart",
            )
        for j, vm in enumerate(group.vms):
            if vm not in vms:
                yield f"distributed_firewall.groups[{i}].vms[{j}]", f"unknown VM {vm!r}"
    yield from words(lab, dfw.applied_to, "distributed_firewall.applied_to", True)
    yield from applied_to_vms(lab, dfw.applied_to, "distributed_firewall.applied_to")
    yield from rules(lab, dfw.rules, "distributed_firewall.rules", groups=True)
    for i, rule in enumerate(dfw.rules):
        yield from applied_to_vms(lab, rule.applied_to, f"distributed_firewall.rules[{i}].applied_to")


def applied_to_vms(lab: Lab, names, path: str) -> Iterator[Problem]:
    """NSX's Applied To names where a rule is enforced: vNICs, so VMs or
    security groups of VMs; an address or a group without VMs protects
    nothing."""
    vms = {vm.name for vm in lab.vms}
    groups = {g.name: g for g in lab.distributed_firewall.groups} if lab.distributed_firewall else {}
    for k, name in enumerate(names):
        if not (name in vms or (name in groups and groups[name].vms)):
            yield (
                f"{path}[{k}]",
                f"{name!r} names no VM: applied_to is where the rule is enforced (VMs, or security groups "
                "with VMs), not addresses",
            )

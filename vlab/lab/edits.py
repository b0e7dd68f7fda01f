"""Changes an administrator makes to a running lab, as vCenter or esxcli
makes them (``esxcli network vswitch standard portgroup set --vlan-id``,
``... policy security set``, ``portgroup add``): edits of the lab file's
data, kept in order in a journal and replayed on top of the file, so the lab
file stays the single source of truth and the running lab is always "the
file plus these edits", validated exactly as the file is.

An edit names a place in the file's data by a path whose steps are mapping
keys and, inside a list of named things (hosts, vSwitches, port groups), the
item's ``name``::

    {"op": "set", "path": ["esxi_hosts", "esx1", "vswitches", "vSwitch0",
                           "port_groups", "PG-1G", "vlan"], "value": 30}

``op`` is one of ``set`` (create the key, and any mapping on the way),
``unset`` (remove the key: the field falls back to what it inherits),
``append`` (add ``value`` to the list at ``path``) and ``remove`` (remove the
item named ``value`` from the list at ``path``).

Replaying copies the data first and breaks YAML anchors apart: labs share
one ``vswitches: &vswitches`` list between hosts, and an edit on esx1 must
not change esx2, as on ESXi, where each host's standard vSwitch is its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from .load import LabError, parse_lab, read_lab_data
from .model import Lab

OPS = ("set", "unset", "append", "remove")

# What a running lab can change, as (path pattern, ops): ``*`` is any name.
# Everything else is built at bring-up (MTUs, uplinks, vSwitches, VMs,
# mirror sessions, NSX) and refused: a change accepted must take effect.
_POLICY = ("security", "teaming", "shaping")
_DVS_POLICY = ("security", "teaming", "ingress_shaping", "egress_shaping")
_SETS = ("set", "unset")
LIVE: tuple[tuple[tuple, tuple[str, ...]], ...] = (
    (("esxi_hosts", "*", "vswitches", "*", "port_groups"), ("append", "remove")),
    (("esxi_hosts", "*", "vswitches", "*", "port_groups", "*", "vlan"), _SETS),
    *((("esxi_hosts", "*", "vswitches", "*", "port_groups", "*", p, "*"), _SETS) for p in _POLICY),
    *((("esxi_hosts", "*", "vswitches", "*", p, "*"), _SETS) for p in _POLICY),
    (("distributed_switches", "*", "port_groups", "*", "vlan"), _SETS),
    *((("distributed_switches", "*", "port_groups", "*", p, "*"), _SETS) for p in _DVS_POLICY),
)
# A vNIC's network changes only with its port (``reconfigure.connect_vnic``).
REPLUG: tuple[tuple[tuple, tuple[str, ...]], ...] = (
    (("vms", "*", "vnics", "*", "port_group"), _SETS),
    (("vms", "*", "vnics", "*", "logical_switch"), _SETS),
)


class EditError(ValueError):
    """An edit that does not fit the data it is replayed on (a path that
    leads nowhere, an unknown op)."""


def _unshared(data: Any) -> Any:
    """A deep copy in which no two places share a container (unlike
    ``copy.deepcopy``, which keeps YAML aliases aliased)."""
    if isinstance(data, dict):
        return {k: _unshared(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_unshared(v) for v in data]
    return data


# Lists whose items may leave their name out, and the name they then have.
DEFAULT_NAMES = {"vnics": "eth0"}


def _step(node: Any, key: Any, path: list) -> Any:
    if isinstance(node, dict):
        if key not in node:
            raise EditError(f"{_dotted(path)}: no {key!r}")
        return node[key]
    if isinstance(node, list):
        default = DEFAULT_NAMES.get(path[-2]) if len(path) >= 2 else None
        for item in node:
            if isinstance(item, dict) and item.get("name", default) == key:
                return item
        raise EditError(f"{_dotted(path)}: nothing named {key!r}")
    raise EditError(f"{_dotted(path)}: not a mapping or a list")


def _dotted(path: Iterable) -> str:
    return ".".join(str(p) for p in path) or "(top)"


def apply_edit(data: dict, edit: dict) -> None:
    """Replay one edit on ``data`` in place."""
    op, path = edit.get("op"), list(edit.get("path", ()))
    if op not in OPS or not path:
        raise EditError(f"not an edit: {edit!r}")
    node: Any = data
    for i, key in enumerate(path[:-1]):
        if isinstance(node, dict) and key not in node:
            if op == "unset":
                return  # nothing there to fall back from (no ``security:`` block)
            if op == "set":
                # ``set`` creates the mappings on its way (a port group without
                # a ``security:`` block yet); lists are never created.
                node[key] = {}
        node = _step(node, key, path[: i + 1])
    last = path[-1]
    if op == "set":
        if not isinstance(node, dict):
            raise EditError(f"{_dotted(path)}: not in a mapping")
        node[last] = _unshared(edit.get("value"))
    elif op == "unset":
        if isinstance(node, dict):
            node.pop(last, None)
    else:
        if not isinstance(node, dict):
            raise EditError(f"{_dotted(path)}: not in a mapping")
        items = node.setdefault(last, []) if op == "append" else node.get(last, [])
        if not isinstance(items, list):
            raise EditError(f"{_dotted(path)}: not a list")
        if op == "append":
            items.append(_unshared(edit.get("value")))
        else:
            kept = [x for x in items if not (isinstance(x, dict) and x.get("name") == edit.get("value"))]
            if len(kept) == len(items):
                raise EditError(f"{_dotted(path)}: nothing named {edit.get('value')!r}")
            node[last] = kept


def apply_edits(data: Any, edits: Iterable[dict]) -> Any:
    """The lab data with ``edits`` replayed in order (``data`` untouched)."""
    out = _unshared(data)
    for edit in edits:
        apply_edit(out, edit)
    return out


def edited_lab(lab_file: str | Path, edits: Iterable[dict], data: Any = None) -> Lab:
    """The running lab: the file with the journal replayed, validated as the
    file is (a bad edit raises ``LabError`` naming the field it broke).
    ``data``: the file's data as read at bring-up (``read_lab_data``), so a
    running lab never follows later edits of the file, and a change costs
    no YAML parse (30 ms for the 16-host bench lab; validating is 2 ms)."""
    edits = list(edits)
    data = read_lab_data(lab_file) if data is None else data
    if not edits:
        return parse_lab(data, str(lab_file))
    try:
        edited = apply_edits(data, edits)
    except EditError as exc:
        raise LabError(str(lab_file), "", f"cannot apply a change: {exc}") from None
    return parse_lab(edited, str(lab_file))


def _fits(path: list, pattern: tuple) -> bool:
    return len(path) == len(pattern) and all(p == "*" or p == k for k, p in zip(path, pattern))


def live_problem(edit: dict, replug: bool = False) -> str | None:
    """Why ``edit`` cannot be made to a running lab (None: it can).
    ``replug``: the caller also gives the vNIC its new port."""
    allowed = LIVE + (REPLUG if replug else ())
    path, op = list(edit.get("path", ())), edit.get("op")
    if any(_fits(path, pattern) and op in ops for pattern, ops in allowed):
        return None
    if any(_fits(path, pattern) for pattern, _ in REPLUG):
        return "a vNIC's network changes with its port: vlab network VM NETWORK"
    return f"{_dotted(path)} cannot be changed on a running lab (bring-up builds it)"


# -- where things are in the file ---------------------------------------------------
def vswitch_path(host: str, vswitch: str) -> list:
    """The path of standard vSwitch ``vswitch`` of ESXi host ``host``."""
    return ["esxi_hosts", host, "vswitches", vswitch]


def portgroup_path(host: str, vswitch: str, portgroup: str) -> list:
    """The path of a standard port group of ``host``'s ``vswitch``."""
    return [*vswitch_path(host, vswitch), "port_groups", portgroup]


def vnic_path(vm: str, vnic: str) -> list:
    """The path of ``vm``'s vNIC ``vnic``."""
    return ["vms", vm, "vnics", vnic]


def set_edit(path: list, value: Any) -> dict:
    return {"op": "set", "path": list(path), "value": value}


def unset_edit(path: list) -> dict:
    return {"op": "unset", "path": list(path)}

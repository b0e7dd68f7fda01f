"""Checks of distributed switches' port mirroring sessions (local and
ERSPAN), with vSphere's rules."""

from __future__ import annotations

from typing import Iterator

from ..model import Lab
from ..resolve import mirror_session_id, overlay_switch
from .common import Problem, dupes


def mirror_port(lab: Lab, dvs, ref, path: str) -> Iterator[Problem]:
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


def mirrors(lab: Lab) -> Iterator[Problem]:
    """Port mirroring sessions: every port a vNIC of the switch, the
    destination the session type needs, and vSphere's rules (a port is not
    both source and destination of a session, nor the destination of two)."""
    for i, dvs in enumerate(lab.distributed_switches):
        base = f"distributed_switches[{i}].mirrors"
        yield from dupes(dvs.mirrors, "mirror session", base)
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
                yield from mirror_port(lab, dvs, src, f"{mbase}.sources[{k}]")
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
                yield from mirror_port(lab, dvs, dst, dpath)
                if "direction" in dst.model_fields_set:
                    yield f"{dpath}.direction", "direction is a source's; a destination receives the copies"
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

"""Checks of distributed switches' port mirroring sessions (local, RSPAN
source and ERSPAN source), with vSphere's rules."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Iterator, Optional

from ..model import Lab
from ..resolve import dvs_members, mirror_session_id, overlay_switch, switch_of_port_group
from .common import Problem, dupes

_UPLINK_SOURCE = (
    "vSphere mirrors no uplink as a source: an uplink is only a Remote Mirroring "
    "Source (rspan) session's destination (destination_uplinks); to see an "
    "uplink's frames, capture on it (pktcap-uw --uplink HOST/VMNIC)"
)


def _vnic_port(lab: Lab, dvs, ref, path: str) -> Iterator[Problem]:
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


def _vmk_port(lab: Lab, dvs, ref, path: str) -> Iterator[Problem]:
    if ref.host is None:
        yield f"{path}.host", f"vmk {ref.vmk} needs the host it is on (host: HOST)"
        return
    if "vnic" in ref.model_fields_set:
        yield f"{path}.vnic", "vnic is a VM's; a VMkernel adapter source has host and vmk"
    host = next((h for h in lab.esxi_hosts if h.name == ref.host), None)
    if host is None:
        yield f"{path}.host", f"unknown ESXi host {ref.host!r}"
        return
    vmk = next((k for k in host.vmkernel if k.name == ref.vmk), None)
    if vmk is None:
        yield f"{path}.vmk", f"{host.name} has no VMkernel adapter {ref.vmk!r}"
        return
    try:
        sw, _ = switch_of_port_group(lab, host, vmk.port_group)
    except KeyError:
        return  # the vmk's own check says so
    if sw.kind != "distributed" or sw.name != dvs.name:
        yield (
            path,
            (
                f"{host.name}/{vmk.name} is on port group {vmk.port_group!r} of {sw.name}, not on "
                f"distributed switch {dvs.name} (vSphere mirrors only distributed ports)"
            ),
        )


def mirror_port(lab: Lab, dvs, ref, path: str, destination: bool = False) -> Iterator[Problem]:
    """A session's source (a vNIC or a VMkernel adapter) or destination (a
    vNIC) is a port of ``dvs``."""
    if ref.uplink is not None:
        yield (
            f"{path}.uplink",
            (
                "an uplink is an RSPAN session's destination_uplinks, not a destination vNIC"
                if destination
                else _UPLINK_SOURCE
            ),
        )
        return
    if ref.vmk is not None and destination:
        yield f"{path}.vmk", "a destination is a VM's vNIC (a capture VM); copies are not delivered to a vmk"
        return
    if (ref.vm is None) == (ref.vmk is None):
        yield path, "name either a VM's vNIC (vm, vnic) or a host's VMkernel adapter (host, vmk)"
        return
    if ref.vmk is not None:
        yield from _vmk_port(lab, dvs, ref, path)
        return
    if ref.host is not None:
        yield f"{path}.host", "host goes with vmk; a VM's vNIC is found wherever the VM runs"
    yield from _vnic_port(lab, dvs, ref, path)


def _key(ref) -> tuple[str, str]:
    return (ref.host, ref.vmk) if ref.vmk is not None else (ref.vm, ref.vnic)


def _label(ref) -> str:
    return "/".join(_key(ref))


def _own_ips(lab: Lab, ref) -> list[IPv4Address]:
    if ref.vmk is not None:
        hosts = [h for h in lab.esxi_hosts if h.name == ref.host]
        return [k.ip.ip for h in hosts for k in h.vmkernel if k.name == ref.vmk]
    nics = [n for v in lab.vms if v.name == ref.vm for n in v.vnics if n.name == ref.vnic]
    return [n.ip.ip for n in nics if n.ip is not None]


def _sending_vmk(lab: Lab, host_name: str, ip: IPv4Address) -> Optional[str]:
    """The VMkernel adapter ``host_name``'s default stack reaches ``ip`` by:
    the one on its subnet, else the one with the default gateway."""
    host = next((h for h in lab.esxi_hosts if h.name == host_name), None)
    if host is None:
        return None
    stack = [k for k in host.vmkernel if k.stack == "default"]
    on_link = next((k for k in stack if ip in k.ip.network), None)
    if on_link is not None:
        return on_link.name
    return next((k.name for k in stack if k.gateway is not None), None)


def _erspan_senders(lab: Lab, dvs) -> dict[tuple[str, str], str]:
    """(host, vmk) -> the first enabled ERSPAN session of ``dvs`` whose
    copies that member host sends from that vmk."""
    out: dict[tuple[str, str], str] = {}
    for m in dvs.mirrors:
        if m.type != "erspan" or not m.enabled or m.destination_ip is None:
            continue
        for h in dvs_members(lab, dvs):
            vmk = _sending_vmk(lab, h.name, m.destination_ip)
            if vmk is not None:
                out.setdefault((h.name, vmk), m.name)
    return out


_LOCAL_ONLY = ("destination_vnics", "normal_traffic")
_ERSPAN_ONLY = ("destination_ip", "encapsulation", "session_id")
_RSPAN_ONLY = ("destination_uplinks", "encapsulation_vlan", "preserve_original_vlan")
_ONLY = {"local": _LOCAL_ONLY, "erspan": _ERSPAN_ONLY, "rspan": _RSPAN_ONLY}


def _rspan(dvs, m, mbase: str) -> Iterator[Problem]:
    if not m.destination_uplinks:
        yield (
            f"{mbase}.destination_uplinks",
            "an rspan session needs destination_uplinks (the dvUplinks the copies leave by)",
        )
    for k, u in enumerate(m.destination_uplinks):
        if u not in dvs.uplinks:
            yield f"{mbase}.destination_uplinks[{k}]", f"{dvs.name} has no dvUplink {u!r}"
    if m.encapsulation_vlan is None:
        yield f"{mbase}.encapsulation_vlan", "an rspan session needs encapsulation_vlan (the RSPAN VLAN)"
        return
    pg = next((g for g in dvs.port_groups if g.vlan == m.encapsulation_vlan), None)
    if pg is not None:
        yield (
            f"{mbase}.encapsulation_vlan",
            f"VLAN {m.encapsulation_vlan} is port group {pg.name!r}'s: the copies would reach its "
            "ports; RSPAN needs a VLAN of its own",
        )


def mirrors(lab: Lab) -> Iterator[Problem]:
    """Port mirroring sessions: every source a vNIC or vmk of the switch
    (never an uplink), every destination a vNIC, the destination the session
    type needs, and vSphere's rules (a port is not both source and
    destination of a session, nor the destination of two)."""
    for i, dvs in enumerate(lab.distributed_switches):
        base = f"distributed_switches[{i}].mirrors"
        yield from dupes(dvs.mirrors, "mirror session", base)
        destination_of: dict[tuple[str, str], str] = {}
        ids: dict[int, str] = {}
        senders = _erspan_senders(lab, dvs)
        for j, m in enumerate(dvs.mirrors):
            mbase = f"{base}[{j}]"
            for other, fields in _ONLY.items():
                for field in fields:
                    if other != m.type and field in m.model_fields_set:
                        yield (f"{mbase}.{field}", f"{field} is for {other} sessions, this one is {m.type}")
            if m.type == "rspan":
                yield from _rspan(dvs, m, mbase)
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
                spath = f"{mbase}.sources[{k}]"
                problems = list(mirror_port(lab, dvs, src, spath))
                yield from problems
                if problems:
                    continue
                key = _key(src)
                if key in sources:
                    yield spath, f"{_label(src)} is already a source (sources[{sources[key]}])"
                sources.setdefault(key, k)
                if m.type != "erspan":
                    continue
                if m.destination_ip is not None and m.destination_ip in _own_ips(lab, src):
                    yield (
                        f"{mbase}.destination_ip",
                        f"{m.destination_ip} is the address of "
                        f"source {_label(src)}: its copies would be mirrored again",
                    )
                elif src.vmk is not None and src.direction != "egress":
                    session = senders.get((src.host, src.vmk))
                    if session is not None:
                        which = "this session's" if session == m.name else f"session {session!r}'s"
                        yield (
                            spath,
                            f"{src.host} sends {which} ERSPAN copies from {src.vmk}: mirroring what it "
                            "sends would mirror the copies again (an egress source is allowed)",
                        )
            for k, dst in enumerate(m.destination_vnics):
                dpath = f"{mbase}.destination_vnics[{k}]"
                yield from mirror_port(lab, dvs, dst, dpath, destination=True)
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


def mirror_warnings(lab: Lab) -> list[Problem]:
    """Sessions that run, and whose copies differ from what the author may
    expect: an RSPAN VLAN the physical switches learn in (they then deliver
    only the copies of flooded frames to the analyser), and one the switch
    port of a destination uplink does not carry."""
    out = []
    rspan_vlans = {v for sw in lab.physical_switches for v in sw.rspan_vlans}
    for i, dvs in enumerate(lab.distributed_switches):
        for j, m in enumerate(dvs.mirrors):
            path = f"distributed_switches[{i}].mirrors[{j}]"
            if m.type == "rspan" and m.encapsulation_vlan not in rspan_vlans | {None}:
                out.append(
                    (
                        f"{path}.encapsulation_vlan",
                        f"VLAN {m.encapsulation_vlan} is in no physical switch's rspan_vlans: the "
                        "switches learn the copies' MACs in it and pass on only copies of frames "
                        "they flood",
                    )
                )
            if m.type == "rspan" and m.encapsulation_vlan is not None:
                out += _rspan_vlan_not_carried(lab, dvs, m, path)
    return out


def _rspan_vlan_not_carried(lab: Lab, dvs, m, path: str) -> list[Problem]:
    """Destination uplinks plugged into switch ports that drop the RSPAN VLAN."""
    out = []
    switches = {sw.name: sw for sw in lab.physical_switches}
    for h in lab.esxi_hosts:
        membership = next((x for x in h.distributed_switches if x.name == dvs.name), None)
        if membership is None:
            continue
        for u in m.destination_uplinks:
            nic = next((n for n in h.uplinks if n.name == membership.uplinks.get(u)), None)
            sw = switches.get(nic.switch) if nic is not None else None
            cfg = next((c for c in sw.ports if c.port == nic.port), None) if sw is not None else None
            if cfg is None:
                continue
            if cfg.mode == "access" or (cfg.allowed_vlans and m.encapsulation_vlan not in cfg.allowed_vlans):
                out.append(
                    (
                        f"{path}.encapsulation_vlan",
                        f"{sw.name} port {nic.port} ({h.name}/{nic.name}, {u}) does not carry VLAN "
                        f"{m.encapsulation_vlan}: it drops the copies",
                    )
                )
    return out

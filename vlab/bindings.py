"""Bindings: which port is where, right now.

The lab file is intent; a binding says which vSwitch port of which host a vNIC
or VMkernel adapter occupies, its OpenFlow port number, and which uplinks are
up. The topology builds ports from bindings and the controller compiles flows
from them, so both agree on port numbers without talking to each other.
vMotion and link failures change bindings, never the lab.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Literal, Optional

from . import naming
from .lab.model import Lab
from .lab.resolve import HostSwitch, host_switches, switch_of_port_group

# OpenFlow port numbers are requested from OVS (ofport_request) so they are
# known before the switch exists: uplinks 1.., VMkernel adapters 100.., vNICs 200..
UPLINK_BASE, VMK_BASE, VNIC_BASE = 1, 100, 200


@dataclass(frozen=True)
class PortBinding:
    """One vSwitch port: an uplink, a VMkernel adapter or a VM's vNIC."""
    name: str                                  # OVS port / interface name in the host namespace
    ofport: int
    kind: Literal["uplink", "vmk", "vnic"]
    port_group: Optional[str] = None           # None for uplinks
    mac: Optional[str] = None                  # configured MAC (None for uplinks)
    owner: Optional[str] = None                # VM name, or host name for a vmk


@dataclass(frozen=True)
class SwitchBinding:
    """Everything the controller needs to program one vSwitch bridge."""
    host: str
    switch: HostSwitch
    dpid: int
    ports: tuple[PortBinding, ...]
    uplinks_down: frozenset[str] = field(default_factory=frozenset)

    @property
    def bridge(self) -> str:
        return self.switch.name

    def port(self, name: str) -> PortBinding:
        return next(p for p in self.ports if p.name == name)

    def uplink_ports(self) -> tuple[PortBinding, ...]:
        return tuple(p for p in self.ports if p.kind == "uplink")

    def local_ports(self) -> tuple[PortBinding, ...]:
        return tuple(p for p in self.ports if p.kind != "uplink")

    def with_uplink_state(self, uplink: str, up: bool) -> "SwitchBinding":
        down = self.uplinks_down - {uplink} if up else self.uplinks_down | {uplink}
        return replace(self, uplinks_down=frozenset(down))


def datapath_id(host_index: int, switch_index: int) -> int:
    """A stable DPID per (host, vSwitch): the controller identifies bridges by it."""
    return ((host_index + 1) << 8) | (switch_index + 1)


def vmk_mac(host: str, vmk: str) -> str:
    """Default VMkernel MAC: VMware OUI plus a stable hash (ESXi also derives
    vmk MACs itself rather than from the guest-visible range)."""
    digest = hashlib.sha256(f"{host}/{vmk}".encode()).digest()
    return "00:50:56:%02x:%02x:%02x" % (0x40 | (digest[0] & 0x3F), digest[1], digest[2])


def switch_bindings(lab: Lab, vm_hosts: Optional[dict[str, str]] = None) -> tuple[SwitchBinding, ...]:
    """Bindings of every vSwitch of every ESXi host. ``vm_hosts`` overrides
    where VMs are (vMotion); by default each VM is on its lab ``host``."""
    placement = {vm.name: vm.host for vm in lab.vms}
    placement.update(vm_hosts or {})
    out = []
    for h_index, host in enumerate(lab.esxi_hosts):
        ports: dict[str, list[PortBinding]] = {}
        switches = host_switches(lab, host)
        for sw in switches:
            ports[sw.name] = [PortBinding(name=u, ofport=UPLINK_BASE + i, kind="uplink")
                              for i, u in enumerate(sw.uplinks)]
        for i, vmk in enumerate(host.vmkernel):
            sw, _ = switch_of_port_group(lab, host, vmk.port_group)
            ports[sw.name].append(PortBinding(
                name=vmk.name, ofport=VMK_BASE + i, kind="vmk", port_group=vmk.port_group,
                mac=vmk.mac or vmk_mac(host.name, vmk.name), owner=host.name))
        n = 0
        for vm in lab.vms:
            if placement[vm.name] != host.name:
                continue
            for nic in vm.vnics:
                sw, _ = switch_of_port_group(lab, host, nic.port_group)
                ports[sw.name].append(PortBinding(
                    name=naming.vnic_port(vm.name, nic.name), ofport=VNIC_BASE + n,
                    kind="vnic", port_group=nic.port_group, mac=nic.mac, owner=vm.name))
                n += 1
        for sw in switches:
            out.append(SwitchBinding(host=host.name, switch=sw,
                                     dpid=datapath_id(h_index, sw.index),
                                     ports=tuple(ports[sw.name])))
    return tuple(out)

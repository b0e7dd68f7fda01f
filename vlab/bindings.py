"""Bindings: which port is where, right now.

The lab file is intent; a binding says which vSwitch port of which host a vNIC
or VMkernel adapter occupies, its OpenFlow port number, and which uplinks are
up. The topology builds ports from bindings and the controller compiles flows
from them, so both agree on port numbers without talking to each other.
vMotion and link failures change bindings, never the lab, and so does what
a guest does to its own NIC (``GuestNic``: the effective MAC, promiscuous
mode, the multicast filter), which the hypervisor sees and reports.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Literal, Optional

from . import naming
from .lab.firewall import scope
from .lab.model import Lab
from .lab.resolve import (
    EffectiveSecurity,
    EffectiveTeaming,
    HostSwitch,
    host_switches,
    overlay_switch,
    switch_of_port_group,
)

# OpenFlow port numbers are requested from OVS (ofport_request) so they are
# known before the switch exists: uplinks 1.., VMkernel adapters 100.., vNICs
# 200.. numbered across the whole lab (a VM keeps its port number when it
# vMotions), PortOutput capture ports at CAPTURE_BASE + the captured port.
# The VXLAN tunnel port of a host's VTEP vSwitch is TUNNEL_OFPORT; a
# distributed switch with ERSPAN/GRE mirror sessions has the tunnel ports of
# the encapsulations they use on every member host (MIRROR_TUNNELS).
UPLINK_BASE, VMK_BASE, VNIC_BASE, CAPTURE_BASE = 1, 100, 200, 1000
TUNNEL_OFPORT = 199
TUNNEL_PORT = "vxlan0"
# ESXi numbers a vSwitch port (PortNum in net-stats -l, pktcap-uw's
# --switchport) as its portset in the top byte, counted from 0x02 for the
# host's first vSwitch, and the port in the low bytes: here the port's
# OpenFlow number, so a vNIC keeps its low bytes across a vMotion and a
# reconnect to a new port gets a new number, as on ESXi.
PORTSET_BASE = 0x02


@dataclass(frozen=True)
class MirrorTunnel:
    """A port mirroring tunnel port of a host's distributed switch: the
    copies of one encapsulation leave by it. ERSPAN type III has two, one
    per direction bit of its header (``direction``: the copies of what
    sources send, ``ingress``, or of what they receive, ``egress``), since
    the bit is the port's setting: OpenFlow through os-ken cannot set OVS's
    ERSPAN metadata per flow."""

    name: str
    ofport: int
    encapsulation: str
    direction: Optional[str] = None


MIRROR_TUNNELS = (
    MirrorTunnel("erspan-mirror", 198, "erspan"),
    MirrorTunnel("gre-mirror", 197, "gre"),
    MirrorTunnel("erspan3-in", 196, "erspan3", "ingress"),
    MirrorTunnel("erspan3-out", 195, "erspan3", "egress"),
)


def mirror_tunnel(name: str) -> MirrorTunnel:
    return next(t for t in MIRROR_TUNNELS if t.name == name)


@dataclass(frozen=True)
class GuestNic:
    """What the guest has done to its NIC, as the hypervisor sees it: the
    unicast address loaded into the filter (effective MAC), the promiscuous
    and all-multicast flags, and the multicast MAC filter. ``mcast=None``
    means "not reported yet": every multicast frame passes. ``ipv4`` are the
    addresses the guest configured (what VMware Tools reports; NSX's IP
    discovery fills its ARP table from it)."""

    effective_mac: Optional[str] = None  # None = the configured MAC
    promiscuous: bool = False
    allmulti: bool = False
    mcast: Optional[frozenset[str]] = None
    ipv4: frozenset[str] = frozenset()

    def to_json(self) -> dict:
        return {
            "effective_mac": self.effective_mac,
            "promiscuous": self.promiscuous,
            "allmulti": self.allmulti,
            "mcast": sorted(self.mcast) if self.mcast is not None else None,
            "ipv4": sorted(self.ipv4),
        }

    @staticmethod
    def from_json(d: dict) -> "GuestNic":
        mc = d.get("mcast")
        return GuestNic(
            d.get("effective_mac"),
            bool(d.get("promiscuous")),
            bool(d.get("allmulti")),
            frozenset(mc) if mc is not None else None,
            frozenset(d.get("ipv4") or ()),
        )


@dataclass(frozen=True)
class Placement:
    """Where one vNIC is plugged in right now (host, OpenFlow port number)."""

    host: str
    ofport: int


@dataclass(frozen=True)
class PortBinding:
    """One vSwitch port: an uplink, a VMkernel adapter, a VM's vNIC (on a
    port group or an NSX logical switch), the VXLAN tunnel port or a port
    mirroring tunnel port (kind ``mirror``, one of MIRROR_TUNNELS)."""

    name: str  # OVS port / interface name in the host namespace
    ofport: int
    kind: Literal["uplink", "vmk", "vnic", "tunnel", "mirror"]
    port_group: Optional[str] = None  # None for uplinks, tunnels, logical ports
    logical_switch: Optional[str] = None  # vNICs on an NSX logical switch
    mac: Optional[str] = None  # configured MAC (None for uplinks)
    owner: Optional[str] = None  # VM name, or host name for a vmk
    guest: GuestNic = GuestNic()  # vNICs only: the guest's filter state
    capture: bool = False  # a PortOutput capture session is open

    @property
    def guest_mac(self) -> Optional[str]:
        """The address the guest loaded into its NIC (the configured MAC
        until it changes it). Whether the vSwitch honours it is the port's
        security policy: ``controller.portsecurity``."""
        return self.guest.effective_mac or self.mac


@dataclass(frozen=True)
class SwitchBinding:
    """Everything the controller needs to program one vSwitch bridge."""

    host: str
    switch: HostSwitch
    dpid: int
    ports: tuple[PortBinding, ...]
    uplinks_down: frozenset[str] = field(default_factory=frozenset)
    # Beacon probing: uplinks it failed (their links are up), and whether it
    # cannot tell which one failed and sends on every uplink (shotgun).
    beacon_failed: frozenset[str] = field(default_factory=frozenset)
    shotgun: bool = False
    # Teaming as it stands after failovers without failback (port group ->
    # EffectiveTeaming); port groups not listed use the configured teaming.
    teams: tuple[tuple[str, EffectiveTeaming], ...] = ()
    # Load-based teaming's moves: port -> the uplink it was moved to
    # (controller.loadbalance); other ports are placed by port ID.
    load_moves: tuple[tuple[str, str], ...] = ()
    # A pktcap-uw Drop capture runs on this host (controller.dropcapture).
    drop_capture: bool = False

    @property
    def bridge(self) -> str:
        return self.switch.name

    def port(self, name: str) -> PortBinding:
        return next(p for p in self.ports if p.name == name)

    def port_num(self, p: PortBinding) -> int:
        """``p``'s ESXi port number (``PORTSET_BASE``)."""
        return (PORTSET_BASE + self.switch.index) << 24 | p.ofport

    def uplink_ports(self) -> tuple[PortBinding, ...]:
        return tuple(p for p in self.ports if p.kind == "uplink")

    def local_ports(self) -> tuple[PortBinding, ...]:
        """vNICs and vmks on VLAN-backed port groups."""
        return tuple(p for p in self.ports if p.port_group is not None)

    def logical_ports(self) -> tuple[PortBinding, ...]:
        """vNICs on NSX logical switches."""
        return tuple(p for p in self.ports if p.logical_switch is not None)

    def tunnel_port(self) -> Optional[PortBinding]:
        return next((p for p in self.ports if p.kind == "tunnel"), None)

    def mirror_port(self, encapsulation: str, direction: str) -> Optional[PortBinding]:
        """The tunnel port mirror copies of ``encapsulation`` leave by, for
        copies of what a source sends (``direction`` ingress) or receives
        (egress)."""
        names = {
            t.name
            for t in MIRROR_TUNNELS
            if t.encapsulation == encapsulation and t.direction in (None, direction)
        }
        return next((p for p in self.ports if p.kind == "mirror" and p.name in names), None)

    def with_uplink_state(self, uplink: str, up: bool) -> "SwitchBinding":
        down = self.uplinks_down - {uplink} if up else self.uplinks_down | {uplink}
        return replace(self, uplinks_down=frozenset(down))

    def down_for(self, team: EffectiveTeaming) -> frozenset[str]:
        """The uplinks ``team`` treats as failed: links down, and with beacon
        probing also the uplinks its beacons failed."""
        if team.failure_detection == "beacon_probing":
            return self.uplinks_down | self.beacon_failed
        return self.uplinks_down

    def moved_to(self, port: str) -> Optional[str]:
        """The uplink load-based teaming moved ``port`` to, if it did."""
        return dict(self.load_moves).get(port)

    def teaming(self, port_group: str) -> EffectiveTeaming:
        """The port group's teaming as it stands now."""
        return dict(self.teams).get(port_group) or self.switch.port_group(port_group).teaming

    def security(self, port: PortBinding) -> EffectiveSecurity:
        """The security policy of ``port``'s port group or logical switch."""
        if port.logical_switch is not None:
            return self.switch.segment(port.logical_switch).security
        return self.switch.port_group(port.port_group).security

    def with_guests(self, guests: dict[str, GuestNic]) -> "SwitchBinding":
        ports = tuple(replace(p, guest=guests.get(p.name, p.guest)) for p in self.ports)
        return replace(self, ports=ports)

    def with_captures(self, names: frozenset[str]) -> "SwitchBinding":
        ports = tuple(replace(p, capture=p.name in names) for p in self.ports)
        return replace(self, ports=ports)


def mirror_ports(lab: Lab, sw: HostSwitch) -> list[PortBinding]:
    """The mirror tunnel ports of one host's vSwitch: one per encapsulation
    its distributed switch's ERSPAN sessions use, on every member host, so
    mirroring follows a source VM wherever it runs."""
    if sw.kind != "distributed":
        return []
    dvs = next(d for d in lab.distributed_switches if d.name == sw.name)
    used = {m.encapsulation for m in dvs.mirrors if m.type == "erspan"}
    return [
        PortBinding(name=t.name, ofport=t.ofport, kind="mirror")
        for t in MIRROR_TUNNELS
        if t.encapsulation in used
    ]


def datapath_id(host_index: int, switch_index: int) -> int:
    """A stable DPID per (host, vSwitch): the controller identifies bridges by it."""
    return ((host_index + 1) << 8) | (switch_index + 1)


def vmk_mac(host: str, vmk: str) -> str:
    """Default VMkernel MAC: VMware OUI plus a stable hash (ESXi also derives
    vmk MACs itself rather than from the guest-visible range)."""
    digest = hashlib.sha256(f"{host}/{vmk}".encode()).digest()
    return "00:50:56:%02x:%02x:%02x" % (0x40 | (digest[0] & 0x3F), digest[1], digest[2])


def default_placement(lab: Lab) -> dict[str, Placement]:
    """vNIC port name -> its lab host and a port number unique in the lab."""
    out, n = {}, 0
    for vm in lab.vms:
        for nic in vm.vnics:
            out[naming.vnic_port(vm.name, nic.name)] = Placement(vm.host, VNIC_BASE + n)
            n += 1
    return out


def switch_bindings(lab: Lab, placement: Optional[dict[str, Placement]] = None) -> tuple[SwitchBinding, ...]:
    """Bindings of every vSwitch of every ESXi host. ``placement`` overrides
    where vNICs are plugged in (vMotion, reconnect to a new port); by default
    each VM is on its lab ``host``."""
    where = default_placement(lab)
    where.update(placement or {})
    out = []
    for h_index, host in enumerate(lab.esxi_hosts):
        ports: dict[str, list[PortBinding]] = {}
        switches = host_switches(lab, host)
        for sw in switches:
            ports[sw.name] = [
                PortBinding(name=u, ofport=UPLINK_BASE + i, kind="uplink") for i, u in enumerate(sw.uplinks)
            ]
        for i, vmk in enumerate(host.vmkernel):
            sw, _ = switch_of_port_group(lab, host, vmk.port_group)
            ports[sw.name].append(
                PortBinding(
                    name=vmk.name,
                    ofport=VMK_BASE + i,
                    kind="vmk",
                    port_group=vmk.port_group,
                    mac=vmk.mac or vmk_mac(host.name, vmk.name),
                    owner=host.name,
                )
            )
        overlay = overlay_switch(lab, host)
        if overlay is not None:
            ports[overlay.name].append(PortBinding(name=TUNNEL_PORT, ofport=TUNNEL_OFPORT, kind="tunnel"))
        for sw in switches:
            ports[sw.name] += mirror_ports(lab, sw)
        for vm in lab.vms:
            for nic in vm.vnics:
                name = naming.vnic_port(vm.name, nic.name)
                if where[name].host != host.name:
                    continue
                if nic.logical_switch is not None:
                    sw = overlay
                else:
                    sw, _ = switch_of_port_group(lab, host, nic.port_group)
                ports[sw.name].append(
                    PortBinding(
                        name=name,
                        ofport=where[name].ofport,
                        kind="vnic",
                        port_group=nic.port_group,
                        logical_switch=nic.logical_switch,
                        mac=nic.mac,
                        owner=vm.name,
                    )
                )
        for sw in switches:
            out.append(
                SwitchBinding(
                    host=host.name,
                    switch=sw,
                    dpid=datapath_id(h_index, sw.index),
                    ports=tuple(ports[sw.name]),
                )
            )
    return tuple(out)


def conntrack_zones(lab: Lab) -> dict[str, int]:
    """vNIC port name -> its conntrack zone (the DFW's per-vNIC filter): one
    per vNIC in the lab, the same on every host, so state imported by
    vMotion lands in the right zone."""
    return {port: i + 1 for i, port in enumerate(default_placement(lab))}


def dfw_protected_vms(lab: Lab) -> frozenset[str]:
    """The VMs the distributed firewall's ``applied_to`` covers."""
    dfw = lab.distributed_firewall
    return scope(lab, dfw.applied_to) if dfw is not None else frozenset()

"""What an emulated ESXi host knows about its own networking, gathered once
for every command that shows it (esxcli, esxcfg-*, net-stats): the lab's
intent as vCenter pushed it (switches, port groups, policies, vmks), the
controller's state (placement, pinning, guests' NICs) and the host
namespace's live state (links, MACs, routes, neighbours), read here and
never guessed.

ESXi's own names for the lab's values live here too: teaming policies,
failure detection, netstacks, port types.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from ipaddress import IPv4Interface
from typing import Optional

from controller.portsecurity import PortSecurity
from vlab.bindings import PortBinding, SwitchBinding
from vlab.lab.resolve import link_mbps
from vlab.operations.labcontrol import client_name

# esxcli's names for the lab's teaming values.
LOAD_BALANCING = {
    "originating_port": "srcport",
    "source_mac_hash": "mac",
    "ip_hash": "iphash",
    "explicit_failover": "explicit",
    "load_based": "loadbased",
    "lag": "lag",
}
FAILURE_DETECTION = {"link_status": "link", "beacon_probing": "beacon"}
NETSTACK = {
    "default": "defaultTcpipStack",
    "vmotion": "vmotion",
    "provisioning": "vSphereProvisioning",
    "vxlan": "vxlan",
}
STACK_OF = {name: stack for stack, name in NETSTACK.items()}  # ESXi's netstack name -> the lab's
# net-stats -l's Type per port kind (4 physical NIC, 3 vmknic, 5 VM vNIC)
# and SubType (9: vmxnet3, the vNIC type every VM here presents).
PORT_TYPE = {"uplink": (4, 0), "vmk": (3, 0), "vnic": (5, 9)}


@dataclass(frozen=True)
class Port:
    """One vSwitch port as ESXi lists it."""

    num: int
    kind: str
    switch: str
    name: str  # the port's name here (vm1-eth0, vmk0, vmnic2)
    client: str  # net-stats ClientName (vm1.eth0, vmk0, vmnic2)
    mac: str
    binding: PortBinding


class HostFacts:
    """One ESXi host of a running lab (``ctl``: a ``LabControl``)."""

    def __init__(self, ctl, host: str):
        self.ctl, self.name = ctl, host
        self.esx = ctl.esxi(host)
        self.bindings: tuple[SwitchBinding, ...] = ctl.bindings(host)
        self.applied = ctl.applied()
        self._links: Optional[dict] = None
        self._ports: Optional[list[Port]] = None

    # -- live state of the host namespace -------------------------------------
    def links(self) -> dict[str, dict]:
        """``ip -j link`` of the host namespace, by interface name."""
        if self._links is None:
            self._links = {
                i["ifname"]: i for i in json.loads(self.ctl.sh(self.name, "ip -j link show") or "[]")
            }
        return self._links

    def ip_json(self, cmd: str) -> list[dict]:
        return json.loads(self.ctl.sh(self.name, f"ip -j {cmd}") or "[]")

    def vmk_ipv4(self, vmk: str) -> Optional[IPv4Interface]:
        """The IPv4 address and prefix the vmk has now (None: it has none)."""
        for link in self.ip_json(f"-4 addr show dev {vmk}"):
            for a in link.get("addr_info", []):
                if a.get("family") == "inet":
                    return IPv4Interface(f"{a['local']}/{a['prefixlen']}")
        return None

    def mtu(self, port: str, default: int) -> int:
        """A port's MTU as its interface has it now."""
        return int(self.links().get(port, {}).get("mtu", default))

    # -- ports -----------------------------------------------------------------
    def ports(self) -> list[Port]:
        """Every uplink, vmk and vNIC port of the host's vSwitches, in port
        order (read once: one command shows one moment)."""
        if self._ports is None:
            self._ports = sorted(
                (
                    Port(b.port_num(p), p.kind, b.bridge, p.name, client_name(p), self.mac(b, p), p)
                    for b in self.bindings
                    for p in b.ports
                    if p.kind in PORT_TYPE
                ),
                key=lambda x: x.num,
            )
        return self._ports

    def used_ports(self, b: SwitchBinding) -> int:
        """How many ports of vSwitch ``b`` are in use (ESXi's Used Ports)."""
        return sum(1 for p in self.ports() if p.switch == b.bridge)

    def mac(self, b: SwitchBinding, p: PortBinding) -> str:
        """A vNIC's effective MAC (the guest's after an accepted MAC change),
        a vmk's, or the uplink's own (read from its interface)."""
        if p.kind == "uplink":
            return self.links().get(p.name, {}).get("address", "")
        if p.kind == "vnic":
            return PortSecurity.of(b, p).effective_mac
        return (p.mac or "").lower()

    def switch_of(self, port: str) -> SwitchBinding:
        return next(b for b in self.bindings if any(p.name == port for p in b.ports))

    def pinned(self, port: str) -> Optional[str]:
        """The uplink the controller pins ``port`` to now (TEAM-PNIC)."""
        return self.applied.get("pinning", {}).get(self.name, {}).get(port)

    def uplinks_down(self) -> set[str]:
        return set(self.applied.get("uplinks_down", {}).get(self.name, []))

    # -- physical NICs -------------------------------------------------------------
    def nics(self) -> list[dict]:
        """Each vmnic with its live link state and the lab's speed."""
        rows = []
        for u in self.esx.uplinks:
            link = self.links().get(u.name, {})
            flags = link.get("flags", [])
            rows.append(
                {
                    "Name": u.name,
                    "PCI Device": "N/A",
                    "Driver": "veth",
                    "Admin Status": "Up" if "UP" in flags else "Down",
                    "Link Status": "Up" if "LOWER_UP" in flags else "Down",
                    "Speed": int(u.speed * 1000),
                    "Duplex": "Full",
                    "MAC Address": link.get("address", ""),
                    "MTU": link.get("mtu", 0),
                    "Description": (
                        f"vlab {u.speed:g} GbE uplink to {u.switch} port {u.port} "
                        f"(veth shaped to {link_mbps(self.ctl.lab, u.speed):g} Mbit/s)"
                    ),
                }
            )
        return rows

    # -- VMs ---------------------------------------------------------------------------
    def vm_ports(self) -> dict[str, list[Port]]:
        """VM name -> its vNIC ports on this host."""
        out: dict[str, list[Port]] = {}
        for p in self.ports():
            if p.kind == "vnic":
                out.setdefault(p.binding.owner, []).append(p)
        return out

    def world_id(self, vm: str) -> int:
        """A VM's world ID: the PID of the VM's namespace, its process here."""
        return int(self.ctl.pids[vm])

    def guest_ipv4(self, port: str) -> str:
        """The guest's address as hostd reports it (VMware Tools' role), or
        0.0.0.0 as ESXi shows a guest that reports none."""
        reported = (self.applied.get("guests", {}).get(port) or {}).get("ipv4") or []
        return reported[0].split("/")[0] if reported else "0.0.0.0"

"""NSX logical switching on one host, as a pure flow compiler.

What the VXLAN module of a prepared host does, and so what these flows do:

* A VM port on a logical switch sends untagged frames, under the security
  policy of the logical switch (``controller.portsecurity``, the same as a
  distributed port group's: by default forged transmits and MAC address
  changes are rejected); the frame's VNI goes into ``tun_id`` and it continues through IP discovery, ARP
  suppression and the distributed router (tables DISCOVERY, ARP, ROUTE) to L2.
* L2 never learns. A frame to a VM on this host goes to its port (by its
  effective MAC; nothing, while MAC address changes = reject refuses the
  guest's new address); to a VM elsewhere, encapsulated to the VTEP the controller's MAC table names
  (``tun_dst``), out of the tunnel port: OVS then routes it from the VTEP
  vmk, so the physical network sees only VTEP addresses.
* Broadcast and multicast from a local VM go to the other local ports of
  the VNI and, with unknown unicast (which reaches no local VM: delivery is
  by destination MAC, as on any port group), in unicast replication mode
  as one unicast copy to each VTEP of the VNI in this host's transport subnet and one to
  the UTEP of every other subnet (``NsxTables.replication``).
* From the tunnel: to the local port of the destination MAC, or for
  broadcast and multicast to the local ports of the VNI; a BUM frame that came
  from another transport subnet is also replicated by the UTEP to the other
  VTEPs of its own subnet (the "replicate locally" role; here the UTEP
  recognises such frames by their outer source address).

``compile_overlay(binding, tables)`` returns the flows of the VTEP's vSwitch;
empty for any other bridge.
"""

from __future__ import annotations

from vlab.bindings import PortBinding, SwitchBinding

from .nsx import NsxTables
from .pipeline import OFPVID_NONE, Concern, FlowSpec, Priority, Table, cookie
from .portsecurity import PortSecurity

COOKIE = cookie(Concern.OVERLAY)
MULTICAST = ("01:00:00:00:00:00", "01:00:00:00:00:00")


def _flow(table, priority, match, actions=(), goto=None) -> FlowSpec:
    return FlowSpec.make(table, priority, match, actions, goto, cookie=COOKIE)


def encapsulate(tables: NsxTables, hosts, tunnel: int | str) -> list[tuple]:
    """One unicast VXLAN copy per host in ``hosts`` (the VNI is in tun_id)."""
    actions = []
    for h in hosts:
        actions += [("set_field", "tun_ipv4_dst", str(tables.vteps[h].ip.ip)), ("output", tunnel)]
    return actions


def ingress_refusal(b: SwitchBinding, p: PortBinding, eth_src: str, tagged: bool) -> str | None:
    """Why a logical-switch port's frame is refused at its door (None: it is not)."""
    if tagged:
        return f"{p.name} is on logical switch {p.logical_switch}: a VM there sends untagged frames"
    return PortSecurity.of(b, p).forged_refusal(eth_src)


def _ports_of(b: SwitchBinding, vni: int, tables: NsxTables) -> list[PortBinding]:
    return [p for p in b.logical_ports() if tables.vni(p.logical_switch) == vni]


def _ingress(b: SwitchBinding, tables: NsxTables, tunnel: PortBinding) -> list[FlowSpec]:
    flows = [_flow(Table.INGRESS, Priority.INGRESS_CLASSIFY, {"in_port": tunnel.ofport}, goto=Table.L2)]
    for p in b.logical_ports():
        flows.append(
            _flow(
                Table.INGRESS,
                Priority.INGRESS_CLASSIFY,
                {"in_port": p.ofport, "vlan_vid": OFPVID_NONE, **PortSecurity.of(b, p).source_match()},
                (("set_field", "tunnel_id", tables.vni(p.logical_switch)),),
                goto=Table.DISCOVERY,
            )
        )
        flows.append(_flow(Table.INGRESS, Priority.INGRESS_REFUSED, {"in_port": p.ofport}))
    return flows


def _l2(b: SwitchBinding, tables: NsxTables, tunnel: PortBinding) -> list[FlowSpec]:
    flows = []
    here = b.host
    vnis = sorted({tables.vni(p.logical_switch) for p in b.logical_ports()})
    for vni in vnis:
        ports = [PortSecurity.of(b, p) for p in _ports_of(b, vni, tables)]
        # MAC address changes = reject and a changed guest MAC: the port keeps
        # its (.vmx) MAC here, but nothing is delivered to it.
        local = [s for s in ports if s.inbound_refusal() is None]
        to_local = [("output", s.port.ofport) for s in local]
        from_vm = {"tunnel_id": vni}
        from_tunnel = {"in_port": tunnel.ofport, "tunnel_id": vni}
        # Known unicast: local port, or the VTEP the MAC table names.
        for s in ports:
            out = (("output", s.port.ofport),) if s in local else ()
            flows.append(_flow(Table.L2, Priority.EXACT, {**from_vm, "eth_dst": s.effective_mac}, out))
            flows.append(
                _flow(Table.L2, Priority.TUNNEL_EXACT, {**from_tunnel, "eth_dst": s.effective_mac}, out)
            )
        for (v, mac), host in sorted(tables.mac_table.items()):
            if v == vni and host != here:
                flows.append(
                    _flow(
                        Table.L2,
                        Priority.EXACT,
                        {**from_vm, "eth_dst": mac},
                        encapsulate(tables, [host], tunnel.ofport),
                    )
                )
        # BUM from a local VM: local ports + unicast replication. Unknown
        # unicast is replicated too, but reaches no local VM: the vSwitch
        # delivers unicast by destination MAC, and no port here has it.
        replicate = encapsulate(tables, tables.replication(here, vni), tunnel.ofport)
        flood = tuple(to_local + replicate)
        flows.append(_flow(Table.L2, Priority.MULTICAST, {**from_vm, "eth_dst": MULTICAST}, flood))
        flows.append(_flow(Table.L2, Priority.DEFAULT, from_vm, tuple(replicate)))
        # BUM from the tunnel: local ports; as the UTEP, a frame from another
        # subnet is also copied to this subnet's other VTEPs (back out of the
        # tunnel port it came in on).
        mine = tables.vteps[here].subnet
        relay = encapsulate(tables, tables.local_replication(here, vni), "in_port")
        flows.append(
            _flow(
                Table.L2,
                Priority.TUNNEL_MULTICAST,
                {**from_tunnel, "eth_dst": MULTICAST},
                tuple(to_local + relay),
            )
        )
        if relay:
            flows.append(
                _flow(
                    Table.L2,
                    Priority.TUNNEL_MULTICAST_OWN_SUBNET,
                    {
                        **from_tunnel,
                        "eth_dst": MULTICAST,
                        "tun_ipv4_src": (str(mine.network_address), str(mine.netmask)),
                    },
                    tuple(to_local),
                )
            )
        # Unknown unicast from the tunnel: no port here has its MAC, so no VM gets it.
        flows.append(_flow(Table.L2, Priority.TUNNEL_DEFAULT, from_tunnel))
    # Logical switches with no port here that the distributed router routes
    # into: only their VMs' MACs are needed, each at its VTEP.
    for vni in sorted(tables.routed_vnis(vnis)):
        for (v, mac), host in sorted(tables.mac_table.items()):
            if v == vni and host != here:
                flows.append(
                    _flow(
                        Table.L2,
                        Priority.EXACT,
                        {"tunnel_id": vni, "eth_dst": mac},
                        encapsulate(tables, [host], tunnel.ofport),
                    )
                )
    return flows


def compile_overlay(binding: SwitchBinding, tables: NsxTables) -> list[FlowSpec]:
    """The logical-switching flows of ``binding``'s bridge (none unless it
    carries the host's VTEP)."""
    tunnel = binding.tunnel_port()
    if tunnel is None:
        return []
    return _ingress(binding, tables, tunnel) + _l2(binding, tables, tunnel)

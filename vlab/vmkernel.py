"""The VMkernel TCP/IP stacks of one ESXi host, as Linux routing in the host
namespace.

* The **default stack** is the main routing table: each vmk's connected
  subnet, and the default gateway of the default-stack vmk that has one. Egress
  is chosen by destination, as on ESXi: a reply to a peer in a vmk's subnet
  leaves through that vmk even when the connection came in on another one,
  and keeps the source address the peer connected to (seed 000).
* **Custom stacks** (vmotion, provisioning) have their own table: their vmks'
  subnets and gateway live only there, and only traffic from their addresses
  uses it (a rule per address), so the default stack never routes through
  them.
* The **VXLAN stack** (the VTEP) keeps its subnet in the main table and
  reaches the lab's other VTEP subnets through its gateway.
* ``egress: source`` on the host is the contrasting variant: strict
  source-based egress, a table per default-stack vmk selected by source
  address, so replies leave through the vmk that owns their source address.

Reverse-path filtering is off: ESXi has none, and asymmetric paths (request
in on vmk0, reply out on vmk4) are the point of seed 000.

``routing_commands(host)`` returns the ``ip`` commands, in order, for a host
namespace whose vmk interfaces already exist (pure, so it is unit-tested).
"""

from __future__ import annotations

from ipaddress import IPv4Interface

from .lab.model import EsxiHost

STACK_TABLE = {"vmotion": 1001, "provisioning": 1002}
SOURCE_TABLE_BASE = 2000
RULE_PRIORITY = 1000


def _subnet(ip: IPv4Interface) -> str:
    return str(ip.network)


def routing_commands(host: EsxiHost, transport_subnets: tuple[str, ...] = ()) -> list[str]:
    """``transport_subnets``: the lab's other VTEP subnets, which the VXLAN
    stack reaches through its gateway."""
    cmds = ["sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0"]
    for vmk in host.vmkernel:
        cmds.append(f"sysctl -qw net.ipv4.conf.{vmk.name}.rp_filter=0")
        cmds.append(f"ip addr add {vmk.ip} dev {vmk.name}")
        cmds.append(f"ip link set {vmk.name} up")
    for i, vmk in enumerate(host.vmkernel):
        if vmk.stack == "default":
            if vmk.gateway is not None:
                cmds.append(f"ip route replace default via {vmk.gateway} dev {vmk.name}")
            if host.egress == "source":
                table = SOURCE_TABLE_BASE + i
                cmds.append(
                    f"ip route replace {_subnet(vmk.ip)} dev {vmk.name} src {vmk.ip.ip} table {table}"
                )
                gateway = vmk.gateway or _default_gateway_in(host, vmk.ip)
                if gateway is not None:
                    cmds.append(f"ip route replace default via {gateway} dev {vmk.name} table {table}")
                cmds.append(f"ip rule add from {vmk.ip.ip} lookup {table} priority {RULE_PRIORITY + i}")
            continue
        if vmk.stack == "vxlan":
            # The VXLAN stack stays in the main table: OVS's userspace tunnels
            # route by it (OVS reads only the main table). Only the transport
            # subnets go through its gateway, never the default route.
            for subnet in transport_subnets:
                if vmk.gateway is not None and subnet != _subnet(vmk.ip):
                    cmds.append(f"ip route replace {subnet} via {vmk.gateway} dev {vmk.name}")
            continue
        table = STACK_TABLE[vmk.stack]
        # The kernel put the connected route in the main table: move it to
        # the stack's own table.
        cmds.append(f"ip route del {_subnet(vmk.ip)} dev {vmk.name} table main")
        cmds.append(f"ip route replace {_subnet(vmk.ip)} dev {vmk.name} src {vmk.ip.ip} table {table}")
        if vmk.gateway is not None:
            cmds.append(f"ip route replace default via {vmk.gateway} dev {vmk.name} table {table}")
        cmds.append(f"ip rule add from {vmk.ip.ip} lookup {table} priority {RULE_PRIORITY + i}")
    return cmds


def _default_gateway_in(host: EsxiHost, ip: IPv4Interface):
    """The default stack's gateway, if it lies in ``ip``'s subnet."""
    for vmk in host.vmkernel:
        if vmk.stack == "default" and vmk.gateway is not None and vmk.gateway in ip.network:
            return vmk.gateway
    return None

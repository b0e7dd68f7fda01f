"""The cables of a lab, as Mininet links between its nodes.

* control links   ESXi host ``CONTROL_IFACE`` <-> ``mgmt`` (out of band,
                  like vmk0 to vCenter), unshaped;
* uplinks         ESXi host vmnicN <-> its physical switch port in
                  ``fabric``, shaped to the uplink's speed (htb, TCLink);
* vNICs           VM interface <-> its vSwitch port in the ESXi host, with
                  the vNIC's MAC;
* host cables     router/firewall/plain-host interface <-> switch port;
* DCI links       switch port <-> switch port, both ends in ``fabric``,
                  shaped to the link's speed.

Speeds are the lab's (``gbps``) times its ``link_scale``.
"""

from __future__ import annotations

from mininet.link import Link, TCLink
from mininet.log import setLogLevel
from mininet.net import Mininet

from vlab import naming
from vlab.lab.model import Lab
from vlab.lab.resolve import link_mbps


def add_links(net: Mininet, lab: Lab) -> None:
    """Cable every node of ``lab`` (the nodes exist in ``net``)."""
    node = net.get
    mgmt, fabric = node(naming.MGMT_NODE), node(naming.FABRIC_NODE)
    # Mininet logs tc's harmless "htb quantum is big" notice as an error.
    setLogLevel("critical")
    for host in lab.esxi_hosts:
        net.addLink(
            node(host.name),
            mgmt,
            cls=Link,
            intfName1=naming.CONTROL_IFACE,
            intfName2=naming.control_port(host.name),
        )
        for up in host.uplinks:
            net.addLink(
                node(host.name),
                fabric,
                cls=TCLink,
                intfName1=up.name,
                intfName2=naming.fabric_port(up.switch, up.port),
                bw=link_mbps(lab, up.speed),
            )
    for vm in lab.vms:
        for nic in vm.vnics:
            net.addLink(
                node(vm.name),
                node(vm.host),
                cls=Link,
                intfName1=nic.name,
                intfName2=naming.vnic_port(vm.name, nic.name),
                addr1=nic.mac,
            )
    for h in lab.hosts:
        for intf in h.interfaces:
            params = {"addr1": intf.mac} if intf.mac else {}
            net.addLink(
                node(h.name),
                fabric,
                cls=Link,
                intfName1=intf.name,
                intfName2=naming.fabric_port(intf.switch, intf.port),
                **params,
            )
    for link in lab.dci_links:
        # Both ends are in the fabric node: number its ports explicitly, or
        # Mininet gives both ends the same one and teardown trips over it.
        port = fabric.newPort()
        net.addLink(
            fabric,
            fabric,
            cls=TCLink,
            port1=port,
            port2=port + 1,
            intfName1=naming.fabric_port(link.a.switch, link.a.port),
            intfName2=naming.fabric_port(link.b.switch, link.b.port),
            bw=link_mbps(lab, link.speed),
        )
    setLogLevel("error")


def disable_tx_offload(net: Mininet) -> None:
    """TX checksum offload off on every interface: veth TX checksum offload
    with the userspace datapath stalls TCP (README, "Design notes")."""
    for n in net.hosts:
        names = [i for i in n.intfNames() if i != "lo"]
        if names:
            n.cmd("; ".join(f"ethtool -K {i} tx off >/dev/null 2>&1" for i in names))

"""The physical network: every physical switch of a lab as a standalone
(MAC-learning) bridge of one more OVS instance, in the ``fabric`` node.

This is physical-switch configuration, as a network engineer would type it
on the switches, not vSwitch forwarding (the controller owns that, and never
programs these bridges):

* ports     access (a host interface's VLAN, or the port's ``vlan``) or
            trunk (``allowed_vlans``), at the switch's MTU;
* LAGs      static EtherChannels (no LACP, hash by L2 source: OVS
            ``balance-slb``) or LACP port channels (OVS's LACP, hash by
            L3/L4: ``balance-tcp``);
* SPAN      local port mirroring sessions (OVS mirrors);
* ACLs      the FHRP isolation filter on each end of a DCI link: an inbound
            port ACL that keeps the first-hop gateway addresses local to
            each site (see ``fhrp_isolation_acls``). These are the only
            flows on the physical switches; standalone bridges keep their
            normal learning pipeline below them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from mininet.node import Host

from vlab import naming
from vlab.lab.model import Lab, Lag, PhysicalSwitch
from vlab.ovs import KEEP_QDISC_RECORD, OvsInstance, keep_qdisc, parse_mdb

# Datapath flow idle time on the physical switches. A hardware switch learns
# a source MAC from every frame; OVS learns it on an upcall, and later only
# from the revalidator's stats push (every 500 ms). A MAC moving back to a
# port whose datapath flow is still cached (default max-idle 10 s: a VM
# vMotioned back and forth) then stays on its old port for up to 500 ms.
# Evicting idle flows after 500 ms (the documented minimum) makes a moved
# MAC's first frame an upcall, so it is learned at once: measured by
# `vlab bench` (vMotion blackout 229 -> ~15 ms median).
FABRIC_MAX_IDLE_MS = 500
ACL_PRIORITY = 1000  # above the standalone bridge's NORMAL flow (priority 0)


@dataclass(frozen=True)
class PortAcl:
    """One deny entry of a physical switch port's inbound ACL."""

    switch: str
    port: int
    match: str  # in ovs-ofctl's match syntax
    why: str

    def flow(self) -> str:
        port = naming.fabric_port(self.switch, self.port)
        return f"priority={ACL_PRIORITY},in_port={port},{self.match},actions=drop"


def fhrp_isolation_acls(lab: Lab) -> list[PortAcl]:
    """FHRP isolation on a stretched L2: each end of a DCI link drops, as it
    arrives, every frame from or to an isolated gateway's virtual MAC and
    every ARP for its virtual IP, so each site keeps its own active gateway
    (the filter a vMSC design puts on the DCI)."""
    acls = []
    for link in lab.dci_links:
        for end in (link.a, link.b):
            for gw in link.isolate:
                why = f"FHRP isolation of {gw.ip} on the DCI"
                acls += [
                    PortAcl(end.switch, end.port, f"dl_src={gw.mac}", why),
                    PortAcl(end.switch, end.port, f"dl_dst={gw.mac}", why),
                    PortAcl(end.switch, end.port, f"arp,arp_spa={gw.ip}", why),
                    PortAcl(end.switch, end.port, f"arp,arp_tpa={gw.ip}", why),
                ]
    return acls


def plugged_ports(lab: Lab) -> dict[str, dict[int, Optional[int]]]:
    """switch -> {port: access VLAN from a host interface, or None} for every
    switch port with a cable in it."""
    out: dict[str, dict[int, Optional[int]]] = {}
    for host in lab.esxi_hosts:
        for up in host.uplinks:
            out.setdefault(up.switch, {})[up.port] = None
    for h in lab.hosts:
        for intf in h.interfaces:
            out.setdefault(intf.switch, {})[intf.port] = intf.vlan
    for link in lab.dci_links:
        for end in (link.a, link.b):
            out.setdefault(end.switch, {})[end.port] = None
    return out


def span_commands(sw: PhysicalSwitch, plugged) -> list[str]:
    """SPAN sessions as OVS mirrors (tx = frames the switch sends out of
    a source port = OVS select_dst_port)."""
    cmds = []
    for span in sw.spans:
        if span.destination not in plugged:
            continue
        sources = [naming.fabric_port(sw.name, p) for p in span.source_ports if p in plugged]
        ids = ",".join(f"@{span.name}{i}" for i in range(len(sources)))
        for i, src in enumerate(sources):
            cmds += ["--", f"--id=@{span.name}{i}", "get", "port", src]
        dst = naming.fabric_port(sw.name, span.destination)
        cmds += [
            "--",
            f"--id=@{span.name}out",
            "get",
            "port",
            dst,
            "--",
            f"--id=@{span.name}",
            "create",
            "mirror",
            f"name={span.name}",
            f"output_port=@{span.name}out",
        ]
        if span.direction in ("tx", "both"):
            cmds.append(f"select_dst_port={ids}")
        if span.direction in ("rx", "both"):
            cmds.append(f"select_src_port={ids}")
        cmds += ["--", "add", "bridge", sw.name, "mirrors", f"@{span.name}"]
    return cmds


def lag_settings(lag: Lag) -> list[str]:
    """The OVS bond settings of a port channel (after its add-bond)."""
    if lag.lacp == "off":
        # A static EtherChannel ("channel-group mode on"): no LACP, frames
        # to the host hashed by L2 source (balance-slb), and broadcast and
        # multicast accepted on every member, as a port channel does (an
        # OVS bond without LACP takes them only on its active member, so
        # an IP-hash team's broadcasts on the other member would vanish).
        return ["bond_mode=balance-slb", "lacp=off", "other_config:all-members-active=true"]
    # An LACP port channel ("mode active|passive"): OVS's 802.1AX actor,
    # frames to the host hashed by L3/L4 (balance-tcp, which needs LACP).
    # No fallback: a channel whose LACP never negotiates carries nothing.
    return ["bond_mode=balance-tcp", f"lacp={lag.lacp}", f"other_config:lacp-time={lag.lacp_rate or 'slow'}"]


def switch_commands(lab: Lab, sw: PhysicalSwitch, plugged: dict[int, Optional[int]]) -> list[str]:
    """One ovs-vsctl transaction that creates switch ``sw``: bridge, ports,
    LAGs and SPAN sessions."""
    cmds = [
        "--",
        "add-br",
        sw.name,
        "--",
        "set",
        "bridge",
        sw.name,
        f"datapath_type={lab.datapath}",
        "fail_mode=standalone",
        f"other_config:mac-aging-time={sw.mac_aging}",
        f"mcast_snooping_enable={'true' if sw.igmp_snooping else 'false'}",
        f"other_config:mcast-snooping-aging-time={sw.igmp_aging}",
    ]
    if sw.rspan_vlans:
        cmds.append("flood_vlans=" + ",".join(map(str, sw.rspan_vlans)))
    config = {p.port: p for p in sw.ports}
    in_lag = {p for lag in sw.lags for p in lag.ports}
    for port, access_vlan in sorted(plugged.items()):
        if port in in_lag:
            continue
        name = naming.fabric_port(sw.name, port)
        cmds += ["--", "add-port", sw.name, name, "--", "set", "interface", name, f"mtu_request={sw.mtu}"]
        cmds += keep_qdisc(name)
        cfg = config.get(port)
        vlan = access_vlan or (cfg.vlan if cfg and cfg.mode == "access" else None)
        if vlan:
            cmds += ["--", "set", "port", name, f"tag={vlan}"]
        elif cfg and cfg.allowed_vlans:
            # Untagged frames on a trunk are its native VLAN, which OVS calls
            # VLAN 0: carried on every trunk, as a switch's default native
            # VLAN is, so an EST port group behind a pruned trunk still works.
            cmds += ["--", "set", "port", name, "trunks=" + ",".join(map(str, (0, *cfg.allowed_vlans)))]
    for lag in sw.lags:
        members = [naming.fabric_port(sw.name, p) for p in lag.ports if p in plugged]
        if len(members) >= 2:
            cmds += ["--", "add-bond", sw.name, naming.lag_port(sw.name, lag.name), *members]
            cmds += lag_settings(lag) + keep_qdisc(naming.lag_port(sw.name, lag.name))
    return cmds + span_commands(sw, plugged)


class PhysicalNetwork:
    """The physical switches of a lab, running in the ``fabric`` node."""

    def __init__(self, node: Host, run_dir: Path, lab: Lab):
        self.node, self.lab = node, lab
        self.ovs = OvsInstance(node, Path(run_dir) / "fabric")

    def start(self) -> None:
        self.ovs.start()
        self.ovs.vsctl("set", "Open_vSwitch", ".", f"other_config:max-idle={FABRIC_MAX_IDLE_MS}")
        plugged = plugged_ports(self.lab)
        for sw in self.lab.physical_switches:
            ports = plugged.get(sw.name, {})
            for port in sorted(ports):
                self.node.cmd(f"ip link set {naming.fabric_port(sw.name, port)} mtu {sw.mtu}")
            self.ovs.vsctl(*switch_commands(self.lab, sw, ports), *KEEP_QDISC_RECORD)
        for acl in fhrp_isolation_acls(self.lab):
            self.ovs.ofctl("add-flow", acl.switch, acl.flow())

    # -- what `show mac address-table` and friends would print ---------------
    def mac_table(self, switch: str) -> list[dict]:
        """A physical switch's MAC table: [{port, vlan, mac, age}], port by name."""
        numbers = self.ovs.port_names(switch)
        rows = []
        for line in self.ovs.appctl("fdb/show", switch).splitlines()[1:]:
            port, vlan, mac, age = line.split()
            rows.append({"port": numbers.get(port, port), "vlan": int(vlan), "mac": mac, "age": int(age)})
        return rows

    def snooped_groups(self, switch: str) -> list[dict]:
        """A physical switch's IGMP snooping table: [{port, vlan, group, age}]."""
        numbers = self.ovs.port_names(switch)
        return [
            {**r, "port": numbers.get(r["port"], r["port"])}
            for r in parse_mdb(self.ovs.appctl("mdb/show", switch))
        ]

    def counters(self, switch: str) -> dict[str, dict[str, int]]:
        """Per-port counters of a physical switch (rx/tx packets, bytes, drops)."""
        out = json.loads(self.ovs.vsctl("--format=json", "--columns=name,statistics", "list", "interface"))
        return {name: dict(stats[1]) for name, stats in out["data"] if name.startswith(f"{switch}-")}

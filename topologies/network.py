"""Turn a lab into a running Mininet network, and tear it down.

Nodes (all Mininet hosts, i.e. network namespaces):

* ``mgmt``    the management network: runs the os-ken controller (the vCenter /
              NSX Manager stand-in), reached by each ESXi host over its own
              point-to-point control link (out of band, like vmk0 to vCenter).
* ESXi hosts  each runs its own ovsdb-server + ovs-vswitchd; one bridge per
              vSwitch, fail mode ``secure``; uplinks vmnicN, VMkernel adapters
              as internal ports whose IPs live in the host namespace.
* ``fabric``  every physical switch, as a standalone (MAC-learning) bridge of
              one more OVS instance.
* VMs, routers, plain hosts: real Linux stacks.

This module builds and wires; it holds no forwarding logic (that is the
controller's). ``LabNetwork.start`` returns only once every vSwitch is
connected, holds exactly its compiled flows, and a probe ping succeeds.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from ipaddress import IPv4Interface
from pathlib import Path
from typing import Callable, Optional

from mininet.link import Link, TCLink
from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import Host

from controller import dfw
from vlab import control, naming, perimeter
from vlab.bindings import MIRROR_PORTS, SwitchBinding, switch_bindings
from vlab.lab.model import Lab
from vlab.lab.resolve import vtep_of
from vlab.operations import LabControl
from vlab.ovs import OvsInstance, parse_mdb
from vlab.reachability import Endpoint, endpoints, expected_reachability
from vlab.runtime import Run
from vlab.vmkernel import routing_commands

LOG = logging.getLogger("vlab.topology")
CONTROLLER_PORT = 6653
FABRIC_MAX_IDLE_MS = 500  # datapath flow idle time on the physical switches (see _start_fabric)


class NotReady(RuntimeError):
    """Bring-up did not reach a ready state in time; the message says what is missing."""


# The whole bring-up may take this many times the readiness timeout; past
# it, whatever step is running is interrupted (SIGALRM) with one NotReady.
BRINGUP_LIMIT_FACTOR = 3


@contextmanager
def time_limit(seconds: float, step: Callable[[], str]):
    """Raise NotReady in the main thread if the block runs longer than
    ``seconds``, naming the ``step()`` it was in; blocking reads and waits are
    interrupted too. Outside the main thread (no signals there) it only runs
    the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum, frame):
        raise NotReady(f"bring-up did not finish in {seconds:g}s: stuck {step()}")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def wait_until(check: Callable[[], Optional[str]], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``check`` (returns None when satisfied, else what is still missing)."""
    deadline = time.monotonic() + timeout
    missing = check()
    while missing is not None:
        if time.monotonic() > deadline:
            raise NotReady(f"{what}: not ready after {timeout:.0f}s: {missing}")
        time.sleep(interval)
        missing = check()


def control_addresses(index: int) -> tuple[str, str]:
    """(/30 on the mgmt side, /30 on the host side) of host ``index``'s control link."""
    base = (100 << 24) | (64 << 16) | (index * 4)  # 100.64.0.0/16, one /30 each
    ip = lambda n: ".".join(str((n >> s) & 0xFF) for s in (24, 16, 8, 0))  # noqa: E731
    return f"{ip(base + 1)}/30", f"{ip(base + 2)}/30"


# OVS resets a port's qdisc when it adds the port, which would silently undo
# Mininet's htb shaping (TCLink). QoS type linux-noop tells OVS that traffic
# control on the port is managed by someone else.
KEEP_QDISC_RECORD = ("--", "--id=@keepqdisc", "create", "qos", "type=linux-noop")


def keep_qdisc(port: str) -> list[str]:
    return ["--", "set", "port", port, "qos=@keepqdisc"]


def isolation_flows(port: str, gateways) -> list[str]:
    """Flows on a DCI port's switch that keep first-hop gateway addresses
    local to each site (applied at both ends: each drops what arrives)."""
    flows = []
    for gw in gateways:
        flows += [
            f"priority=1000,in_port={port},dl_src={gw.mac},actions=drop",
            f"priority=1000,in_port={port},dl_dst={gw.mac},actions=drop",
            f"priority=1000,in_port={port},arp,arp_spa={gw.ip},actions=drop",
            f"priority=1000,in_port={port},arp,arp_tpa={gw.ip},actions=drop",
        ]
    return flows


def mirror_interface(name: str) -> list[str]:
    """OVS interface settings of a port mirroring tunnel port: ERSPAN type II
    (OVS erspan_ver=1) or GRE; the destination and the session ID (GRE key)
    come from each copy's flow; the outer source address and the way out
    from the host's routing table (its VMkernel adapters)."""
    encapsulation = next(e for e, (n, _) in MIRROR_PORTS.items() if n == name)
    extra = ["options:erspan_ver=1", "options:erspan_idx=0"] if encapsulation == "erspan" else []
    return [f"type={encapsulation}", "options:remote_ip=flow", "options:key=flow", *extra]


def mirror_destinations(lab: Lab, bindings) -> dict[str, list[str]]:
    """ESXi host -> the ERSPAN destination IPs its mirror ports send to."""
    out: dict[str, list[str]] = {}
    for b in bindings:
        if not any(p.kind == "mirror" for p in b.ports):
            continue
        dvs = next(d for d in lab.distributed_switches if d.name == b.bridge)
        ips = sorted({str(m.destination_ip) for m in dvs.mirrors if m.type == "erspan"})
        out.setdefault(b.host, [])
        out[b.host] += [ip for ip in ips if ip not in out[b.host]]
    return out


def link_mbps(lab: Lab, gbps: float) -> float:
    return gbps * 1000 * lab.link_scale


class LabNetwork:
    """A lab brought up on this machine."""

    def __init__(self, lab: Lab, lab_file: Path, run: Run):
        self.lab, self.lab_file, self.run = lab, Path(lab_file).resolve(), run
        self.net: Optional[Mininet] = None
        self.ovs: dict[str, OvsInstance] = {}  # node name -> its OVS instance
        self.bindings: tuple[SwitchBinding, ...] = switch_bindings(lab)
        self.controller_proc: Optional[subprocess.Popen] = None
        self.last_restart: dict[str, float] = {}
        self.timings: dict[str, float] = {}
        self.control: Optional[LabControl] = None  # operations, once started
        self._t0 = 0.0

    # -- public -----------------------------------------------------------
    def start(self, timeout: float = 60.0) -> "LabNetwork":
        if self.lab.datapath == "system" and not Path("/sys/module/openvswitch").exists():
            raise NotReady(
                f"{self.lab_file}: datapath: system needs the openvswitch kernel "
                "module, which is not loaded here; use datapath: netdev"
            )
        self._t0 = t0 = time.monotonic()
        setLogLevel("error")
        step = ["creating the nodes (Mininet, mnexec)"]
        # Every step gets a limit, the ones that wait for nothing too: when
        # mnexec cannot start a node's shell, Mininet's startShell blocks
        # forever reading from it.
        with time_limit(BRINGUP_LIMIT_FACTOR * timeout, lambda: step[0]):
            self.net = Mininet(topo=None, build=False, controller=None)
            self._add_nodes()
            self._write_nodes()
            step[0] = "linking the nodes"
            self._add_links()
            self._disable_tx_offload()
            step[0] = "starting the controller and the physical switches"
            self._start_controller()
            self._start_fabric()
            self._wait_controller_listening(timeout)
            for host in self.lab.esxi_hosts:
                step[0] = f"starting {host.name}'s Open vSwitch"
                self._start_esxi(host)
            step[0] = "configuring the guests"
            self._configure_guests()
            self.timings["build_s"] = time.monotonic() - t0
            step[0] = "waiting for the controller to program every switch"
            self._wait_ready(timeout)
        self.timings["bringup_s"] = time.monotonic() - t0
        self.control = LabControl(self.run.dir)
        return self

    def stop(self) -> None:
        """Tear everything down; safe to call on a half-built network."""
        if self.controller_proc is not None and self.controller_proc.poll() is None:
            self.controller_proc.terminate()
            try:
                self.controller_proc.wait(5)
            except subprocess.TimeoutExpired:
                self.controller_proc.kill()
        for inst in self.ovs.values():
            try:
                inst.stop()
            except Exception as exc:  # keep tearing down the rest
                LOG.warning("stopping OVS of %s: %s", inst.node.name, exc)
        if self.net is not None:
            try:
                self.net.stop()
            except Exception as exc:
                # e.g. a shell interrupted mid-command (bring-up's time limit
                # fired inside Mininet) refuses new commands: expected, and
                # handled here, so not the user's business (a warning would
                # print between them and the one line that says what failed).
                # Run.remove() still kills every process of the run, and the
                # namespaces and veths go with them.
                LOG.debug("mininet stop: %r", exc)
                self._hang_up_shells()
            self.net = None

    def _hang_up_shells(self) -> None:
        """What Mininet's stop() ends with, for when it failed before: SIGHUP
        to every node's shell (``bash -is`` ignores SIGTERM, so the run's
        cleanup would wait its whole grace time for them)."""
        import os
        import signal

        for node in self.net.hosts:
            shell = getattr(node, "shell", None)
            if shell is not None and shell.poll() is None:
                try:
                    os.killpg(shell.pid, signal.SIGHUP)
                except ProcessLookupError:
                    pass

    def node(self, name: str) -> Host:
        return self.net.get(name)

    def mac_table(self, switch: str) -> list[dict]:
        """A physical switch's MAC table: [{port, vlan, mac, age}], port by name."""
        inst = self.ovs[naming.FABRIC_NODE]
        numbers = inst.port_names(switch)
        rows = []
        for line in inst.appctl("fdb/show", switch).splitlines()[1:]:
            port, vlan, mac, age = line.split()
            rows.append({"port": numbers.get(port, port), "vlan": int(vlan), "mac": mac, "age": int(age)})
        return rows

    def snooped_groups(self, switch: str) -> list[dict]:
        """A physical switch's IGMP snooping table: [{port, vlan, group, age}]."""
        inst = self.ovs[naming.FABRIC_NODE]
        numbers = inst.port_names(switch)
        return [
            {**r, "port": numbers.get(r["port"], r["port"])}
            for r in parse_mdb(inst.appctl("mdb/show", switch))
        ]

    def switch_counters(self, switch: str) -> dict[str, dict[str, int]]:
        """Per-port counters of a physical switch (rx/tx packets, bytes, drops)."""
        inst = self.ovs[naming.FABRIC_NODE]
        out = json.loads(inst.vsctl("--format=json", "--columns=name,statistics", "list", "interface"))
        counters = {}
        for name, stats in out["data"]:
            if name.startswith(f"{switch}-"):
                counters[name] = dict(stats[1])
        return counters

    def endpoints(self) -> list[Endpoint]:
        return endpoints(self.lab)

    def ping(self, src: Endpoint, dst: Endpoint, count: int = 2, wait: float = 1.0) -> bool:
        """True when ``src`` gets at least one echo reply from ``dst``."""
        out = self.node(src.node).cmd(
            f"ping -n -q -c {count} -i 0.2 -W {wait} -I {src.ip.ip} {dst.ip.ip} >/dev/null 2>&1; echo rc=$?"
        )
        return out.strip().endswith("rc=0")

    # -- build ------------------------------------------------------------
    def _add_host(self, name: str) -> Host:
        return self.net.addHost(name, cls=Host, ip=None, inNamespace=True)

    def _add_nodes(self) -> None:
        self._add_host(naming.MGMT_NODE)
        self._add_host(naming.FABRIC_NODE)
        for group in (self.lab.esxi_hosts, self.lab.vms, self.lab.hosts):
            for item in group:
                self._add_host(item.name)

    def _write_nodes(self) -> None:
        """Node PIDs for the controller's hostd and for ``LabControl``. IPv6 is
        off in every node: an IPv4 testbed, and captures without IPv6 chatter."""
        for node in self.net.hosts:
            node.cmd("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
        control.write_json(
            self.run.dir / control.NODES,
            {"lab_file": str(self.lab_file), "pids": {n.name: n.pid for n in self.net.hosts}},
        )

    def _add_links(self) -> None:
        net, lab = self.net, self.lab
        mgmt, fabric = self.node(naming.MGMT_NODE), self.node(naming.FABRIC_NODE)
        # Mininet logs tc's harmless "htb quantum is big" notice as an error.
        setLogLevel("critical")
        for host in lab.esxi_hosts:
            net.addLink(
                self.node(host.name),
                mgmt,
                cls=Link,
                intfName1=naming.CONTROL_IFACE,
                intfName2=naming.control_port(host.name),
            )
            for up in host.uplinks:
                net.addLink(
                    self.node(host.name),
                    fabric,
                    cls=TCLink,
                    intfName1=up.name,
                    intfName2=naming.fabric_port(up.switch, up.port),
                    bw=link_mbps(lab, up.speed),
                )
        for vm in lab.vms:
            for nic in vm.vnics:
                net.addLink(
                    self.node(vm.name),
                    self.node(vm.host),
                    cls=Link,
                    intfName1=nic.name,
                    intfName2=naming.vnic_port(vm.name, nic.name),
                    addr1=nic.mac,
                )
        for h in lab.hosts:
            for intf in h.interfaces:
                params = {"addr1": intf.mac} if intf.mac else {}
                net.addLink(
                    self.node(h.name),
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

    def _disable_tx_offload(self) -> None:
        # veth TX checksum offload + userspace datapath = stalled TCP (README, "Design notes").
        for node in self.net.hosts:
            names = [i for i in node.intfNames() if i != "lo"]
            if names:
                node.cmd("; ".join(f"ethtool -K {n} tx off >/dev/null 2>&1" for n in names))

    # -- management network and controller ----------------------------------
    def _start_controller(self) -> None:
        mgmt = self.node(naming.MGMT_NODE)
        for i, host in enumerate(self.lab.esxi_hosts):
            mine, theirs = control_addresses(i)
            mgmt.cmd(f"ip addr add {mine} dev {naming.control_port(host.name)}")
            esx = self.node(host.name)
            esx.cmd(f"ip addr add {theirs} dev {naming.CONTROL_IFACE}")
        self._spawn_controller()

    def _spawn_controller(self) -> None:
        mgmt = self.node(naming.MGMT_NODE)
        log = open(self.run.dir / "controller.log", "a")
        self.controller_proc = mgmt.popen(
            [
                sys.executable,
                "-m",
                "controller",
                "--lab",
                str(self.lab_file),
                "--state",
                str(self.run.dir),
                "--port",
                str(CONTROLLER_PORT),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(Path(__file__).resolve().parents[1]),
        )

    def restart_controller(self, kill: bool = True, timeout: float = 20.0) -> float:
        """Crash (SIGKILL) or stop the controller (if it still runs) and start
        a new one; return
        the seconds from the new start until every switch is resynced. The
        switches keep forwarding meanwhile (fail mode secure keeps flows)."""
        old = self.controller_proc
        if old.poll() is None:
            old.kill() if kill else old.terminate()
        old.wait(10)
        markers = {b.dpid: naming.synced_marker(self.run.dir, b.dpid) for b in self.bindings}
        before = {d: m.stat().st_mtime_ns if m.exists() else 0 for d, m in markers.items()}
        t0 = time.monotonic()
        self._spawn_controller()
        self._wait_controller_listening(timeout)
        # Where a resync's time goes: the new process's start (imports, lab)
        # until it listens, then the switches' reconnect backoff and flows.
        self.last_restart = {"listening_s": time.monotonic() - t0}

        def resynced() -> Optional[str]:
            self._check_controller_alive()
            stale = [
                f"{b.host}/{b.bridge}"
                for b in self.bindings
                if not markers[b.dpid].exists() or markers[b.dpid].stat().st_mtime_ns == before[b.dpid]
            ]
            return f"not resynced: {', '.join(stale)}" if stale else None

        wait_until(resynced, timeout, "controller resync")
        return time.monotonic() - t0

    def _wait_controller_listening(self, timeout: float) -> None:
        mgmt = self.node(naming.MGMT_NODE)

        def listening() -> Optional[str]:
            self._check_controller_alive()
            out = mgmt.cmd(f"ss -Hltn 'sport = :{CONTROLLER_PORT}'")
            return None if "LISTEN" in out else f"nothing listens on port {CONTROLLER_PORT}"

        wait_until(listening, timeout, "controller start")

    # -- physical switches --------------------------------------------------
    def _start_fabric(self) -> None:
        fabric = self.node(naming.FABRIC_NODE)
        inst = self.ovs[naming.FABRIC_NODE] = OvsInstance(fabric, self.run.dir / "fabric")
        inst.start()
        # A hardware switch learns a source MAC from every frame; OVS learns
        # it on an upcall, and later only from the revalidator's stats push
        # (every 500 ms). A MAC moving back to a port whose datapath flow is
        # still cached (default max-idle 10 s: a VM vMotioned back and forth)
        # then stays on its old port for up to 500 ms. Evicting idle flows
        # after 500 ms (the documented minimum) makes a moved MAC's first
        # frame an upcall, so it is learned at once: measured by `vlab bench`
        # (vMotion blackout 229 -> ~15 ms median).
        inst.vsctl("set", "Open_vSwitch", ".", f"other_config:max-idle={FABRIC_MAX_IDLE_MS}")
        plugged = self._fabric_ports()
        for sw in self.lab.physical_switches:
            cmds = [
                "--",
                "add-br",
                sw.name,
                "--",
                "set",
                "bridge",
                sw.name,
                f"datapath_type={self.lab.datapath}",
                "fail_mode=standalone",
                f"other_config:mac-aging-time={sw.mac_aging}",
                f"mcast_snooping_enable={'true' if sw.igmp_snooping else 'false'}",
                f"other_config:mcast-snooping-aging-time={sw.igmp_aging}",
            ]
            config = {p.port: p for p in sw.ports}
            in_lag = {p for lag in sw.lags for p in lag.ports}
            for port, access_vlan in sorted(plugged.get(sw.name, {}).items()):
                name = naming.fabric_port(sw.name, port)
                fabric.cmd(f"ip link set {name} mtu {sw.mtu}")
                if port in in_lag:
                    continue
                cmds += [
                    "--",
                    "add-port",
                    sw.name,
                    name,
                    "--",
                    "set",
                    "interface",
                    name,
                    f"mtu_request={sw.mtu}",
                ] + keep_qdisc(name)
                cfg = config.get(port)
                vlan = access_vlan or (cfg.vlan if cfg and cfg.mode == "access" else None)
                if vlan:
                    cmds += ["--", "set", "port", name, f"tag={vlan}"]
                elif cfg and cfg.allowed_vlans:
                    cmds += ["--", "set", "port", name, "trunks=" + ",".join(map(str, cfg.allowed_vlans))]
            for lag in sw.lags:
                members = [naming.fabric_port(sw.name, p) for p in lag.ports if p in plugged.get(sw.name, {})]
                if len(members) >= 2:
                    # A static EtherChannel: no LACP, hash by L2 source.
                    cmds += [
                        "--",
                        "add-bond",
                        sw.name,
                        lag.name,
                        *members,
                        "bond_mode=balance-slb",
                        "lacp=off",
                    ]
            cmds += self._span_commands(sw, plugged.get(sw.name, {}))
            inst.vsctl(*cmds, *KEEP_QDISC_RECORD)
        for link in self.lab.dci_links:
            for end in (link.a, link.b):
                for flow in isolation_flows(naming.fabric_port(end.switch, end.port), link.isolate):
                    inst.ofctl("add-flow", end.switch, flow)

    @staticmethod
    def _span_commands(sw, plugged) -> list[str]:
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

    def _fabric_ports(self) -> dict[str, dict[int, Optional[int]]]:
        """switch -> {port: access VLAN from a host interface, or None}."""
        out: dict[str, dict[int, Optional[int]]] = {}
        for host in self.lab.esxi_hosts:
            for up in host.uplinks:
                out.setdefault(up.switch, {})[up.port] = None
        for h in self.lab.hosts:
            for intf in h.interfaces:
                out.setdefault(intf.switch, {})[intf.port] = intf.vlan
        for link in self.lab.dci_links:
            for end in (link.a, link.b):
                out.setdefault(end.switch, {})[end.port] = None
        return out

    # -- ESXi hosts -----------------------------------------------------------
    def _start_esxi(self, host) -> None:
        esx = self.node(host.name)
        inst = self.ovs[host.name] = OvsInstance(esx, self.run.dir / host.name)
        inst.start()
        mgmt_ip = self._mgmt_ip(host.name)
        for b in (b for b in self.bindings if b.host == host.name):
            br, mtu = b.bridge, b.switch.mtu
            # Secure fail mode and the controller first: no frame is switched
            # before the controller has programmed the bridge.
            cmds = [
                "--",
                "add-br",
                br,
                "--",
                "set",
                "bridge",
                br,
                f"datapath_type={self.lab.datapath}",
                "fail_mode=secure",
                "protocols=OpenFlow13",
                f"other_config:datapath-id={b.dpid:016x}",
                "other_config:disable-in-band=true",
                "--",
                "set-controller",
                br,
                f"tcp:{mgmt_ip}:{CONTROLLER_PORT}",
            ]
            for p in b.ports:
                if p.kind == "tunnel":
                    # Userspace VXLAN: the outer destination and VNI come from
                    # each flow (tun_dst, tun_id); OVS routes the outer packet
                    # from the VTEP's address through the VTEP vmk.
                    cmds += [
                        "--",
                        "add-port",
                        br,
                        p.name,
                        "--",
                        "set",
                        "interface",
                        p.name,
                        "type=vxlan",
                        f"ofport_request={p.ofport}",
                        "options:remote_ip=flow",
                        "options:key=flow",
                        f"options:local_ip={vtep_of(host).ip.ip}",
                    ]
                    continue
                if p.kind == "mirror":
                    cmds += [
                        "--",
                        "add-port",
                        br,
                        p.name,
                        "--",
                        "set",
                        "interface",
                        p.name,
                        *mirror_interface(p.name),
                        f"ofport_request={p.ofport}",
                    ]
                    continue
                cmds += [
                    "--",
                    "add-port",
                    br,
                    p.name,
                    "--",
                    "set",
                    "interface",
                    p.name,
                    f"ofport_request={p.ofport}",
                    f"mtu_request={mtu}",
                ]
                if p.kind == "vmk":
                    cmds += ["type=internal", f'mac="{p.mac}"']
                if p.kind == "uplink":
                    cmds += keep_qdisc(p.name)
            inst.vsctl(*cmds, *KEEP_QDISC_RECORD)
            # Reconnect quickly if the controller restarts (default backoff
            # is 8 s). Set on its own: set in the transaction that creates
            # the controller record, OVS kept backing off 2-4 s.
            inst.vsctl("set", "controller", br, "max_backoff=1000")
            for p in b.ports:
                if p.kind == "vmk":
                    esx.cmd(f"ethtool -K {p.name} tx off >/dev/null 2>&1")
                elif p.kind not in ("tunnel", "mirror"):
                    esx.cmd(f"ip link set {p.name} mtu {mtu} up")
        # The VMkernel TCP/IP stacks: addresses, routing tables, rules.
        transport = tuple(sorted({str(v.ip.network) for v in self._vteps().values()}))
        for cmd in routing_commands(host, transport):
            out = esx.cmd(f"{cmd} 2>&1; echo rc=$?").strip()
            if not out.endswith("rc=0"):
                raise NotReady(f"{host.name}: `{cmd}` failed: {out}")

    # -- guests -----------------------------------------------------------------
    def _configure_guests(self) -> None:
        for vm in self.lab.vms:
            node = self.node(vm.name)
            # A vMotion moves the vNIC's backend veth, which the guest sees as
            # a carrier drop, and Linux then empties its ARP cache. On ESXi the
            # guest sees no link event and its memory, ARP cache included,
            # moves intact; keep the cache across carrier changes (the sysctl
            # Wi-Fi roaming uses) so a moved guest does not re-ARP.
            node.cmd("sysctl -qw net.ipv4.conf.all.arp_evict_nocarrier=0")
            for nic in vm.vnics:
                self._address(node, nic.name, nic.ip)
                if nic.gateway is not None:
                    node.cmd(f"ip route replace default via {nic.gateway}")
        for h in self.lab.hosts:
            node = self.node(h.name)
            for intf in h.interfaces:
                node.cmd(f"ip link set {intf.name} mtu {intf.mtu}")
                self._address(node, intf.name, intf.ip)
                if intf.vip is not None:
                    self._virtual_gateway(node, intf)
            if h.kind in ("router", "firewall"):
                # Routes may be asymmetric (a stretched L2 with two exits):
                # no reverse-path filter, as on a data-centre router.
                node.cmd(
                    "sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 "
                    "net.ipv4.conf.default.rp_filter=0"
                )
            if h.firewall is not None:
                self._start_firewall(node, h)
            if h.gateway is not None:
                node.cmd(f"ip route replace default via {h.gateway}")
            for r in h.routes:
                node.cmd(f"ip route replace {r.to} via {r.via}")

    def _start_firewall(self, node: Host, h) -> None:
        rules = self.run.dir / f"{h.name}.nft"
        rules.write_text(perimeter.ruleset(self.lab, h.firewall))
        loose = 1 if h.firewall.tcp_loose else 0
        out = node.cmd(
            f"sysctl -qw net.netfilter.nf_conntrack_tcp_loose={loose} 2>&1; nft -f {rules} 2>&1; echo rc=$?"
        ).strip()
        if not out.endswith("rc=0"):
            raise NotReady(f"{h.name}: firewall rules not loaded: {out}")

    @staticmethod
    def _virtual_gateway(node: Host, intf) -> None:
        """The virtual gateway as a macvlan on the interface: frames to the
        virtual MAC land there and are routed. The device name is
        ``naming.virtual_gateway``, inside the router's own namespace. The address is a /32 so the
        subnet route (and the ARP the router sends) stays on the interface
        itself; arp_ignore/arp_announce keep each device answering only for
        its own address."""
        dev = naming.virtual_gateway(intf.name)
        out = node.cmd(
            f"sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2; "
            f"ip link add {dev} link {intf.name} address {intf.vip.mac} type macvlan mode bridge"
            f" && ip addr add {intf.vip.ip}/32 dev {dev}"
            # A gratuitous ARP from the virtual MAC when it comes up, as an
            # HSRP/VRRP router announces itself: the site's switches learn
            # where the gateway is instead of flooding frames for it.
            f" && sysctl -qw net.ipv4.conf.{dev}.arp_notify=1 && ip link set {dev} up; echo rc=$?"
        )
        if not out.strip().endswith("rc=0"):
            raise NotReady(f"{node.name}: virtual gateway {intf.vip.ip} on {intf.name}: {out}")

    @staticmethod
    def _address(node: Host, intf: str, ip: Optional[IPv4Interface]) -> None:
        """Give a guest interface exactly the lab's address and bring it up."""
        if ip is not None:
            node.cmd(f"ip addr flush dev {intf}; ip addr add {ip} dev {intf}")
        node.cmd(f"ip link set {intf} up")

    # -- readiness ----------------------------------------------------------------
    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        left = lambda: max(1.0, deadline - time.monotonic())  # noqa: E731

        # The controller writes synced/<dpid> after a barrier reply on that
        # switch's connection: proof the connection is up and flows were taken.
        # (OVS refreshes the database's is_connected column only every ~5 s.)
        def connections() -> Optional[str]:
            self._check_controller_alive()
            down = [
                f"{b.host}/{b.bridge}"
                for b in self.bindings
                if not naming.synced_marker(self.run.dir, b.dpid).exists()
            ]
            return f"not synced by the controller: {', '.join(down)}" if down else None

        wait_until(connections, left(), "controller connections")
        self.timings["connected_s"] = time.monotonic() - self._t0

        # hostd must have seen every guest's NIC up (the all-hosts group is in
        # its filter once the interface is up) before flows can be final.
        vnics = [naming.vnic_port(vm.name, nic.name) for vm in self.lab.vms for nic in vm.vnics]

        def guests_seen() -> Optional[str]:
            self._check_controller_alive()
            seen = (control.read_json(self.run.dir / control.APPLIED) or {}).get("guests", {})
            missing = [
                p for p in vnics if "01:00:5e:00:00:01" not in ((seen.get(p) or {}).get("mcast") or [])
            ]
            return f"hostd has not reported {', '.join(missing)} up" if missing else None

        wait_until(guests_seen, left(), "guest NIC state")

        # Guests' NIC filters shape the flows, so the controller's marker (what
        # it installed, confirmed by a barrier) says how many to expect.
        def flows() -> Optional[str]:
            self._check_controller_alive()
            wrong = []
            for b in self.bindings:
                marker = control.read_json(naming.synced_marker(self.run.dir, b.dpid))
                have = self.ovs[b.host].flow_count(b.bridge)
                want = marker["flows"] if marker else "?"
                if have != want:
                    wrong.append(f"{b.host}/{b.bridge} has {have}/{want} flows")
            return "; ".join(wrong) if wrong else None

        wait_until(flows, left(), "flow installation")

        self._resolve_vtep_neighbours(left())
        self._resolve_mirror_neighbours(left())
        probe = self._probe_pair()
        if probe is not None:
            src, dst = probe
            wait_until(
                lambda: (
                    None if self.ping(src, dst, count=1, wait=0.5) else f"{src.name} cannot ping {dst.name}"
                ),
                left(),
                "probe",
            )

    def _vteps(self) -> dict:
        """ESXi host name -> its VTEP vmk, for hosts that have one."""
        return {h.name: vtep_of(h) for h in self.lab.esxi_hosts if vtep_of(h) is not None}

    def _resolve_vtep_neighbours(self, timeout: float) -> None:
        """Each VTEP resolves its gateway and the VTEPs of its own subnet, as
        a prepared host does. OVS's userspace tunnels keep their own neighbour
        cache, filled by snooping the ARP replies that reach the VTEP vmk, and
        drop the packet that finds no entry: without this the first frame to
        each VTEP would be lost."""
        vteps = self._vteps()
        for host, vmk in vteps.items():
            peers = [str(v.ip.ip) for h, v in vteps.items() if h != host and v.ip.network == vmk.ip.network]
            peers += [str(vmk.gateway)] if vmk.gateway is not None else []
            node = self.node(host)
            for peer in peers:
                wait_until(
                    lambda: (
                        None
                        if node.cmd(
                            f"ping -n -q -c 1 -W 0.5 -I {vmk.ip.ip} {peer} >/dev/null 2>&1; echo rc=$?"
                        )
                        .strip()
                        .endswith("rc=0")
                        else f"{host} VTEP cannot reach {peer}"
                    ),
                    timeout,
                    "VTEP neighbours",
                )

    def _resolve_mirror_neighbours(self, timeout: float) -> None:
        """Each host with a mirror tunnel port resolves the next hop towards
        every ERSPAN destination of its distributed switch, for the same
        reason as the VTEPs: OVS's tunnel neighbour cache learns only from
        ARP replies it switches, and drops copies until it has an entry."""
        for host, destinations in mirror_destinations(self.lab, self.bindings).items():
            node, inst = self.node(host), self.ovs[host]
            for dst in destinations:

                def resolved(dst=dst) -> Optional[str]:
                    node.cmd(f"ping -n -q -c 1 -W 0.5 {dst} >/dev/null 2>&1")
                    route = node.cmd(f"ip -o route get {dst}").split()
                    hop = route[route.index("via") + 1] if "via" in route else dst
                    known = {
                        line.split()[0]
                        for line in inst.appctl("tnl/neigh/show").splitlines()[2:]
                        if line.strip()
                    }
                    if hop in known:
                        return None
                    # The kernel may have resolved it before OVS's flows were
                    # in: forget it, so the next ping ARPs through the bridge.
                    node.cmd(f"ip neigh flush to {hop}")
                    return f"{host} has no tunnel neighbour {hop} towards mirror destination {dst}"

                wait_until(resolved, timeout, "mirror destinations")

    def _check_controller_alive(self) -> None:
        """Fail bring-up at once, with the controller's last words, if it died."""
        if self.controller_proc.poll() is not None:
            log = (self.run.dir / "controller.log").read_text()[-2000:]
            raise NotReady(f"controller exited with {self.controller_proc.returncode}:\n{log}")

    def _mgmt_ip(self, host: str) -> str:
        """The controller's address on ``host``'s control link."""
        index = [h.name for h in self.lab.esxi_hosts].index(host)
        return control_addresses(index)[0].split("/")[0]

    def _probe_pair(self) -> Optional[tuple[Endpoint, Endpoint]]:
        """Two endpoints the design lets ping each other. VMs behind the
        distributed firewall are left out: whether they answer a ping is up
        to its rules, not to the L2/L3 design."""
        eps = {e.name: e for e in self.endpoints()}
        filtered = dfw.protected_vms(self.lab)
        for (a, b), ok in sorted(expected_reachability(self.lab).items()):
            if ok and eps[a].node not in filtered and eps[b].node not in filtered:
                return eps[a], eps[b]
        return None

    def describe(self) -> dict:
        """A JSON-able description of what runs where (for results and `inspect`)."""
        return {
            "run": self.run.id,
            "nodes": [n.name for n in self.net.hosts] if self.net else [],
            "vswitches": [
                {
                    "host": b.host,
                    "bridge": b.bridge,
                    "dpid": f"{b.dpid:016x}",
                    "ports": [p.__dict__ for p in b.ports],
                }
                for b in self.bindings
            ],
        }


__all__ = ["LabNetwork", "NotReady", "wait_until"]

"""A lab as a running Mininet network on this machine, and its teardown.

Nodes (all Mininet hosts, i.e. network namespaces), each built by the module
named for it:

* ``mgmt``    the management network, running the controller
              (``controller_process``);
* ESXi hosts  a namespace with its own Open vSwitch instance, one bridge per
              vSwitch (``esxi``);
* ``fabric``  every physical switch, as a standalone bridge of one more OVS
              instance (``physical``);
* VMs, plain hosts (``guests``), routers and firewalls (``routers``): real
              Linux stacks;

cabled by ``links``, with the traffic shaping policies on the cables of
shaped ports (``shaping``). ``LabNetwork.start`` returns only once the lab is
ready (``readiness``): every vSwitch connected and holding exactly its
compiled flows, and a probe ping through.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from typing import Optional

from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import Host

from vlab import control, naming
from vlab.bindings import SwitchBinding, switch_bindings
from vlab.lab.model import Lab
from vlab.lab.reachability import Endpoint, endpoints
from vlab.operations import LabControl
from vlab.ovs import OvsInstance
from vlab.runtime import Run

from . import guests, host_shell, routers, shaping
from .controller_process import ControllerProcess
from .esxi import start_esxi
from .links import add_links, disable_tx_offload
from .physical import PhysicalNetwork
from .readiness import BRINGUP_LIMIT_FACTOR, NotReady, time_limit, wait_ready

LOG = logging.getLogger("vlab.topology")


class LabNetwork:
    """A lab brought up on this machine."""

    def __init__(self, lab: Lab, lab_file: Path, run: Run):
        self.lab, self.lab_file, self.run = lab, Path(lab_file).resolve(), run
        self.net: Optional[Mininet] = None
        self.ovs: dict[str, OvsInstance] = {}  # node name -> its OVS instance
        self.bindings: tuple[SwitchBinding, ...] = switch_bindings(lab)
        self.controller: Optional[ControllerProcess] = None
        self.physical: Optional[PhysicalNetwork] = None
        self.timings: dict[str, float] = {}
        self.control: Optional[LabControl] = None  # operations, once started
        self.started_at = 0.0

    # -- bring-up and teardown -----------------------------------------------
    def start(self, timeout: float = 60.0) -> "LabNetwork":
        if self.lab.datapath == "system" and not Path("/sys/module/openvswitch").exists():
            raise NotReady(
                f"{self.lab_file}: datapath: system needs the openvswitch kernel "
                "module, which is not loaded here; use datapath: netdev"
            )
        self.started_at = t0 = time.monotonic()
        setLogLevel("error")
        step = ["creating the nodes (Mininet, mnexec)"]
        # Every step gets a limit, the ones that wait for nothing too: when
        # mnexec cannot start a node's shell, Mininet's startShell blocks
        # forever reading from it.
        with time_limit(BRINGUP_LIMIT_FACTOR * timeout, lambda: step[0]):
            self.net = Mininet(topo=None, build=False, controller=None)
            self._add_nodes()
            step[0] = "linking the nodes"
            add_links(self.net, self.lab)
            disable_tx_offload(self.net)
            step[0] = "starting the controller and the physical switches"
            self.controller = ControllerProcess(
                self.node(naming.MGMT_NODE), self.lab, self.lab_file, self.run.dir
            )
            self.controller.address_control_links(self.node)
            self.controller.spawn()
            self.physical = PhysicalNetwork(self.node(naming.FABRIC_NODE), self.run.dir, self.lab)
            self.ovs[naming.FABRIC_NODE] = self.physical.ovs
            self.physical.start()
            self.controller.wait_listening(timeout)
            for host in self.lab.esxi_hosts:
                step[0] = f"starting {host.name}'s Open vSwitch"
                inst = self.ovs[host.name] = OvsInstance(self.node(host.name), self.run.dir / host.name)
                start_esxi(inst, self.lab, host, self.bindings, self.controller.target(host.name))
                host_shell.install(self.node(host.name), self.run.dir, host.name)
            step[0] = "configuring the guests"
            guests.configure_vms(self.lab, self.node)
            shaping.shape(self.lab, self.node)
            for h in self.lab.hosts:
                node = self.node(h.name)
                for intf in h.interfaces:
                    guests.configure_interface(node, intf)
                    if intf.vip is not None:
                        routers.virtual_gateway(node, intf)
                routers.configure_router(node, h, self.lab, self.run.dir)
                guests.configure_routes(node, h)
            self.timings["build_s"] = time.monotonic() - t0
            step[0] = "waiting for the controller to program every switch"
            wait_ready(self, timeout)
        self.timings["bringup_s"] = time.monotonic() - t0
        self.control = LabControl(self.run.dir)
        return self

    def stop(self) -> None:
        """Tear everything down; safe to call on a half-built network."""
        if self.controller is not None:
            self.controller.stop()
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
        for node in self.net.hosts:
            shell = getattr(node, "shell", None)
            if shell is not None and shell.poll() is None:
                try:
                    os.killpg(shell.pid, signal.SIGHUP)
                except ProcessLookupError:
                    pass

    def _add_nodes(self) -> None:
        """Every node, then what the controller and LabControl need of them:
        their PIDs (``nodes.json``). IPv6 is off in every node: an IPv4
        testbed, and captures without IPv6 chatter."""
        names = [naming.MGMT_NODE, naming.FABRIC_NODE]
        names += [
            item.name for group in (self.lab.esxi_hosts, self.lab.vms, self.lab.hosts) for item in group
        ]
        for name in names:
            self.net.addHost(name, cls=Host, ip=None, inNamespace=True)
        for node in self.net.hosts:
            node.cmd("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
        control.write_json(
            self.run.dir / control.NODES,
            {
                "lab_file": str(self.lab_file),
                # The lab as brought up: what configuration changes replay on.
                "lab": self.lab.model_dump(mode="json", exclude_unset=True),
                "pids": {n.name: n.pid for n in self.net.hosts},
            },
        )

    # -- the controller ------------------------------------------------------------
    @property
    def controller_proc(self):
        """The controller's process (``subprocess.Popen``)."""
        return self.controller.proc

    @property
    def last_restart(self) -> dict[str, float]:
        return self.controller.last_restart

    def restart_controller(self, kill: bool = True, timeout: float = 20.0) -> float:
        """See ``ControllerProcess.restart``."""
        return self.controller.restart(self.bindings, kill=kill, timeout=timeout)

    # -- looking at it ----------------------------------------------------------
    def node(self, name: str) -> Host:
        return self.net.get(name)

    def mac_table(self, switch: str) -> list[dict]:
        return self.physical.mac_table(switch)

    def snooped_groups(self, switch: str) -> list[dict]:
        return self.physical.snooped_groups(switch)

    def switch_counters(self, switch: str) -> dict[str, dict[str, int]]:
        return self.physical.counters(switch)

    def endpoints(self) -> list[Endpoint]:
        return endpoints(self.lab)

    def ping(self, src: Endpoint, dst: Endpoint, count: int = 2, wait: float = 1.0) -> bool:
        """True when ``src`` gets at least one echo reply from ``dst``."""
        out = self.node(src.node).cmd(
            f"ping -n -q -c {count} -i 0.2 -W {wait} -I {src.ip.ip} {dst.ip.ip} >/dev/null 2>&1; echo rc=$?"
        )
        return out.strip().endswith("rc=0")


__all__ = ["LabNetwork", "NotReady"]

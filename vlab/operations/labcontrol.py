"""Operations on a running lab: what an operator does to ESXi hosts and cables.
``LabControl`` is the one entry point; each protocol lives in its module:

* ``uplink(host, vmnic, up)``  pull or plug an uplink's cable (the physical
  switch port goes down, so the host sees link down: failure detection by
  link status, as on ESXi).
  What follows on the controller is ``controller.failover``'s.
* ``lacp_silence(switch, port)`` a physical switch port stops sending
  LACPDUs, link and data still up (``faults``); ``lacp(node, lag)`` reads
  OVS's LACP state of a LAG on an ESXi host or a port channel.
* ``vmotion(vm, host)``        move a running VM (``vmotion``).
* ``reconnect(vm)``            give a vNIC a new virtual port (``vmotion``).
* ``capture(...)``             pktcap-uw: a pcap at a vNIC's PortOutput or
  VnicRx point, or at an uplink (``capture``).
* ``change_config(edits)``     an administrator's change to the lab's
  configuration (esxcli ``... set``): ``reconfigure``. ``lab`` is always
  the running lab: the file with every change so far replayed.
* ``connect_vnic(vm, network)`` a vNIC connected to another port group or
  logical switch, on a new port (``reconfigure``).

Everything works from the run directory alone (node PIDs, OVS sockets, the
controller's files), so a second ``vlab`` process can act on a lab another
process brought up. Every process started here carries the run's marker.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from pathlib import Path
from typing import Optional

from vlab import control, naming
from vlab.bindings import GuestNic, Placement, PortBinding, SwitchBinding, default_placement, switch_bindings
from vlab.lab.edits import edited_lab
from vlab.lab.load import read_lab_data
from vlab.lab.model import Lab
from vlab.ovs import OvsInstance

from . import capture as pktcap
from . import faults, reconfigure
from . import vmotion as moves
from .errors import OperationError, wait


def client_name(p: PortBinding) -> str:
    """The port's ClientName as ESXi's net-stats shows it: a vNIC is
    ``<VM>.<vNIC>``, a vmk or an uplink its own name."""
    return f"{p.owner}.{p.name[len(p.owner) + 1 :]}" if p.kind == "vnic" else p.name


def _names(b: SwitchBinding, p: PortBinding, token: str) -> bool:
    if p.kind not in ("uplink", "vmk", "vnic"):
        return False
    try:
        number = int(token, 0)
    except ValueError:
        return token in (p.name, client_name(p))
    return number == b.port_num(p)


class LabControl:
    """Operations on the lab running in ``run_dir``."""

    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir)
        nodes = control.read_json(self.dir / control.NODES)
        if nodes is None:
            raise OperationError(f"{self.dir}: no {control.NODES}; is the lab running?")
        self.pids: dict[str, int] = nodes["pids"]
        self.lab_file = nodes["lab_file"]
        # The lab as brought up (nodes.json), so a later edit of the file
        # changes nothing here; the file itself for older run directories.
        self.lab_data = nodes.get("lab") or read_lab_data(self.lab_file)
        self._lab: Optional[Lab] = None
        self._lab_edits: Optional[str] = None
        _ = self.lab  # a journal that no longer applies fails here, not mid-command
        self.run_id = self.dir.name

    @property
    def lab(self) -> Lab:
        """The running lab: the lab as brought up with the administrator's
        changes (``desired.json`` ``config_edits``) replayed; validated
        again only when the journal changed."""
        edits = control.config_edits(self.desired())
        key = json.dumps(edits, sort_keys=True)
        if self._lab is None or key != self._lab_edits:
            self._lab, self._lab_edits = edited_lab(self.lab_file, edits, self.lab_data), key
        return self._lab

    # -- plumbing -----------------------------------------------------------
    def _env(self) -> dict:
        return {**os.environ, naming.RUN_ENV: self.run_id}

    def sh(self, node: str, cmd: str, check: bool = True) -> str:
        """Run ``cmd`` in ``node``'s network namespace."""
        proc = subprocess.run(
            ["nsenter", "-t", str(self.pids[node]), "-n", "sh", "-c", cmd],
            capture_output=True,
            text=True,
            env=self._env(),
            timeout=60,
        )
        if check and proc.returncode != 0:
            raise OperationError(f"{node}: `{cmd}` failed: {proc.stderr.strip()}")
        return proc.stdout

    def popen(self, node: str, argv: list[str], **kw) -> subprocess.Popen:
        return subprocess.Popen(["nsenter", "-t", str(self.pids[node]), "-n", *argv], env=self._env(), **kw)

    def ovs(self, node: str) -> OvsInstance:
        return OvsInstance(None, self.dir / node)

    def esxi(self, name: str):
        host = next((h for h in self.lab.esxi_hosts if h.name == name), None)
        if host is None:
            raise OperationError(
                f"no ESXi host {name!r} in lab {self.lab.name} "
                f"(hosts: {', '.join(h.name for h in self.lab.esxi_hosts)})"
            )
        return host

    def bindings(self, host: Optional[str] = None) -> tuple[SwitchBinding, ...]:
        """Every vSwitch as it stands now (placement after moves, guests'
        NIC state as hostd reported it), of ``host`` only if given."""
        guests = {n: GuestNic.from_json(g) for n, g in self.applied().get("guests", {}).items() if g}
        return tuple(
            b.with_guests(guests)
            for b in switch_bindings(self.lab, self.placement())
            if host in (None, b.host)
        )

    def port(self, token: str, host: Optional[str] = None) -> tuple[SwitchBinding, PortBinding]:
        """The vSwitch port ``token`` names, as ESXi commands take one: its
        ESXi port number (decimal, or hex as pktcap-uw prints it), its port
        name (``vm1-eth0``, ``vmk0``, ``vmnic2``) or its client name as
        net-stats shows it (``vm1.eth0``). ``host`` narrows the search; a
        vmk or an uplink name needs it, since every host has its own."""
        if host is not None:
            self.esxi(host)
        found = [(b, p) for b in self.bindings(host) for p in b.ports if _names(b, p, token)]
        if len(found) == 1:
            return found[0]
        where = f" on {host}" if host else ""
        if not found:
            raise OperationError(f"no vSwitch port {token!r}{where} (net-stats -l lists them)")
        raise OperationError(
            f"{token!r} names {len(found)} ports ({', '.join(f'{b.host}/{p.name}' for b, p in found)}); "
            "give the host"
        )

    def vm(self, name: str):
        vm = next((v for v in self.lab.vms if v.name == name), None)
        if vm is None:
            raise OperationError(f"no VM {name!r} in lab {self.lab.name}")
        return vm

    # -- talking to the controller --------------------------------------------
    def desired(self) -> dict:
        return control.read_json(self.dir / control.DESIRED) or {
            "generation": 0,
            "placement": {},
            "captures": [],
            "moves": {},
        }

    def applied(self) -> dict:
        return control.read_json(self.dir / control.APPLIED) or {}

    def request(self, timeout: float = 10.0, **changes) -> dict:
        """Ask the controller for a change; return once every switch has it."""
        return self.request_change(lambda want: want.update(changes), timeout)

    def request_change(self, edit, timeout: float = 10.0) -> dict:
        """``edit`` (a function changing the desired state in place) under a
        lock, so concurrent sessions (two pktcap-uw) never lose each other's
        change; return once every switch has it."""
        with open(self.dir / "desired.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            want = self.desired()
            edit(want)
            want["generation"] = want.get("generation", 0) + 1
            control.write_json(self.dir / control.DESIRED, want)
        return wait(
            lambda: (lambda a: a if a.get("generation", 0) >= want["generation"] else None)(self.applied()),
            timeout,
            "controller applying the request",
        )

    def wait_guest(self, port: str, predicate, timeout: float = 5.0) -> dict:
        """Wait until hostd has reported ``port``'s guest state matching ``predicate``."""
        return wait(
            lambda: (lambda g: g if g and predicate(g) else None)(self.applied().get("guests", {}).get(port)),
            timeout,
            f"hostd reporting the guest state of {port}",
        )

    def placement(self) -> dict[str, Placement]:
        """Where every vNIC port is now: the lab's placement, then the moves."""
        return {**default_placement(self.lab), **control.placement_of(self.desired())}

    def events(self) -> list[dict]:
        return control.read_events(self.dir)

    # -- uplinks -----------------------------------------------------------------
    def fabric_port(self, host: str, vmnic: str) -> str:
        """The physical switch port (in the fabric node) ``host``'s ``vmnic`` is cabled to."""
        uplink = next((u for u in self.esxi(host).uplinks if u.name == vmnic), None)
        if uplink is None:
            raise OperationError(f"{host} has no uplink {vmnic!r}")
        return naming.fabric_port(uplink.switch, uplink.port)

    def uplink(self, host: str, vmnic: str, up: bool) -> None:
        """Pull (up=False) or plug the cable of ``host``'s ``vmnic``."""
        self.sh(naming.FABRIC_NODE, f"ip link set {self.fabric_port(host, vmnic)} {'up' if up else 'down'}")

    def dci_link(self, name: str, up: bool) -> None:
        """Pull (up=False) or plug the cable of switch-to-switch link ``name``
        (``dci_links``): both switch ports lose carrier, no host link does."""
        links = {d.name: d for d in self.lab.dci_links}
        if name not in links:
            raise OperationError(f"no DCI link {name!r} (dci_links: {', '.join(links) or 'none'})")
        end = links[name].a
        state = "up" if up else "down"
        self.sh(naming.FABRIC_NODE, f"ip link set {naming.fabric_port(end.switch, end.port)} {state}")

    def lacp(self, node: str, switch: str, lag: str) -> dict:
        """LACP state (``vlab.ovs.parse_lacp``) of LAG ``lag`` of vSwitch
        ``switch`` on ESXi host ``node``, or of port channel ``lag`` of
        physical switch ``switch`` (``node`` = the fabric node)."""
        return self.ovs(node).lacp(naming.lag_port(switch, lag))

    def lacp_stats(self, node: str, switch: str, lag: str) -> dict[str, dict[str, int]]:
        """OVS's LACPDU counters per member of that LAG or port channel."""
        return self.ovs(node).lacp_stats(naming.lag_port(switch, lag))

    def lacp_silence(self, switch: str, port: int, silent: bool = True) -> None:
        """Physical switch ``port`` stops (or resumes) sending LACPDUs while
        its link and every other frame stay up (``faults.drop_ethertype``):
        a partner gone silent, which only LACP's own timeout detects."""
        dev = naming.fabric_port(switch, port)
        for cmd in faults.drop_ethertype(dev, faults.ETH_SLOW_PROTOCOLS, on=silent):
            self.sh(naming.FABRIC_NODE, cmd)

    # -- vMotion, reconnect, pktcap-uw: their modules' functions, as methods
    # (each takes the LabControl first), so signatures and docs live once.
    vmotion = moves.vmotion
    reconnect = moves.reconnect
    capture = pktcap.capture
    tcpdump = pktcap.tcpdump
    change_config = reconfigure.change_config
    connect_vnic = reconfigure.connect_vnic

"""Operations on a running lab: what an operator does to ESXi hosts and cables.

* ``uplink(host, vmnic, up)``  pull or plug an uplink's cable (the physical
  switch port goes down, so the host sees link down: failure detection by
  link status, as on ESXi).
* ``vmotion(vm, host)``        move a running VM: stun it, program the
  destination, move its vNIC's backend into the destination host, resume.
  The guest keeps its interface, MAC, IP and TCP sessions.
* ``reconnect(vm)``            give a vNIC a new virtual port (as a VM power
  cycle or reconnect does), which can change its port-ID teaming uplink.
* ``capture(...)``             pktcap-uw: a pcap at a vNIC's PortOutput or
  VnicRx point, or at an uplink.

Everything works from the run directory alone (node PIDs, OVS sockets, the
controller's files), so a second ``vlab`` process can act on a lab another
process brought up. Every process started here carries the run's marker.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Optional

from controller import dfw
from vlab import control, naming
from vlab.bindings import CAPTURE_BASE, Placement, default_placement
from vlab.lab.load import load_lab
from vlab.lab.resolve import overlay_switch, switch_of_port_group
from vlab.ovs import OvsInstance
from vlab.waiting import wait_for


class OperationError(RuntimeError):
    """An operation that cannot be done on this lab (bad name, wrong state)."""


def _wait(check, timeout: float, what: str, interval: float = 0.02):
    """``vlab.waiting.wait_for``, failing as an operation does."""
    return wait_for(check, timeout, what, interval=interval, error=OperationError)


class CaptureIncomplete(RuntimeError):
    """A capture lost frames (the kernel dropped them before tcpdump read
    them): whatever it counted cannot be trusted."""


_STATS = re.compile(
    r"(\d+) packets? captured.*?(\d+) packets? received by filter"
    r".*?(\d+) packets? dropped by kernel",
    re.S,
)


def capture_stats(log: str) -> Optional[tuple[int, int, int]]:
    """The last (captured, received by filter, dropped by kernel) that
    tcpdump printed, on SIGUSR1 or at exit; None before the first."""
    found = _STATS.findall(log)
    return tuple(int(x) for x in found[-1]) if found else None


class Capture:
    """A running tcpdump writing a pcap (``-U``: each frame is in the file as
    soon as tcpdump has read it); ``stop()`` drains it and returns the file.

    Stopping is where captures lose frames: on SIGTERM tcpdump exits without
    reading what is still queued on its socket, so under load the last
    frames of a transfer vanish from one capture and not from another.
    ``stop()`` therefore first asks tcpdump for its counters (SIGUSR1) until
    it has captured every frame the kernel gave it, and refuses a capture the
    kernel dropped frames from (``CaptureIncomplete``). What it cannot know is
    whether frames are still on their way to the capture: the caller makes
    its traffic finish (a closed TCP connection, a marker frame after it on
    the same path) before stopping."""

    def __init__(
        self,
        proc: subprocess.Popen,
        pcap: Path,
        on_stop=None,
        log: Optional[Path] = None,
        what: str = "",
        direction: bool = False,
    ):
        self.proc, self.pcap, self._on_stop = proc, pcap, on_stop
        self.log, self.what = log, what or str(pcap)
        # With -Q libpcap drops the other direction in userspace, after the
        # kernel counted it as "received by filter" (libpcap 1.10; its BPF
        # "inbound" loses the first frame instead), so the counters cannot
        # say when tcpdump has caught up: then they must stop changing.
        self.direction = direction
        self.stats: Optional[tuple[int, int, int]] = None
        self.drained: Optional[bool] = None

    def _stats(self) -> Optional[tuple[int, int, int]]:
        return capture_stats(self.log.read_text()) if self.log and self.log.exists() else None

    def _probe(self, timeout: float) -> Optional[tuple[int, int, int]]:
        """Ask tcpdump for its counters (SIGUSR1) and wait for the answer."""
        before = self.log.read_text().count("received by filter")
        self.proc.send_signal(signal.SIGUSR1)
        _wait(
            lambda: self.proc.poll() is not None or self.log.read_text().count("received by filter") > before,
            timeout,
            f"tcpdump's counters for {self.what}",
        )
        return self._stats()

    def drain(self, timeout: float = 3.0) -> bool:
        """Wait until tcpdump has written every frame its socket received;
        False if it did not catch up in ``timeout`` (traffic still flowing on
        the interface keeps its counters moving: the caller's own traffic is
        finished before it stops a capture, other traffic is not counted)."""
        seen: list = []

        def caught_up() -> bool:
            if self.proc.poll() is not None:
                return True
            stats = self._probe(timeout)
            seen.append(stats)
            if stats is None:
                return False
            if not self.direction:
                return stats[0] + stats[2] >= stats[1]
            return len(seen) >= 3 and seen[-1] == seen[-2] == seen[-3]

        try:
            _wait(caught_up, timeout, f"{self.what}: tcpdump writing the frames it received", interval=0.05)
        except OperationError:
            return False
        return True

    def stop(self) -> Path:
        try:
            if self.proc.poll() is None and self.log is not None:
                self.drained = self.drain()
            if self.proc.poll() is None:
                self.proc.terminate()
            self.proc.wait(timeout=10)
        finally:
            if self._on_stop:
                self._on_stop()
        self.stats = self._stats()
        if self.stats is not None and self.stats[2] > 0:
            raise CaptureIncomplete(
                f"{self.what}: the kernel dropped {self.stats[2]} of "
                f"{self.stats[1]} frames before tcpdump read them"
            )
        return self.pcap


class LabControl:
    """Operations on the lab running in ``run_dir``."""

    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir)
        nodes = control.read_json(self.dir / control.NODES)
        if nodes is None:
            raise OperationError(f"{self.dir}: no {control.NODES}; is the lab running?")
        self.pids: dict[str, int] = nodes["pids"]
        self.lab_file = nodes["lab_file"]
        self.lab = load_lab(self.lab_file)
        self.run_id = self.dir.name
        self._seq = itertools.count(1)

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
        want = self.desired()
        want.update(changes)
        want["generation"] = want.get("generation", 0) + 1
        control.write_json(self.dir / control.DESIRED, want)
        return _wait(
            lambda: (lambda a: a if a.get("generation", 0) >= want["generation"] else None)(self.applied()),
            timeout,
            "controller applying the request",
        )

    def wait_guest(self, port: str, predicate, timeout: float = 5.0) -> dict:
        """Wait until hostd has reported ``port``'s guest state matching ``predicate``."""
        return _wait(
            lambda: (lambda g: g if g and predicate(g) else None)(self.applied().get("guests", {}).get(port)),
            timeout,
            f"hostd reporting the guest state of {port}",
        )

    def placement(self) -> dict[str, Placement]:
        where = default_placement(self.lab)
        for port, p in self.desired().get("placement", {}).items():
            where[port] = Placement(p["host"], p["ofport"])
        return where

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

    # -- vMotion and reconnect ----------------------------------------------------
    def _vnic_ports(self, vm) -> list[tuple[str, object]]:
        """(vSwitch port name, vNIC) of each of ``vm``'s vNICs."""
        return [(naming.vnic_port(vm.name, nic.name), nic) for nic in vm.vnics]

    def _switch_of(self, host_name: str, nic):
        """The vSwitch of ``host_name`` a vNIC plugs into: its port group's,
        or for a logical switch the one carrying the host's VTEP."""
        esx = self.esxi(host_name)
        if nic.logical_switch is not None:
            sw = overlay_switch(self.lab, esx)
            if sw is None:
                raise OperationError(f"{host_name} has no VTEP for logical switch {nic.logical_switch!r}")
            return sw
        try:
            return switch_of_port_group(self.lab, esx, nic.port_group)[0]
        except KeyError:
            raise OperationError(f"{host_name} has no port group {nic.port_group!r}") from None

    def vmotion(
        self,
        vm_name: str,
        dest: str,
        stun_s: float = 0.1,
        igmp_query: bool = True,
        max_response_s: float = 10.0,
        query_source: str = "0.0.0.0",
    ) -> dict:
        """Move ``vm_name`` to ``dest``; returns when it runs there (times in
        ``time.time()`` seconds: stun start and resume)."""
        vm, where = self.vm(vm_name), self.placement()
        ports = self._vnic_ports(vm)
        src = where[ports[0][0]].host
        self.esxi(dest)
        if src == dest:
            raise OperationError(f"{vm_name} already runs on {dest}")
        for _, nic in ports:
            self._switch_of(dest, nic)
        for port, nic in ports:
            self.ovs(src).vsctl("--if-exists", "del-port", self._switch_of(src, nic).name, port)
        # The stun starts when the VM is off the source's vSwitch, not when
        # the move was asked for: deleting a port takes an ovs-vsctl round
        # trip (tens of ms on a loaded machine), during which the VM still
        # answers at the source, and a connection it completed there must
        # not count as one opened during the move.
        t_stun = time.time()
        for port, _ in ports:
            self.sh(src, f"ip link set {port} netns {self.pids[dest]}")
        # The VM's distributed-firewall state travels with it (NSX exports
        # the vNIC filter's connection table to the destination host).
        # Each entry keeps the time it had left, as an absolute expiry: the
        # imported state ages out when the entry it came from would have.
        sessions = dict(self.desired().get("dfw_sessions", {}))
        if vm_name in dfw.protected_vms(self.lab):
            zones = dfw.zone_of(self.lab)
            exported = time.time()
            for port, _ in ports:
                sessions[port] = [
                    [*entry[:5], None if entry[5] is None else exported + entry[5]]
                    for entry in self.ovs(src).conntrack(zones[port])
                ]
        seq = next(self._seq)
        placement = dict(self.desired().get("placement", {}))
        moves = dict(self.desired().get("moves", {}))
        for port, _ in ports:
            placement[port] = {"host": dest, "ofport": where[port].ofport}
            moves[port] = {
                "seq": f"{time.time():.6f}-{seq}",
                "igmp_query": igmp_query,
                "max_response_s": max_response_s,
                "query_source": query_source,
            }
        # The destination is programmed before the VM resumes there.
        self.request(placement=placement, moves=moves, dfw_sessions=sessions)
        programmed = time.time()
        remaining = stun_s - (time.time() - t_stun)
        if remaining > 0:
            time.sleep(remaining)  # the configured stun time (model, not polling)
        self._plug(dest, ports, {p: where[p].ofport for p, _ in ports})
        return {
            "vm": vm_name,
            "from": src,
            "to": dest,
            "stun_start": t_stun,
            "programmed": programmed,
            "resumed": time.time(),
            "stun_s": stun_s,
        }

    def _plug(self, host: str, ports: list[tuple[str, object]], ofports: dict[str, int]) -> None:
        for port, nic in ports:
            sw = self._switch_of(host, nic)
            # Link up before OVS opens the port: the port then appears up at
            # once (OVS notices a later carrier change on a re-used name late).
            self.sh(host, f"ethtool -K {port} tx off >/dev/null 2>&1; ip link set {port} mtu {sw.mtu} up")
            self.ovs(host).vsctl(
                "add-port",
                sw.name,
                port,
                "--",
                "set",
                "interface",
                port,
                f"ofport_request={ofports[port]}",
                f"mtu_request={sw.mtu}",
            )

    def reconnect(self, vm_name: str) -> dict[str, int]:
        """Plug the VM's vNICs into new virtual ports (new port IDs)."""
        vm, where = self.vm(vm_name), self.placement()
        ports = self._vnic_ports(vm)
        host = where[ports[0][0]].host
        used = {p.ofport for p in where.values()}
        new = {}
        candidate = max(used) + 1
        for port, nic in ports:
            new[port] = candidate
            candidate += 1
            self.ovs(host).vsctl("--if-exists", "del-port", self._switch_of(host, nic).name, port)
        placement = dict(self.desired().get("placement", {}))
        for port, _ in ports:
            placement[port] = {"host": host, "ofport": new[port]}
        self.request(placement=placement)
        self._plug(host, ports, new)
        return new

    # -- pktcap-uw ------------------------------------------------------------------
    def capture(
        self,
        pcap: Path,
        *,
        port: Optional[str] = None,
        point: str = "VnicRx",
        uplink: Optional[tuple[str, str]] = None,
        direction: str = "rx",
        bpf: str = "",
        extra: Optional[list[str]] = None,
    ) -> Capture:
        """Start a capture, as ``pktcap-uw`` would: ``port`` is a vNIC port
        name (``vm-eth0``) with ``point`` PortOutput or VnicRx; or ``uplink``
        is (host, vmnic) with ``direction`` rx (into the host) or tx.

        Frames the userspace datapath transmits bypass packet taps on the
        sending interface, so every capture listens where a frame is
        *received*: VnicRx in the guest, an uplink's tx at the physical
        switch port, PortOutput on an internal port the frames are copied to."""
        on_stop = None
        if uplink is not None:
            host, vmnic = uplink
            up = next((u for u in self.esxi(host).uplinks if u.name == vmnic), None)
            if up is None:
                raise OperationError(f"{host} has no uplink {vmnic!r}")
            if direction == "rx":
                node, iface = host, vmnic
            elif direction == "tx":
                node, iface = naming.FABRIC_NODE, naming.fabric_port(up.switch, up.port)
            else:
                raise OperationError(f"unknown direction {direction!r} (rx, tx)")
            return self.tcpdump(node, iface, pcap, bpf, ["-Q", "in", *(extra or [])])
        where = self.placement()
        if port not in where:
            raise OperationError(f"no vNIC port {port!r}")
        if point == "VnicRx":
            vm, nic = self._vm_nic_of(port)
            return self.tcpdump(vm, nic, pcap, bpf, ["-Q", "in", *(extra or [])])
        if point != "PortOutput":
            raise OperationError(f"unknown capture point {point!r} (PortOutput, VnicRx)")
        host = where[port].host
        iface = self._open_port_output(host, port, where[port].ofport)
        on_stop = lambda: self._close_port_output(host, port, iface)  # noqa: E731
        return self.tcpdump(host, iface, pcap, bpf, ["-Q", "in", *(extra or [])], on_stop)

    def _vm_nic_of(self, port: str) -> tuple[str, str]:
        for vm in self.lab.vms:
            for nic in vm.vnics:
                if naming.vnic_port(vm.name, nic.name) == port:
                    return vm.name, nic.name
        raise OperationError(f"no vNIC port {port!r}")

    def tcpdump(
        self, node: str, iface: str, pcap: Path, bpf: str = "", direction: Optional[list] = None, on_stop=None
    ) -> Capture:
        """A capture on any node's interface (``-p``: never makes it promiscuous,
        which on a guest would change what the vSwitch delivers)."""
        pcap = Path(pcap)
        pcap.parent.mkdir(parents=True, exist_ok=True)
        err = pcap.with_suffix(".log")
        # Ring size: in immediate mode libpcap uses a TPACKET_V2 ring of
        # buffer/snaplen slots, 2 MiB / 256 KiB = 8 frames by default, which
        # a burst overflows while a loaded machine has tcpdump descheduled
        # (kernel drops, found by Capture.stop under stress-ng). 64 KiB holds
        # any frame (a GSO packet is at most 64 KiB); 16 MiB gives 256 slots.
        # An -s of the caller's comes later and wins.
        proc = self.popen(
            node,
            [
                "tcpdump",
                "-n",
                "-p",
                "-U",
                "--immediate-mode",
                "-i",
                iface,
                "-s",
                "65535",
                "-B",
                "16384",
                *(direction or []),
                "-w",
                str(pcap),
                *([bpf] if bpf else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(err, "w"),
        )
        _wait(
            lambda: proc.poll() is not None or "listening on" in err.read_text(),
            10,
            f"tcpdump on {node}/{iface}",
        )
        if proc.poll() is not None and proc.returncode != 0:
            raise OperationError(f"tcpdump on {node}/{iface} failed: {err.read_text().strip()}")
        return Capture(
            proc,
            pcap,
            on_stop,
            log=err,
            what=f"tcpdump on {node}/{iface}",
            direction="-Q" in (direction or []),
        )

    def _open_port_output(self, host: str, port: str, ofport: int) -> tuple[str, list]:
        name = f"pcap{ofport}"
        bridge = next(b for b in self._bridges(host) if port in self._ports_of(host, b))
        self.ovs(host).vsctl(
            "--may-exist",
            "add-port",
            bridge,
            name,
            "--",
            "set",
            "interface",
            name,
            "type=internal",
            f"ofport_request={CAPTURE_BASE + ofport}",
        )
        self.sh(host, f"ip link set {name} up")
        captures = sorted(set(self.desired().get("captures", [])) | {port})
        self.request(captures=captures)
        return name

    def _close_port_output(self, host: str, port: str, iface: str) -> None:
        self.request(captures=sorted(set(self.desired().get("captures", [])) - {port}))
        for bridge in self._bridges(host):
            self.ovs(host).vsctl("--if-exists", "del-port", bridge, iface)

    def _bridges(self, host: str) -> list[str]:
        return self.ovs(host).vsctl("list-br").split()

    def _ports_of(self, host: str, bridge: str) -> list[str]:
        return self.ovs(host).vsctl("list-ports", bridge).split()

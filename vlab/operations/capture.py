"""pktcap-uw: captures at a vNIC's PortOutput or VnicRx point, at an uplink,
or on any node's interface, as pcaps written by tcpdump.

Frames the userspace datapath transmits bypass packet taps on the sending
interface, so every capture listens where a frame is *received*: VnicRx in
the guest, an uplink's tx at the physical switch port, PortOutput on an
internal port (``pcapN``, OpenFlow port ``CAPTURE_BASE + N``) the controller
copies the port's output to while the session is open (``desired.json``
``captures``).
"""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from vlab import naming
from vlab.bindings import CAPTURE_BASE

from .errors import CaptureIncomplete, OperationError, wait

if TYPE_CHECKING:
    from .labcontrol import LabControl


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
        wait(
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
            wait(caught_up, timeout, f"{self.what}: tcpdump writing the frames it received", interval=0.05)
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


def capture(
    ctl: "LabControl",
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
        up = next((u for u in ctl.esxi(host).uplinks if u.name == vmnic), None)
        if up is None:
            raise OperationError(f"{host} has no uplink {vmnic!r}")
        if direction == "rx":
            node, iface = host, vmnic
        elif direction == "tx":
            node, iface = naming.FABRIC_NODE, naming.fabric_port(up.switch, up.port)
        else:
            raise OperationError(f"unknown direction {direction!r} (rx, tx)")
        return tcpdump(ctl, node, iface, pcap, bpf, ["-Q", "in", *(extra or [])])
    where = ctl.placement()
    if port not in where:
        raise OperationError(f"no vNIC port {port!r}")
    if point == "VnicRx":
        vm, nic = _vm_nic_of(ctl, port)
        return tcpdump(ctl, vm, nic, pcap, bpf, ["-Q", "in", *(extra or [])])
    if point != "PortOutput":
        raise OperationError(f"unknown capture point {point!r} (PortOutput, VnicRx)")
    host = where[port].host
    iface = _open_port_output(ctl, host, port, where[port].ofport)
    on_stop = lambda: _close_port_output(ctl, host, port, iface)  # noqa: E731
    return tcpdump(ctl, host, iface, pcap, bpf, ["-Q", "in", *(extra or [])], on_stop)


def _vm_nic_of(ctl, port: str) -> tuple[str, str]:
    for vm in ctl.lab.vms:
        for nic in vm.vnics:
            if naming.vnic_port(vm.name, nic.name) == port:
                return vm.name, nic.name
    raise OperationError(f"no vNIC port {port!r}")


def tcpdump(
    ctl, node: str, iface: str, pcap: Path, bpf: str = "", direction: Optional[list] = None, on_stop=None
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
    proc = ctl.popen(
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
    wait(
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


def _open_port_output(ctl, host: str, port: str, ofport: int) -> tuple[str, list]:
    name = naming.capture_port(ofport)
    bridge = next(b for b in _bridges(ctl, host) if port in _ports_of(ctl, host, b))
    ctl.ovs(host).vsctl(
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
    ctl.sh(host, f"ip link set {name} up")
    captures = sorted(set(ctl.desired().get("captures", [])) | {port})
    ctl.request(captures=captures)
    return name


def _close_port_output(ctl, host: str, port: str, iface: str) -> None:
    ctl.request(captures=sorted(set(ctl.desired().get("captures", [])) - {port}))
    for bridge in _bridges(ctl, host):
        ctl.ovs(host).vsctl("--if-exists", "del-port", bridge, iface)


def _bridges(ctl, host: str) -> list[str]:
    return ctl.ovs(host).vsctl("list-br").split()


def _ports_of(ctl, host: str, bridge: str) -> list[str]:
    return ctl.ovs(host).vsctl("list-ports", bridge).split()

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

import os
import re
import signal
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from vlab import control, naming
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


_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e6),
    b"\xa1\xb2\xc3\xd4": (">", 1e6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e9),
    b"\xa1\xb2\x3c\x4d": (">", 1e9),
}
LINKTYPE_ETHERNET = 1


class PcapFollower:
    """An Ethernet pcap read as tcpdump writes it: each ``read()`` parses
    only the bytes added since the last, and returns every complete record
    so far as (timestamp, frame); a partly written record waits."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.records: list[tuple[float, bytes]] = []
        self._read = 0
        self._pending = b""
        self._format: Optional[tuple[str, float]] = None  # (byte order, timestamp units)

    def read(self) -> list[tuple[float, bytes]]:
        if not self.path.exists():
            return self.records
        with open(self.path, "rb") as fh:
            fh.seek(self._read)
            data = fh.read()
        self._read += len(data)
        buf = self._pending + data
        if self._format is None:
            if len(buf) < 24:
                self._pending = buf
                return self.records
            if buf[:4] not in _PCAP_MAGIC:
                raise OperationError(f"{self.path}: not a pcap file")
            self._format = _PCAP_MAGIC[buf[:4]]
            if struct.unpack(self._format[0] + "I", buf[20:24])[0] != LINKTYPE_ETHERNET:
                raise OperationError(f"{self.path}: not an Ethernet capture")
            buf = buf[24:]
        endian, units = self._format
        off = 0
        while off + 16 <= len(buf):
            sec, frac, length, _ = struct.unpack(endian + "IIII", buf[off : off + 16])
            if off + 16 + length > len(buf):
                break
            self.records.append((sec + frac / units, buf[off + 16 : off + 16 + length]))
            off += 16 + length
        self._pending = buf[off:]
        return self.records


def pcap_records(path: Path) -> list[tuple[float, bytes]]:
    """(timestamp, frame) of every complete record of an Ethernet pcap, also
    while tcpdump is still writing it (a partly written last record is left
    for the next read)."""
    return PcapFollower(path).read()


def write_pcap(path: Path, records: list[tuple[float, bytes]]) -> Path:
    """An Ethernet pcap (microsecond timestamps) of ``records``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    chunks = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET)]
    for ts, frame in records:
        sec, usec = divmod(round(ts * 1e6), 1_000_000)
        chunks.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(chunks))
    return path


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


# ESXi's capture points, by the kind of port they belong to, and which of the
# port's frames each sees: INPUT what enters the vSwitch from the port (its
# --dir 0), OUTPUT what the vSwitch sends to it (--dir 1). EtherswitchDispath
# is where the vSwitch takes a frame in from the port. What each becomes in
# the testbed is ``tap``'s.
INPUT, OUTPUT = 0, 1
CAPTURE_POINTS: dict[str, dict[str, int]] = {
    "uplink": {
        "UplinkRcv": INPUT,
        "EtherswitchDispath": INPUT,
        "PortInput": INPUT,
        "UplinkSnd": OUTPUT,
        "PortOutput": OUTPUT,
    },
    "vnic": {
        "VnicTx": INPUT,
        "EtherswitchDispath": INPUT,
        "PortInput": INPUT,
        "PortOutput": OUTPUT,
        "VnicRx": OUTPUT,
    },
    "vmk": {"EtherswitchDispath": INPUT, "PortInput": INPUT, "PortOutput": OUTPUT},
}
# The point pktcap-uw uses when none is given: seed 002's uplink capture
# says "Captured at EtherswitchDispath point".
DEFAULT_POINT = {
    ("uplink", INPUT): "EtherswitchDispath",
    ("uplink", OUTPUT): "UplinkSnd",
    ("vnic", INPUT): "PortInput",
    ("vnic", OUTPUT): "PortOutput",
    ("vmk", INPUT): "PortInput",
    ("vmk", OUTPUT): "PortOutput",
}


def point_direction(kind: str, point: str) -> int:
    """INPUT or OUTPUT for capture ``point`` of a ``kind`` port."""
    points = CAPTURE_POINTS[kind]
    if point not in points:
        raise OperationError(
            f"capture point {point!r} does not exist at {kind} ports (points: {', '.join(points)})"
        )
    return points[point]


@dataclass(frozen=True)
class Tap:
    """Where the testbed listens for one capture point of one port.

    Frames the userspace datapath transmits bypass packet taps on the
    sending interface, so every tap listens where a frame is *received*
    (``-Q in``), except a vmk's input: the host's own kernel sends those,
    and a kernel's sends are seen (``-Q out``). ``port_output``: the
    port's PortOutput copies, which the controller sends to an internal
    port while the capture is open (``desired.json`` ``captures``)."""

    node: str
    iface: str
    queue: str
    where: str  # one line for the user: where the frames are seen
    port_output: Optional[tuple[str, str, int]] = None  # (host, port name, its OpenFlow number)


def tap(ctl: "LabControl", host: str, port, point: str) -> Tap:
    """The tap of ``point`` at vSwitch port ``port`` (a ``PortBinding``) of ``host``."""
    if port.kind not in CAPTURE_POINTS:
        raise OperationError(
            f"{host}/{port.name} is a {port.kind} port: pktcap-uw captures at uplinks, vmks and vNICs"
        )
    direction = point_direction(port.kind, point)
    if port.kind == "uplink":
        if direction == INPUT:
            return Tap(host, port.name, "in", f"{host}/{port.name}, frames from the physical switch")
        fabric = ctl.fabric_port(host, port.name)
        return Tap(
            naming.FABRIC_NODE, fabric, "in", f"physical switch port {fabric}, frames from {host}/{port.name}"
        )
    if point == "PortOutput":
        copy = naming.capture_port(port.ofport)
        return Tap(
            host,
            copy,
            "in",
            f"{host}/{copy}, the controller's copy of every frame dispatched to {port.name}",
            port_output=(host, port.name, port.ofport),
        )
    if port.kind == "vmk":
        return Tap(host, port.name, "out", f"{host}/{port.name}, frames the VMkernel stack sends")
    if direction == INPUT:
        return Tap(host, port.name, "in", f"{host}/{port.name}, frames from the guest")
    vm, nic = _vm_nic_of(ctl, port.name)
    return Tap(vm, nic, "in", f"{vm}/{nic}, frames the guest receives")


def listening_marker(run_dir, pid: int) -> Path:
    """The file that exists while capture session ``pid`` (a pktcap-uw) listens."""
    return Path(run_dir) / "pktcap" / f"{pid}.listening"


def start_tap(
    ctl: "LabControl", t: Tap, pcap: Path, bpf: str = "", extra: Optional[list[str]] = None
) -> Capture:
    """A capture listening at ``t`` (``tcpdump`` has said so when this returns)."""
    on_stop = None
    try:
        if t.port_output is not None:
            host, name, ofport = t.port_output
            # Set before opening: a failure half way (the port added, the
            # controller slow to answer) is still undone.
            on_stop = lambda: _close_port_output(ctl, host, name, t.iface)  # noqa: E731
            _open_port_output(ctl, host, name, ofport)
        return tcpdump(ctl, t.node, t.iface, pcap, bpf, ["-Q", t.queue, *(extra or [])], on_stop)
    except BaseException:
        if on_stop:
            on_stop()
        raise


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
    """Start a capture, as ``pktcap-uw`` would: ``port`` is a vSwitch port
    (its name, ``vm-eth0``, or its ESXi port number) with ``point`` one of
    its ``CAPTURE_POINTS``; or ``uplink`` is (host, vmnic) with
    ``direction`` rx (into the host, UplinkRcv) or tx (UplinkSnd)."""
    if uplink is not None:
        host, vmnic = uplink
        if direction not in ("rx", "tx"):
            raise OperationError(f"unknown direction {direction!r} (rx, tx)")
        b, p = ctl.port(vmnic, host)
        point = "UplinkRcv" if direction == "rx" else "UplinkSnd"
    else:
        b, p = ctl.port(str(port))
    return start_tap(ctl, tap(ctl, b.host, p, point), pcap, bpf, extra)


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
        # Its own session: a shell's job-control kill of the pktcap-uw that
        # started it (``kill %1`` in ``vlab shell``) reaches the pktcap-uw
        # alone, which then stops the tap so its file is complete. A tap
        # left behind by a SIGKILLed caller carries the run's marker and
        # goes with the run.
        start_new_session=True,
    )
    try:
        wait(
            lambda: proc.poll() is not None or "listening on" in err.read_text(),
            10,
            f"tcpdump on {node}/{iface}",
        )
    except BaseException:
        proc.kill()  # not listening in time (or interrupted): leave no tcpdump behind
        proc.wait()
        raise
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


def _open_port_output(ctl, host: str, port: str, ofport: int) -> str:
    name = naming.capture_port(ofport)
    bridge = next(b for b in _bridges(ctl, host) if port in _ports_of(ctl, host, b))
    me = os.getpid()

    def edit(want: dict) -> None:
        # Under the desired lock, as the last session's close deletes it.
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
        want["captures"] = control.with_session(want.get("captures"), port, me, True)

    ctl.request_change(edit)
    return name


def _close_port_output(ctl, host: str, port: str, iface: str) -> None:
    me = os.getpid()

    def edit(want: dict) -> None:
        want["captures"] = control.with_session(want.get("captures"), port, me, False)
        if port not in want["captures"]:  # the port's last session: its copy port goes
            for bridge in _bridges(ctl, host):
                ctl.ovs(host).vsctl("--if-exists", "del-port", bridge, iface)

    ctl.request_change(edit)


def _bridges(ctl, host: str) -> list[str]:
    return ctl.ovs(host).vsctl("list-br").split()


def _ports_of(ctl, host: str, bridge: str) -> list[str]:
    return ctl.ovs(host).vsctl("list-ports", bridge).split()

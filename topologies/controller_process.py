"""The controller process: os-ken running ``controller`` (the vCenter / NSX
Manager stand-in) in the ``mgmt`` node, reached by each ESXi host over its
own point-to-point control link (100.64.0.0/16, one /30 per host).

Started before the ESXi hosts' vSwitches, so every bridge connects at once;
restarted (crash or clean stop) by experiments that measure resync. Its
output goes to ``controller.log`` in the run directory.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from mininet.node import Host

from vlab import naming
from vlab.bindings import SwitchBinding
from vlab.lab.model import Lab
from vlab.waiting import Pending, wait_for

from .readiness import NotReady

CONTROLLER_PORT = 6653
REPO = Path(__file__).resolve().parents[1]


def control_addresses(index: int) -> tuple[str, str]:
    """(/30 on the mgmt side, /30 on the host side) of host ``index``'s control link."""
    base = (100 << 24) | (64 << 16) | (index * 4)  # 100.64.0.0/16, one /30 each
    ip = lambda n: ".".join(str((n >> s) & 0xFF) for s in (24, 16, 8, 0))  # noqa: E731
    return f"{ip(base + 1)}/30", f"{ip(base + 2)}/30"


class ControllerProcess:
    """The os-ken controller of one run, in the mgmt node."""

    def __init__(self, mgmt: Host, lab: Lab, lab_file: Path, run_dir: Path):
        self.mgmt, self.lab, self.lab_file, self.run_dir = mgmt, lab, Path(lab_file), Path(run_dir)
        self.proc: Optional[subprocess.Popen] = None
        self.last_restart: dict[str, float] = {}

    def address_control_links(self, node_of) -> None:
        """Both ends of every ESXi host's control link (``node_of(name)`` -> node)."""
        for i, host in enumerate(self.lab.esxi_hosts):
            mine, theirs = control_addresses(i)
            self.mgmt.cmd(f"ip addr add {mine} dev {naming.control_port(host.name)}")
            node_of(host.name).cmd(f"ip addr add {theirs} dev {naming.CONTROL_IFACE}")

    def target(self, host: str) -> str:
        """The controller as ``host``'s vSwitches reach it (``tcp:IP:PORT``)."""
        index = [h.name for h in self.lab.esxi_hosts].index(host)
        return f"tcp:{control_addresses(index)[0].split('/')[0]}:{CONTROLLER_PORT}"

    def spawn(self) -> None:
        log = open(self.run_dir / "controller.log", "a")
        argv = ["--lab", str(self.lab_file), "--state", str(self.run_dir), "--port", str(CONTROLLER_PORT)]
        self.proc = self.mgmt.popen(
            [sys.executable, "-m", "controller", *argv], stdout=log, stderr=subprocess.STDOUT, cwd=str(REPO)
        )

    def check_alive(self) -> None:
        """Raise NotReady, with the controller's last words, if it died."""
        if self.proc.poll() is not None:
            log = (self.run_dir / "controller.log").read_text()[-2000:]
            raise NotReady(f"controller exited with {self.proc.returncode}:\n{log}")

    def wait_listening(self, timeout: float) -> None:
        def listening():
            self.check_alive()
            out = self.mgmt.cmd(f"ss -Hltn 'sport = :{CONTROLLER_PORT}'")
            return "LISTEN" in out or Pending(f"nothing listens on port {CONTROLLER_PORT}")

        wait_for(listening, timeout, "controller start", interval=0.05, error=NotReady)

    def restart(self, bindings: tuple[SwitchBinding, ...], kill: bool = True, timeout: float = 20.0) -> float:
        """Crash (SIGKILL) or stop the controller (if it still runs) and start
        a new one; return the seconds from the new start until every switch
        is resynced. The switches keep forwarding meanwhile (fail mode secure
        keeps flows)."""
        old = self.proc
        if old.poll() is None:
            old.kill() if kill else old.terminate()
        old.wait(10)
        markers = {b.dpid: naming.synced_marker(self.run_dir, b.dpid) for b in bindings}
        before = {d: m.stat().st_mtime_ns if m.exists() else 0 for d, m in markers.items()}
        t0 = time.monotonic()
        self.spawn()
        self.wait_listening(timeout)
        # Where a resync's time goes: the new process's start (imports, lab)
        # until it listens, then the switches' reconnect backoff and flows.
        self.last_restart = {"listening_s": time.monotonic() - t0}

        def resynced():
            self.check_alive()
            stale = [
                f"{b.host}/{b.bridge}"
                for b in bindings
                if not markers[b.dpid].exists() or markers[b.dpid].stat().st_mtime_ns == before[b.dpid]
            ]
            return not stale or Pending(f"not resynced: {', '.join(stale)}")

        wait_for(resynced, timeout, "controller resync", interval=0.05, error=NotReady)
        return time.monotonic() - t0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()

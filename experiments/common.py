"""What every experiment shares: a lab session with guaranteed teardown,
environment metadata, measurement helpers and result files.

An experiment is ``run(params) -> result dict`` (written to
``results/<experiment>/result.json``) plus ``plot(result, outdir)`` that needs
only that JSON.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from vlab.lab.load import load_lab
from vlab.lab.reachability import Endpoint
from vlab.runtime import Run, signals_as_exceptions, uninterruptible
from vlab.waiting import Pending, wait_for

if TYPE_CHECKING:
    from topologies.network import LabNetwork

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("VLAB_RESULTS", REPO / "results"))


def new_network(lab, lab_file, run) -> "LabNetwork":
    """The lab's network, not yet started. Imported here so that Mininet is
    needed only when a lab starts (``vlab plot`` and the unit tests run
    without it)."""
    from topologies.network import LabNetwork

    return LabNetwork(lab, lab_file, run)


@contextmanager
def lab_session(lab_file: str | Path, timeout: float = 90.0) -> Iterator[LabNetwork]:
    """A running lab; torn down on return, exception, Ctrl-C or SIGTERM."""
    lab = load_lab(lab_file)
    run, net = Run(), None
    # Signals become exceptions before anything exists, so there is no moment
    # where a SIGTERM could end the process with half a lab on the machine.
    with signals_as_exceptions():
        try:
            run.create()
            net = new_network(lab, lab_file, run)
            net.start(timeout=timeout)
            yield net
        finally:
            # A signal can still land between here and uninterruptible()
            # taking over (which swaps the handlers with the signals blocked,
            # pthread_sigmask): its KeyboardInterrupt must not skip the
            # teardown, so then the teardown runs anyway before it propagates.
            began = False
            try:
                with uninterruptible():
                    began = True
                    _teardown(net, run)
            finally:
                if not began:
                    with uninterruptible():
                        _teardown(net, run)


def _teardown(net: LabNetwork | None, run: Run) -> None:
    try:
        if net is not None:
            net.stop()
    finally:
        # Whatever stop() could not reach dies by its run marker.
        run.remove()


def _version(cmd: list[str], pattern: str) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        out = proc.stdout + proc.stderr  # mn prints its version to stderr
    except OSError:
        return "unknown"
    m = re.search(pattern, out)
    return m.group(1) if m else "unknown"


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except OSError:
        return ""


def environment(net: LabNetwork | None = None) -> dict:
    """Where and with what a result was measured."""
    # A copy of the tree on a machine without git (a stock image) still runs.
    git = _git("rev-parse", "--short", "HEAD") or "unknown"
    # Results are outputs: a run rewriting them does not make the code dirty.
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results")
    env = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ovs": _version(["ovs-vswitchd", "--version"], r"(\d+\.\d+\.\d+)"),
        "mininet": _version(["mn", "--version"], r"(\d+\.\d+\.\d+\S*)"),
        "os_ken": metadata.version("os-ken"),
        "cpus": os.cpu_count(),
        "git": git + ("-dirty" if dirty else ""),
        "netem_available": Path("/lib/modules").exists()
        and bool(subprocess.run(["modinfo", "sch_netem"], capture_output=True).returncode == 0),
    }
    if net is not None:
        env.update(
            {
                "datapath": net.lab.datapath,
                "link_scale": net.lab.link_scale,
                "bringup_s": round(net.timings.get("bringup_s", 0.0), 3),
            }
        )
    return env


def verdicts_of(claims: dict) -> dict[str, bool]:
    """One verdict per claim, for experiments whose claims each carry theirs."""
    return {k: bool(v["verdict"]) for k, v in claims.items()}


def write_result(name: str, result: dict) -> Path:
    out = RESULTS / name
    out.mkdir(parents=True, exist_ok=True)
    path = out / "result.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


def save_figure(fig, outdir: Path, name: str) -> list[Path]:
    """Write ``fig`` as PNG and PDF under ``outdir`` and close it."""
    import matplotlib.pyplot as plt

    outdir.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    paths = []
    for ext in ("png", "pdf"):
        path = Path(outdir) / f"{name}.{ext}"
        # No creation date in the PDF: redrawing from the same JSON gives the same file.
        fig.savefig(path, dpi=150, metadata={"CreationDate": None} if ext == "pdf" else None)
        paths.append(path)
    plt.close(fig)
    return paths


def repo_paths(paths: dict[str, Path]) -> dict[str, str]:
    """Lab paths as a result records them: relative to the repository when inside it."""
    return {
        k: str(v.relative_to(RESULTS.parent) if v.is_relative_to(RESULTS.parent) else v)
        for k, v in paths.items()
    }


def read_result(name: str) -> dict:
    return json.loads((RESULTS / name / "result.json").read_text())


# -- measurements ----------------------------------------------------------------
def ping_sweep(net: LabNetwork, src: Endpoint, dsts: list[Endpoint]) -> dict[str, bool]:
    """Ping every destination from ``src`` in parallel; name -> got a reply."""
    node = net.node(src.node)
    script = " ".join(
        f"(ping -n -q -c 3 -i 0.2 -W 1 -I {src.ip.ip} {d.ip.ip} >/dev/null 2>&1 && echo OK {d.name}) &"
        for d in dsts
    )
    out = node.cmd(f"{script} wait")
    ok = {line.split()[1] for line in out.splitlines() if line.startswith("OK ")}
    return {d.name: d.name in ok for d in dsts}


def iperf3(
    net: LabNetwork, server: Endpoint, client: Endpoint, seconds: float = 5.0, port: int = 5201
) -> dict:
    """One TCP iperf3 run client -> server; returns throughput and retransmits."""
    srv = net.node(server.node)
    proc = srv.popen(
        ["iperf3", "-s", "-1", "-B", str(server.ip.ip), "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: "LISTEN" in srv.cmd(f"ss -Hltn 'sport = :{port}'") or Pending("iperf3 not listening"),
            10,
            f"iperf3 server on {server.name}",
            interval=0.05,
        )
        t0 = time.monotonic()
        out = net.node(client.node).cmd(
            f"iperf3 -c {server.ip.ip} -B {client.ip.ip} -p {port} -t {seconds} -J"
        )
        data = json.loads(out)
        if "error" in data:
            raise RuntimeError(f"iperf3 {client.name} -> {server.name}: {data['error']}")
        end = data["end"]
        return {
            "mbps": end["sum_received"]["bits_per_second"] / 1e6,
            "retransmits": end["sum_sent"].get("retransmits", 0),
            "seconds": end["sum_received"]["seconds"],
            "wall_s": time.monotonic() - t0,
        }
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=10)


# -- progress ------------------------------------------------------------------------
class Progress:
    """``[experiment +12.3s] phase`` lines on stderr for long runs; silent when
    VLAB_QUIET is set (``vlab run -q``, CI)."""

    def __init__(self, name: str):
        self.name, self.t0 = name, time.monotonic()

    def __call__(self, phase: str) -> None:
        if not os.environ.get("VLAB_QUIET"):
            print(f"[{self.name} +{time.monotonic() - self.t0:.1f}s] {phase}", file=sys.stderr, flush=True)


# -- guests, captures ------------------------------------------------------------------
def guest_tool(net: LabNetwork, node: str, tool: str, *args: str, wait: bool = True):
    """Run ``python -m experiments.tools.<tool>`` inside a node (a guest's own
    stack). With ``wait`` return its exit code, else the running process."""
    argv = [sys.executable, "-m", f"experiments.tools.{tool}", *map(str, args)]
    proc = net.node(node).popen(
        argv, cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if not wait:
        return proc
    out, err = proc.communicate(timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} on {node} failed: {err.strip()[-500:]}")
    return proc.returncode


def vm_mac(net: LabNetwork, vm: str) -> str:
    """The configured (.vmx) MAC of ``vm``'s first vNIC, lower case."""
    return next(v for v in net.lab.vms if v.name == vm).vnics[0].mac.lower()


def tagged(tag: str):
    """A frame predicate: it carries ``tag`` (the payload the frames tool
    writes). End tags with a character no other tag has there (``;``), so no
    tag is a prefix of another."""
    return lambda frame: bytes(frame).find(tag.encode()) >= 0


def udp_send(net: LabNetwork, node: str, src, dst, port: int, pps: int, count: int, wait: bool = False):
    """``count`` UDP datagrams at ``pps`` from ``src`` to ``dst`` (an
    address or a group) inside ``node`` (``experiments.tools.udp``, each
    carrying its sequence number); its process, or its output with ``wait``."""
    return guest_tool(
        net,
        node,
        "udp",
        "send",
        "--src",
        src,
        "--dst",
        dst,
        "--port",
        port,
        "--pps",
        pps,
        "--count",
        count,
        wait=wait,
    )


def send_frames(net: LabNetwork, node: str, src: str, dst: str, tag: str, count: int = 20, extra=()) -> None:
    """``count`` hand-made frames from ``src`` to ``dst`` inside ``node``
    (``experiments.tools.frames``; ``extra``: more of its options)."""
    guest_tool(net, node, "frames", "--src", src, "--dst", dst, "--count", count, "--tag", tag, *extra)


def wait_ready_line(proc: subprocess.Popen, what: str, timeout: float = 10.0) -> None:
    """Block until a tool prints its "ready" line (it has joined/bound)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip() == "ready":
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {proc.stderr.read()[-500:]}")
    raise RuntimeError(f"{what}: no ready line after {timeout}s")


def stop_tool(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
    proc.wait(timeout=10)


def quiesce(pcaps: list[Path], quiet_s: float = 0.3, timeout: float = 5.0) -> None:
    """Wait until no capture file has grown for ``quiet_s``: frames in flight
    have landed (a drain condition, not a fixed delay)."""

    def sizes():
        return [p.stat().st_size if p.exists() else 0 for p in pcaps]

    deadline = time.monotonic() + timeout
    last, since = sizes(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = sizes()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return


def read_pcap(pcap: Path) -> list:
    # Register Ethernet, IP, ... and IGMP before dissecting.
    for module in ("scapy.layers.all", "scapy.contrib.igmp"):
        importlib.import_module(module)
    from scapy.utils import PcapReader

    if not Path(pcap).exists() or Path(pcap).stat().st_size == 0:
        return []
    with PcapReader(str(pcap)) as reader:
        return list(reader)


def count_frames(pcap: Path, predicate=None) -> int:
    return sum(1 for p in read_pcap(pcap) if predicate is None or predicate(p))

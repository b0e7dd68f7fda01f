"""What of ours exists on the machine right now (for cleanup assertions).

Other labs may run on the machine meanwhile (another user, another test
session), so a test narrows a snapshot to its own run: a run directory
counts only when its ``owner.pid`` is the test's process (or its name is the
run id), a process only when its environment carries the test's own token
(every process of a run inherits its starter's environment, as its
``VLAB_RUN`` marker shows). Namespaces and root-namespace interfaces, which
no lab should create, are compared machine-wide."""

import json
import os
import subprocess
from pathlib import Path

from vlab import naming
from vlab.runtime import processes_with_env, signals_as_on_a_terminal  # noqa: F401 (re-exported)

TOKEN_ENV = "VLAB_TEST_TOKEN"  # set by a test in the environment of the lab it starts


def snapshot() -> dict:
    """Namespaces, root-namespace links, run dirs and marked processes."""
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True).stdout)
    procs = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                env = Path(f"/proc/{entry}/environ").read_bytes()
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            # zombies are reaped by their parent, not ours to count
            if f"{naming.RUN_ENV}=".encode() in env and ") Z " not in stat:
                procs.append(int(entry))
    root = Path(naming.RUN_ROOT)
    return {
        "netns": sorted(netns.split()),
        "links": sorted(link["ifname"] for link in links),
        "run_dirs": sorted(p.name for p in root.iterdir()) if root.is_dir() else [],
        "processes": sorted(procs),
    }


def new_since(before: dict, after: dict) -> dict:
    return {k: sorted(set(after[k]) - set(before[k])) for k in before if set(after[k]) - set(before[k])}


def owner(run_dir: Path) -> int | None:
    """The PID that started the run in ``run_dir`` (its ``owner.pid``)."""
    try:
        return int((run_dir / "owner.pid").read_text())
    except (OSError, ValueError):
        return None


def run_dir_of(pid: int) -> Path | None:
    root = Path(naming.RUN_ROOT)
    dirs = [d for d in root.iterdir() if owner(d) == pid] if root.is_dir() else []
    return dirs[0] if dirs else None


def carrying(pids, entry: str) -> list[int]:
    """The PIDs whose environment holds ``entry`` (NAME=value)."""
    marked = set(processes_with_env(entry))
    return [p for p in pids if p in marked]


def ours(
    snap: dict | None = None, *, token: str | None = None, pid: int | None = None, run_id: str | None = None
) -> dict:
    """``snapshot()`` narrowed to one run: the processes carrying ``token``
    (or the run's own ``VLAB_RUN`` marker) and the run directory owned by
    ``pid`` (or named ``run_id``)."""
    snap = snap or snapshot()
    root = Path(naming.RUN_ROOT)
    entry = f"{TOKEN_ENV}={token}" if token else f"{naming.RUN_ENV}={run_id}"
    return {
        **snap,
        "processes": carrying(snap["processes"], entry),
        "run_dirs": [
            d for d in snap["run_dirs"] if (pid is not None and owner(root / d) == pid) or d == run_id
        ],
    }


def nothing_before() -> dict:
    """The machine now, with no process or run directory counted as ours yet."""
    return {**snapshot(), "processes": [], "run_dirs": []}

"""A run of the testbed: its private directory, its marker, its cleanup.

Every run gets ``/run/vlab/<run id>/`` holding ``owner.pid`` (the vlab process
that made it) and every OVS instance's files. Every process started for it
inherits ``VLAB_RUN=<run id>`` in its environment. ``clean_dead_runs`` removes
the leftovers of runs whose owner died (crash, SIGKILL): it kills only
processes carrying a dead run's marker, and touches nothing else.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from . import naming
from .control import pid_running


def processes_with_env(entry: str) -> list[int]:
    """PIDs (other than ours) whose initial environment holds ``entry`` (NAME=value)."""
    wanted = entry.encode()
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            env = Path(f"/proc/{name}/environ").read_bytes()
        except OSError:
            continue
        if wanted in env.split(b"\0"):
            pids.append(int(name))
    return pids


def processes_of_run(run_id: str) -> list[int]:
    """PIDs whose initial environment carries ``VLAB_RUN=<run_id>``."""
    return processes_with_env(f"{naming.RUN_ENV}={run_id}")


def kill_run_processes(run_id: str, grace: float = 2.0) -> int:
    """SIGTERM and SIGHUP, then SIGKILL after ``grace`` seconds for whatever
    still runs, every process of the run. SIGHUP is for Mininet's node
    shells (``bash -is``: an interactive shell ignores SIGTERM, and would
    hold the cleanup for the whole grace time); our daemons, tools and the
    controller exit on either signal."""
    pids = processes_of_run(run_id)
    for pid in pids:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_running(p) for p in pids):
        time.sleep(0.02)
    # SIGKILL cannot be ignored: the caller removes the run directory at
    # once, without waiting for the kernel to finish the exits.
    for pid in processes_of_run(run_id):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)


class Run:
    """The directory and identity of one testbed run."""

    def __init__(self, run_id: str | None = None):
        self.id = run_id or naming.new_run_id()
        self.dir = Path(naming.RUN_ROOT) / self.id

    def create(self) -> "Run":
        self.dir.mkdir(parents=True, exist_ok=False)
        (self.dir / "owner.pid").write_text(str(os.getpid()))
        # Children (Mininet shells, OVS daemons, the controller) inherit it.
        os.environ[naming.RUN_ENV] = self.id
        # iproute2 6.x (Debian 13) colours its output on a terminal, and
        # Mininet's node shells are terminals: the escapes would end up in
        # every `ip` output the testbed reads. NO_COLOR is its off switch.
        os.environ["NO_COLOR"] = "1"
        return self

    def remove(self) -> None:
        kill_run_processes(self.id)
        shutil.rmtree(self.dir, ignore_errors=True)
        if os.environ.get(naming.RUN_ENV) == self.id:
            del os.environ[naming.RUN_ENV]


def existing_runs() -> list[Run]:
    root = Path(naming.RUN_ROOT)
    if not root.is_dir():
        return []
    return [Run(p.name) for p in sorted(root.iterdir()) if p.is_dir() and p.name.startswith(naming.PREFIX)]


def owner_alive(run: Run) -> bool:
    try:
        pid = int((run.dir / "owner.pid").read_text())
    except (OSError, ValueError):
        return False
    return pid_running(pid)


def clean_dead_runs(include_live: bool = False) -> list[str]:
    """Remove runs whose owner process is gone (or all runs with ``include_live``)."""
    cleaned = []
    for run in existing_runs():
        if include_live or not owner_alive(run):
            run.remove()
            cleaned.append(run.id)
    return cleaned


TEARDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def _signals_held() -> Iterator[None]:
    """Block SIGINT/SIGTERM/SIGHUP in this thread while handlers are swapped:
    one arriving between two ``signal.signal`` calls would otherwise meet a
    mix of old and new handlers (an old one raises KeyboardInterrupt). A
    signal that arrives meanwhile waits in the kernel and reaches the new
    handlers when unblocked. (Only the calling thread is blocked: the
    testbed's processes take signals in their main thread.)"""
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, TEARDOWN_SIGNALS)
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, TEARDOWN_SIGNALS)


@contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """Turn SIGTERM (and SIGHUP) into KeyboardInterrupt so ``finally`` blocks
    tear the lab down exactly as for Ctrl-C."""

    def handler(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    with _signals_held():
        old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        with _signals_held():
            for s, h in old.items():
                signal.signal(s, h)


@contextmanager
def uninterruptible() -> Iterator[None]:
    """Defer SIGINT/SIGTERM while tearing down, so a second Ctrl-C cannot
    leave half a lab behind; the deferred signal is re-raised afterwards.
    The handlers are swapped with the signals blocked, so there is no
    moment where some are deferred and others still raise."""
    caught: list[int] = []
    with _signals_held():
        old = {s: signal.signal(s, lambda n, _f: caught.append(n)) for s in TEARDOWN_SIGNALS}
    try:
        yield
    finally:
        with _signals_held():
            for s, h in old.items():
                signal.signal(s, h)
    if caught:
        raise KeyboardInterrupt(f"signal {caught[0]} during teardown")


def signals_as_on_a_terminal() -> None:
    """``preexec_fn`` for a child that must hear Ctrl-C: SIGINT and SIGQUIT
    back to their defaults. A shell starts background jobs with both
    ignored, and an ignored disposition is inherited, so a test suite started
    that way (nohup ... &, a CI runner) would interrupt labs that cannot hear
    it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)

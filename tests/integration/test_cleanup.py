"""Nothing of ours survives a run: normal exit, Ctrl-C or SIGTERM during
bring-up, and SIGKILL followed by ``vlab clean``."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import REPO, TWO_HOSTS
from tests.integration.leftovers import new_since, snapshot
from vlab import naming

HOLD = [sys.executable, str(Path(__file__).with_name("hold_lab.py")), str(TWO_HOSTS)]


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def _new_run_dir(before: set) -> Path | None:
    root = Path(naming.RUN_ROOT)
    new = set(os.listdir(root)) - before if root.is_dir() else set()
    return root / new.pop() if new else None


def _start_hold():
    root = Path(naming.RUN_ROOT)
    before = set(os.listdir(root)) if root.is_dir() else set()
    proc = subprocess.Popen(HOLD, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    return proc, before


def test_normal_exit_leaves_nothing():
    from experiments.common import lab_session
    before = snapshot()
    with lab_session(TWO_HOSTS) as net:
        during = new_since(before, snapshot())
        assert during.get("processes"), "a running lab should have marked processes"
        assert (Path(naming.RUN_ROOT) / net.run.id).is_dir()
    assert new_since(before, snapshot()) == {}


# Interrupt at distinct moments of bring-up, each marked by a file the
# bring-up creates: run dir made, fabric OVS up, a host's OVS up, first
# switch synced by the controller.
PHASES = ["owner.pid", "fabric/ovs-vswitchd.ctl", "esx2/ovs-vswitchd.ctl", "synced"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("phase", PHASES)
def test_signal_during_bringup_leaves_nothing(sig, phase):
    before = snapshot()
    proc, dirs_before = _start_hold()
    try:
        _wait_for(lambda: (d := _new_run_dir(dirs_before)) is not None and (d / phase).exists()
                  or proc.poll() is not None, 60, f"bring-up phase {phase}")
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert new_since(before, snapshot()) == {}


def test_vlab_clean_removes_a_killed_run_and_only_that():
    before = snapshot()
    proc, _ = _start_hold()
    try:
        line = proc.stdout.readline()
        assert line.startswith("READY"), proc.stderr.read()
        run_id = line.split()[1]
        proc.kill()                      # no chance to clean up
        proc.wait()
        left = new_since(before, snapshot())
        assert left.get("processes") and run_id in left.get("run_dirs", [])
        out = subprocess.run([str(REPO / ".venv" / "bin" / "vlab"), "clean"], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert run_id in out.stdout
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert new_since(before, snapshot()) == {}


def test_controller_exits_cleanly_on_sigterm():
    """Teardown ends the controller with SIGTERM, not by the SIGKILL fallback
    (its non-daemon library threads once kept it alive for the whole grace time)."""
    from experiments.common import lab_session
    with lab_session(TWO_HOSTS) as net:
        proc = net.controller_proc
    assert proc.returncode == 0, proc.returncode

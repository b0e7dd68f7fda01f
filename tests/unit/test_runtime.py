"""Signal handling and process cleanup of a run, without a lab."""

import os
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from experiments import common
from tests.integration.conftest import TWO_HOSTS
from vlab import runtime


def _blocked() -> set:
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, [])) & set(runtime.TEARDOWN_SIGNALS)


def test_a_signal_during_teardown_is_deferred_then_raised():
    before = signal.getsignal(signal.SIGTERM)
    reached = False
    with pytest.raises(KeyboardInterrupt, match="during teardown"):
        with runtime.signals_as_exceptions():
            with runtime.uninterruptible():
                os.kill(os.getpid(), signal.SIGTERM)
                reached = True
    assert reached
    assert signal.getsignal(signal.SIGTERM) is before
    assert _blocked() == set()  # nothing left blocked


class FakeRun:
    def __init__(self):
        self.removed = 0

    def create(self):
        return self

    def remove(self):
        self.removed += 1


class FakeNet:
    def __init__(self, *args):
        self.stopped = 0

    def start(self, timeout):
        return self

    def stop(self):
        self.stopped += 1


def test_a_signal_just_before_uninterruptible_takes_over_does_not_skip_teardown(monkeypatch):
    """The KeyboardInterrupt lands as the teardown begins (here: raised by
    the first uninterruptible() itself): the teardown still runs, once, and
    the interrupt propagates afterwards."""
    run, calls = FakeRun(), []
    real = runtime.uninterruptible

    @contextmanager
    def first_one_interrupted():
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt("signal 15")
        with real():
            yield

    monkeypatch.setattr(common, "Run", lambda: run)
    monkeypatch.setattr(common, "new_network", FakeNet)
    monkeypatch.setattr(common, "uninterruptible", first_one_interrupted)
    with pytest.raises(KeyboardInterrupt, match="signal 15"):
        with common.lab_session(TWO_HOSTS) as net:
            pass
    assert (net.stopped, run.removed, len(calls)) == (1, 1, 2)


def test_a_zombie_is_not_running():
    from vlab.control import pid_running

    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while pid_running(child.pid):  # exits, stays a zombie until reaped
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert Path(f"/proc/{child.pid}").exists()  # still in /proc
    child.wait()
    assert not pid_running(child.pid)


def test_a_bringup_step_that_blocks_forever_is_interrupted_with_its_name():
    """What Mininet's startShell does when mnexec fails: a read that never
    returns. The time limit turns it into one NotReady naming the step."""
    import os

    import pytest

    from topologies.readiness import NotReady, time_limit

    r, w = os.pipe()
    try:
        with pytest.raises(NotReady, match="stuck starting esx1's shell"):
            with time_limit(0.2, lambda: "starting esx1's shell"):
                os.read(r, 1)
    finally:
        os.close(r)
        os.close(w)

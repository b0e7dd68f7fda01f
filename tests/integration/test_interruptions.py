"""Ctrl-C and SIGTERM at random moments leave nothing behind.

Each cycle starts ``hold_lab.py`` (the two-hosts lab, held until a signal)
as ``test_cleanup`` does, and sends SIGINT or SIGTERM after a seeded random
delay between 0 and one and a half times the measured time to READY, so
signals land during bring-up and while the lab is up. A third of the cycles
send a second signal within the measured teardown time after the first,
landing during teardown (while the run directory, removed last, still
exists) or after it. After every cycle the process has exited, its last word is a
KeyboardInterrupt (or nothing: killed before Python had a handler), and no
namespace, interface, marked process or run directory is left.

Other labs may run on the machine meanwhile: each cycle counts only its own
run directory and processes (``leftovers.ours``).

``test_interrupted_bringups_leave_nothing`` runs 6 cycles in the default run;
the 30-cycle variant is marked ``slow`` (``pytest -m slow``).
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import REPO
from tests.integration.leftovers import (
    TOKEN_ENV,
    carrying,
    new_since,
    nothing_before,
    ours,
    run_dir_of,
    signals_as_on_a_terminal,
    snapshot,
)
from tests.integration.test_cleanup import HOLD
from vlab import naming

SIGNALS = (signal.SIGINT, signal.SIGTERM)
# How far bring-up got when a signal arrived: files it creates, in order.
MARKS = [
    ("owner.pid", "run dir"),
    ("fabric/ovs-vswitchd.ctl", "fabric OVS"),
    ("esx1/ovs-vswitchd.ctl", "esx1 OVS"),
    ("esx2/ovs-vswitchd.ctl", "esx2 OVS"),
    ("synced", "controller syncing"),
]
EXIT_TIMEOUT = 60.0


@dataclass(frozen=True)
class Timing:
    ready_s: float  # start of hold_lab.py until READY
    teardown_s: float  # signal while up until exit


def _ready(out: Path) -> bool:
    return out.exists() and out.read_text().startswith("READY")


def _phase(out: Path, proc: subprocess.Popen) -> str:
    """Where the lab was when a signal is sent."""
    if proc.poll() is not None:
        return "exited"
    if _ready(out):
        return "up"
    run_dir = run_dir_of(proc.pid)
    reached = [label for mark, label in MARKS if run_dir is not None and (run_dir / mark).exists()]
    return f"bring-up: {reached[-1] if reached else 'no run dir yet'}"


def _start(tmp: Path, n: int):
    """hold_lab.py with a fresh token in its environment; (proc, token, out, err)."""
    token = secrets.token_hex(4)
    out, err = tmp / f"hold{n}.out", tmp / f"hold{n}.err"
    with open(out, "w") as o, open(err, "w") as e:
        proc = subprocess.Popen(
            HOLD,
            cwd=REPO,
            stdout=o,
            stderr=e,
            text=True,
            env={**os.environ, TOKEN_ENV: token},
            preexec_fn=signals_as_on_a_terminal,
        )
    return proc, token, out, err


def _last_word(err: Path) -> str:
    lines = [line for line in err.read_text().splitlines() if line.strip()]
    return lines[-1] if lines else ""


@pytest.fixture(scope="module")
def timing(tmp_path_factory) -> Timing:
    """The machine's time to READY and teardown time, from one undisturbed run."""
    tmp = tmp_path_factory.mktemp("calibrate")
    before = nothing_before()
    proc, token, out, err = _start(tmp, 0)
    try:
        t0 = time.monotonic()
        deadline = t0 + 60
        while not _ready(out):
            assert proc.poll() is None, err.read_text()[-2000:]
            assert time.monotonic() < deadline, f"no READY after 60s: {err.read_text()[-2000:]}"
            time.sleep(0.01)
        ready_s = time.monotonic() - t0
        # The token marks exactly the run's processes (what leftovers counts).
        run_id = out.read_text().split()[1]
        snap = snapshot()
        marked = carrying(snap["processes"], f"{naming.RUN_ENV}={run_id}")
        mine = ours(snap, token=token, pid=proc.pid)
        assert marked and marked == mine["processes"] and mine["run_dirs"] == [run_id], (marked, mine)
        t1 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(EXIT_TIMEOUT)
        teardown_s = time.monotonic() - t1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert new_since(before, ours(token=token, pid=proc.pid)) == {}
    return Timing(ready_s, teardown_s)


def _cycle(rng: random.Random, timing: Timing, tmp: Path, n: int) -> dict:
    sig = rng.choice(SIGNALS)
    delay = rng.uniform(0, timing.ready_s * 1.5)
    second = rng.choice(SIGNALS) if rng.random() < 1 / 3 else None
    delay2 = rng.uniform(0, timing.teardown_s * 1.2)
    record = {"n": n, "signal": sig.name, "delay_s": round(delay, 3)}
    before = nothing_before()
    proc, token, out, err = _start(tmp, n)
    try:
        try:
            proc.wait(delay)  # the chosen moment (returns early only if it died)
        except subprocess.TimeoutExpired:
            pass
        record["phase"] = _phase(out, proc)
        assert proc.poll() is None, f"cycle {n}: hold_lab exited on its own: {err.read_text()[-2000:]}"
        proc.send_signal(sig)
        if second is not None:
            try:
                proc.wait(delay2)
            except subprocess.TimeoutExpired:
                pass
            record["second"] = f"{second.name} +{delay2:.3f}s " + (
                "after exit"
                if proc.poll() is not None
                else "during teardown"
                if run_dir_of(proc.pid) is not None
                else "alive, no run dir"
            )
            if proc.poll() is None:
                proc.send_signal(second)
        t = time.monotonic()
        try:
            proc.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"cycle {n} {record}: hold_lab still running {EXIT_TIMEOUT:.0f}s after the signal"
            ) from None
        record["exit_s"] = round(time.monotonic() - t, 3)
        record["returncode"] = proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    last = _last_word(err)
    assert last == "" or last.startswith("KeyboardInterrupt"), (
        f"cycle {n} {record}: hold_lab ended with {last!r}:\n{err.read_text()[-3000:]}"
    )
    left = new_since(before, ours(token=token, pid=proc.pid))
    assert left == {}, f"cycle {n} {record} left {left}\n{err.read_text()[-3000:]}"
    return record


def _run_cycles(seed: int, cycles: int, timing: Timing, tmp: Path) -> None:
    rng = random.Random(seed)
    t0 = time.monotonic()
    records = [_cycle(rng, timing, tmp, n) for n in range(1, cycles + 1)]
    phases = Counter(r["phase"].split(":")[0] for r in records)
    seconds = Counter(r["second"].split(" ", 2)[2] for r in records if "second" in r)
    print(
        f"\n{cycles} cycles (seed {seed}) in {time.monotonic() - t0:.1f}s; READY after "
        f"{timing.ready_s:.2f}s, teardown {timing.teardown_s:.2f}s when calibrated; first "
        f"signal {dict(phases)}; second signal {dict(seconds)}"
    )
    for r in records:
        print("  ", r)


def test_interrupted_bringups_leave_nothing(timing, tmp_path):
    _run_cycles(2027, 6, timing, tmp_path)


@pytest.mark.slow
def test_thirty_interrupted_bringups_leave_nothing(timing, tmp_path):
    _run_cycles(2026, 30, timing, tmp_path)

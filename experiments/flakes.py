"""``vlab bench --flakes N``: the whole test suite N times, with CPUs kept busy.

A suite that passes on an idle machine and fails on a loaded one depends on
timing it does not control. This runs pytest N times in a row while a load
generator keeps ``load_cpus`` CPUs busy (``stress-ng --cpu``, Debian's; a
Python busy loop per CPU where it is missing), and records for every run how
many tests passed and failed, and which failed (pytest's JUnit XML, not its
console output). The result goes to ``results/bench/flakes.json``; the
verdict is met only when every run had no failing test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from pathlib import Path

from experiments.common import REPO, RESULTS, environment
from vlab import naming
from vlab.runtime import signals_as_on_a_terminal

NAME = "flakes"
OUT = RESULTS / "bench"


@contextmanager
def cpu_load(cpus: int):
    """Keep ``cpus`` CPUs busy until the block ends. The generator carries a
    run marker of its own, so ``vlab clean`` would find it after a crash."""
    if cpus <= 0:
        yield "none"
        return
    env = {**os.environ, naming.RUN_ENV: f"{naming.PREFIX}load{os.getpid()}"}
    if shutil.which("stress-ng"):
        procs = [
            subprocess.Popen(
                ["stress-ng", "--cpu", str(cpus), "--quiet"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        ]
        how = f"stress-ng --cpu {cpus}"
    else:
        procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], env=env) for _ in range(cpus)]
        how = f"{cpus} Python busy loop(s)"
    try:
        yield how
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def junit_counts(xml_path: Path) -> dict:
    """passed/failed/skipped counts and the failing test ids of one run."""
    if not xml_path.exists():
        return {"passed": 0, "failed": 0, "skipped": 0, "failing": ["(no JUnit report)"]}
    failing, skipped, total = [], 0, 0
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        total += 1
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        if case.find("failure") is not None or case.find("error") is not None:
            failing.append(test_id)
        elif case.find("skipped") is not None:
            skipped += 1
    return {
        "passed": total - len(failing) - skipped,
        "failed": len(failing),
        "skipped": skipped,
        "failing": failing,
    }


def run(runs: int, load_cpus: int = 1, pytest_args: tuple[str, ...] = (), out: Path = OUT) -> dict:
    work = out / "flakes"
    work.mkdir(parents=True, exist_ok=True)
    records = []
    with cpu_load(load_cpus) as how:
        for i in range(runs):
            xml = work / f"run{i + 1}.xml"
            xml.unlink(missing_ok=True)
            t0 = time.monotonic()
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    f"--junitxml={xml}",
                    *pytest_args,
                ],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                preexec_fn=signals_as_on_a_terminal,
            )
            counts = junit_counts(xml)
            summary = next((line for line in reversed(proc.stdout.splitlines()) if line.strip()), "")
            records.append(
                {
                    "run": i + 1,
                    "exit_code": proc.returncode,
                    **counts,
                    "wall_s": round(time.monotonic() - t0, 1),
                    "summary": summary,
                }
            )
            print(f"[flakes] run {i + 1}/{runs}: {summary}", flush=True)
    result = {
        "experiment": NAME,
        "runs": records,
        "load": how,
        "load_cpus": load_cpus,
        "pytest_args": list(pytest_args),
        "failing_tests_per_run": [r["failed"] for r in records],
        "verdicts": {
            "no_failing_test_in_any_run": all(r["failed"] == 0 and r["exit_code"] == 0 for r in records)
        },
        "environment": environment(),
    }
    (out / "flakes.json").write_text(json.dumps(result, indent=2) + "\n")
    return result

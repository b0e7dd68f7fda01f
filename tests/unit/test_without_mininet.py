"""The rootless layer needs no Mininet: `vlab check`, `vlab trace` from a lab
file and `vlab plot` (figures and REPORT.md redrawn from the shipped JSON)
run in a Python where importing mininet fails."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Any import of mininet raises, as on a machine without it.
NO_MININET = """
import sys
class _Refuse:
    def find_spec(self, name, path=None, target=None):
        if name == "mininet" or name.startswith("mininet."):
            raise ImportError("mininet is not installed here")
sys.meta_path.insert(0, _Refuse())
from vlab import cli
sys.exit(cli.main(sys.argv[1:]))
"""


def _vlab(*argv, env=None):
    return subprocess.run(
        [sys.executable, "-c", NO_MININET, *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )


def test_check_and_trace_run_without_mininet():
    assert _vlab("check", "labs/two-hosts.yaml").returncode == 0
    out = _vlab("trace", "labs/reverse-teaming.yaml", "--host", "esx1", "--port", "vmnic3", "--vlan", "100")
    assert out.returncode == 0, out.stderr
    assert "reverse teaming" in out.stdout


def test_plot_redraws_every_shipped_result_without_mininet(tmp_path):
    import os

    results = tmp_path / "results"
    shutil.copytree(REPO / "results", results)
    out = _vlab("plot", env={**os.environ, "VLAB_RESULTS": str(results), "MPLBACKEND": "Agg"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert (results / "REPORT.md").exists()

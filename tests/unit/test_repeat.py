"""--repeat: metrics per run, mean and 95% CI, the figure from JSON (no root)."""

import json
from pathlib import Path

import pytest

from experiments import REGISTRY, get, repeat

RESULTS = Path(__file__).resolve().parents[2] / "results"


def test_mean_and_ci95_use_students_t():
    mean, half = repeat.mean_ci95([9.8, 10.0, 10.2])
    assert mean == pytest.approx(10.0)
    assert half == pytest.approx(4.303 * 0.2 / 3**0.5, rel=1e-3)
    assert repeat.mean_ci95([5.0]) == (5.0, 0.0)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_metrics_of_every_experiment_read_its_stored_result(name, tmp_path):
    stored = RESULTS / name / "result.json"
    if not stored.exists():
        pytest.skip(f"no stored result for {name}")
    module = get(name)
    result = json.loads(stored.read_text())
    summary = repeat.summarize(module, [result, result])
    assert summary["n"] == 2 and set(summary["aggregate"]) == set(module.METRICS)
    assert all(a["ci95"] == 0 for a in summary["aggregate"].values())
    assert all(v == 2 for v in summary["verdicts_passed"].values())
    paths = repeat.plot(summary, tmp_path)
    assert {p.suffix for p in paths} == {".png", ".pdf"}

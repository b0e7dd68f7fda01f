"""Repeated runs: ``vlab run --repeat N`` runs an experiment N times and
writes ``results/<experiment>/repeats.json`` with each run's key metrics
(the experiment's ``METRICS``) and verdicts, and a figure of every metric's
mean with its 95% confidence interval (Student's t), from that JSON alone.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

# Two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom.
_T975 = [
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
]


def mean_ci95(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% confidence interval); 0 for one value."""
    mean = statistics.mean(values)
    if len(values) < 2:
        return mean, 0.0
    t = _T975[len(values) - 2] if len(values) - 1 <= len(_T975) else 1.96
    return mean, t * statistics.stdev(values) / math.sqrt(len(values))


def summarize(module, results: list[dict]) -> dict:
    """Per-run metrics and verdicts, and the aggregate the figure shows."""
    metrics = getattr(module, "METRICS", {})
    runs = [
        {"metrics": {k: f(r) for k, f in metrics.items()}, "verdicts": r.get("verdicts", {})} for r in results
    ]
    aggregate = {}
    for key in metrics:
        values = [run["metrics"][key] for run in runs]
        mean, half = mean_ci95(values)
        aggregate[key] = {"mean": mean, "ci95": half, "n": len(values), "values": values}
    verdicts = {
        k: sum(bool(run["verdicts"].get(k)) for run in runs) for k in (runs[0]["verdicts"] if runs else {})
    }
    return {
        "experiment": module.NAME,
        "runs": runs,
        "aggregate": aggregate,
        "verdicts_passed": verdicts,
        "n": len(runs),
    }


def write(results_dir: Path, module, results: list[dict]) -> Path:
    path = results_dir / module.NAME / "repeats.json"
    path.write_text(json.dumps(summarize(module, results), indent=2) + "\n")
    return path


def plot(summary: dict, outdir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .common import save_figure

    agg = summary["aggregate"]
    fig, axes = plt.subplots(1, max(1, len(agg)), figsize=(3.2 * max(1, len(agg)), 3.6), squeeze=False)
    for ax, (name, a) in zip(axes[0], agg.items()):
        ax.bar([0], [a["mean"]], yerr=[a["ci95"]], color="#0072B2", capsize=8, width=0.5)
        ax.scatter([0] * len(a["values"]), a["values"], color="#E69F00", zorder=3, s=14, label="runs")
        ax.set_xticks([])
        ax.set_title(f"{name}\n{a['mean']:.3g} ± {a['ci95']:.2g} (95% CI, n={a['n']})", fontsize=9)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{summary['experiment']}: {summary['n']} runs", fontsize=10)
    return save_figure(fig, outdir, f"{summary['experiment']}-repeat")

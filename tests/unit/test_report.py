"""results/REPORT.md from stored JSON alone (no root, no lab)."""

import json
import re
import shutil
from pathlib import Path

import pytest

from experiments import REGISTRY, get, report
from experiments.common import REPO

RESULTS = Path(__file__).resolve().parents[2] / "results"


@pytest.fixture
def results(tmp_path):
    for name in REGISTRY:
        src = RESULTS / name / "result.json"
        if src.exists():
            (tmp_path / name).mkdir()
            shutil.copy(src, tmp_path / name / "result.json")
    return tmp_path


def test_every_claim_names_a_verdict_its_experiment_reports_and_renders():
    for _, _, claims in report.SEEDS:
        for _, experiment, key in claims:
            if experiment is None:
                assert key.startswith("issue "), key
                continue
            assert experiment in REGISTRY
            assert key in get(experiment).MEASURED, (experiment, key)
            stored = RESULTS / experiment / "result.json"
            if stored.exists():
                assert key in json.loads(stored.read_text())["verdicts"], (experiment, key)


def test_report_from_the_reference_results(results):
    text = report.build(results)
    # Every claim of every seed is measured now (issue 6 added the last ones).
    # How many are reproduced depends on the run in results/ (the shipped
    # reference set, or the user's own `vlab run` on a loaded machine, which
    # may mark some untrustworthy): the counts must add up to every claim.
    counts = r"^Claims: (\d+) reproduced, (\d+) not reproduced, (\d+) untrustworthy, 0 not measured yet\.$"
    found = re.search(counts, text, re.M)
    assert found, text[:400]
    claims = sum(1 for _, _, cs in report.SEEDS for _, exp, _ in cs if exp is not None)
    assert sum(int(n) for n in found.groups()) == claims
    assert "| **reproduced** |" in text
    assert "Total wall time" in text and "kernel" in text


def test_a_failed_verdict_is_reported_as_not_reproduced(results):
    path = results / "reverse-teaming" / "result.json"
    data = json.loads(path.read_text())
    data["verdicts"]["portoutput_duplicates_vnicrx_none"] = False
    path.write_text(json.dumps(data))
    line = next(x for x in report.build(results).splitlines() if "PortOutput shows" in x)
    assert line.endswith("| **not reproduced** |")


def test_a_missing_result_says_how_to_get_it(results):
    shutil.rmtree(results / "vmk-egress")
    text = report.build(results)
    assert "not measured yet (run `vlab run vmk-egress`)" in text


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_figure_redraws_from_the_stored_json_alone(name, tmp_path):
    stored = RESULTS / name / "result.json"
    if not stored.exists():
        pytest.skip(f"no stored result for {name}")
    paths = get(name).plot(json.loads(stored.read_text()), tmp_path)
    assert {p.suffix for p in paths} == {".png", ".pdf"}
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_a_failed_fidelity_check_makes_claims_untrustworthy(results):
    path = results / "reverse-teaming" / "result.json"
    data = json.loads(path.read_text())
    data["fidelity"] = {
        "cpu_percent": 99.0,
        "checks": [{"check": "cpu_load", "value": 99.0, "limit": "<= 90.0%", "ok": False}],
    }
    path.write_text(json.dumps(data))
    text = report.build(results)
    line = next(x for x in text.splitlines() if "PortOutput shows" in x)
    assert line.endswith("| untrustworthy (fidelity check failed: cpu_load) |")
    assert "FAILED: cpu_load = 99.0 (limit <= 90.0%)" in text


def test_fidelity_checks_and_limits():
    from experiments.fidelity import checks

    ok = checks(40.0, {"a": 0}, frames_counted=True, rates={"link": (95.0, 100.0)})
    assert all(c["ok"] for c in ok)
    bad = {
        c["check"]: c["ok"]
        for c in checks(95.0, {"a": 3}, frames_counted=True, rates={"link": (50.0, 100.0)})
    }
    assert bad == {"cpu_load": False, "no_shaping_drops": False, "link_rate link": False}
    # Drops under TCP cannot fail anything: the check says "not measured".
    tcp = {c["check"]: (c["ok"], c["status"]) for c in checks(10.0, {"a": 300}, frames_counted=False)}
    assert tcp == {"cpu_load": (True, "met"), "shaping_drops": (None, "not measured")}


def test_a_check_not_measured_is_reported_as_such_and_does_not_fail_a_result(tmp_path):
    from experiments.fidelity import checks, trustworthy

    result = {"fidelity": {"checks": checks(10.0, {"a": 300}, frames_counted=False)}}
    assert trustworthy(result)
    shipped = json.loads((REPO / "results" / "two-hosts" / "result.json").read_text())
    (tmp_path / "two-hosts").mkdir()
    (tmp_path / "two-hosts" / "result.json").write_text(json.dumps({**shipped, **result}))
    assert "ok; not measured: shaping_drops" in report.build(tmp_path)


def test_a_failed_link_rate_check_makes_only_the_throughput_claims_untrustworthy(tmp_path):
    """two-hosts: reachability is ping at any rate; the 10:1 ratio is not."""
    shipped = json.loads((REPO / "results" / "two-hosts" / "result.json").read_text())
    checks = [
        {"check": "cpu_load", "value": 30.0, "limit": "<= 90.0%", "ok": True},
        {"check": "link_rate 10G", "value": 0.85, "limit": ">= 0.9 of configured", "ok": False},
    ]
    (tmp_path / "two-hosts").mkdir()
    (tmp_path / "two-hosts" / "result.json").write_text(
        json.dumps({**shipped, "fidelity": {**shipped["fidelity"], "checks": checks}})
    )
    rows = [
        line
        for line in report.build(tmp_path).splitlines()
        if line.startswith("| ") and "two-hosts" not in line
    ]
    verdicts = {row.split(" | ")[-1] for row in rows if "untrustworthy" in row or "**reproduced**" in row}
    assert "untrustworthy (fidelity check failed: link_rate 10G) |" in verdicts
    assert "**reproduced** |" in verdicts

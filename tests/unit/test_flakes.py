"""`vlab bench --flakes`: the suite's runs counted from pytest's JUnit XML."""

import json

from experiments import flakes

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.integration.test_mirror" name="test_a"/>
<testcase classname="tests.integration.test_mirror" name="test_b"><failure message="x"/></testcase>
<testcase classname="tests.unit.test_c" name="test_c"><error message="y"/></testcase>
<testcase classname="tests.unit.test_c" name="test_d"><skipped message="z"/></testcase>
</testsuite></testsuites>"""


def test_junit_counts_name_the_failing_tests(tmp_path):
    xml = tmp_path / "run.xml"
    xml.write_text(JUNIT)
    assert flakes.junit_counts(xml) == {
        "passed": 1,
        "failed": 2,
        "skipped": 1,
        "failing": ["tests.integration.test_mirror::test_b", "tests.unit.test_c::test_c"],
    }
    assert flakes.junit_counts(tmp_path / "missing.xml")["failing"] == ["(no JUnit report)"]


def test_two_loaded_runs_of_a_small_suite_report_their_failing_test_counts(tmp_path):
    result = flakes.run(2, load_cpus=1, pytest_args=("tests/unit/test_settle.py",), out=tmp_path)
    assert result["failing_tests_per_run"] == [0, 0]
    assert [r["passed"] for r in result["runs"]] == [4, 4]
    assert result["verdicts"] == {"no_failing_test_in_any_run": True}
    assert json.loads((tmp_path / "flakes.json").read_text())["load"] == result["load"]

"""The vlab command's rootless parts, through its Python entry point."""

import pytest

from vlab.cli import main

LAB = "labs/two-hosts.yaml"


def test_check_valid_lab(capsys):
    assert main(["check", LAB]) == 0
    assert capsys.readouterr().out.startswith(f"{LAB}: ok (2 ESXi hosts, 4 VMs")


def test_check_broken_lab_prints_one_error_and_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        open(LAB)
        .read()
        .replace('port_group: PG-10G, mac: "00:50:56:00:01:0b"', 'port_group: PG-X, mac: "00:50:56:00:01:0b"')
    )
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"{bad}: vms[1].vnics[0].port_group: esx1 has no port group 'PG-X'"


def test_unknown_experiment_is_bad_input(capsys, monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert main(["run", "no-such-experiment"]) == 2
    assert "unknown experiment" in capsys.readouterr().err


def test_root_commands_refuse_non_root(monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(SystemExit) as exc:
        main(["up", LAB])
    assert exc.value.code == 2


def test_plot_bench_redraws_the_bench_figures_from_its_json(tmp_path, monkeypatch, capsys):
    import shutil

    from experiments import common

    stored = common.RESULTS / "bench" / "result.json"
    if not stored.exists():
        pytest.skip("no stored bench result")
    (tmp_path / "bench").mkdir()
    shutil.copy(stored, tmp_path / "bench" / "result.json")
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    assert main(["plot", "bench"]) == 0
    drawn = {p.name for p in (tmp_path / "bench").iterdir()}
    assert {"scale.png", "failover-vmotion.pdf", "throughput.png", "controller-resync.png"} <= drawn
    assert str(tmp_path / "REPORT.md") in capsys.readouterr().out


def test_a_wait_that_times_out_is_one_line_and_exit_1(monkeypatch, capsys):
    """What an experiment waited for never happened (vlab.waiting's
    TimeoutError): one line naming it, exit 1, no traceback."""
    from experiments import common

    def never(name):
        raise TimeoutError("iperf3 on vm2: not done after 10.0s: iperf3 not listening")

    monkeypatch.setattr(common, "read_result", never)
    assert main(["plot", "two-hosts"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "iperf3 on vm2: not done after 10.0s" in err

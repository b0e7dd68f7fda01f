"""``vlab uplink``, ``vlab vmotion`` and ``vlab pktcap`` from a second process
acting on a lab that another process holds (as an operator would)."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.common import count_frames
from tests.integration.conftest import REPO, TWO_HOSTS
from vlab import naming
from vlab.cli import main
from vlab.operations import LabControl

HOLD = [sys.executable, str(Path(__file__).with_name("hold_lab.py")), str(TWO_HOSTS)]


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def held():
    """(run id, LabControl) of a two-hosts lab held by another process."""
    proc = subprocess.Popen(HOLD, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("READY "), proc.stderr.read()[-2000:]
        run_id = line.split()[1]
        yield run_id, LabControl(Path(naming.RUN_ROOT) / run_id)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _ping(ctl, src, dst_ip):
    out = ctl.sh(src, f"ping -n -q -c 3 -i 0.2 -W 1 {dst_ip}", check=False)
    return " 0 received" not in out and " received" in out


def test_uplink_down_and_up_fails_over_and_back(held):
    run_id, ctl = held
    before = ctl.applied()["pinning"]["esx1"]["vm1a-eth0"]
    assert main(["uplink", "down", "esx1", before, "--run", run_id]) == 0
    _wait(lambda: ctl.applied()["pinning"]["esx1"]["vm1a-eth0"] != before, 10, "failover")
    assert _ping(ctl, "vm1a", "10.10.0.12")
    assert main(["uplink", "up", "esx1", before, "--run", run_id]) == 0
    _wait(lambda: ctl.applied()["pinning"]["esx1"]["vm1a-eth0"] == before, 10, "failback")


def test_vmotion_and_pktcap(held, tmp_path):
    run_id, ctl = held
    assert main(["vmotion", "vm1a", "esx2", "--run", run_id]) == 0
    assert ctl.placement()["vm1a-eth0"].host == "esx2"
    assert _ping(ctl, "vm1a", "10.10.0.12")
    pcap = tmp_path / "vnicrx.pcap"
    pinger = subprocess.Popen(
        ["nsenter", "-t", str(ctl.pids["vm1a"]), "-n", "ping", "-n", "-i", "0.1", "10.10.0.12"],
        stdout=subprocess.DEVNULL,
    )
    try:
        assert (
            main(
                [
                    "pktcap",
                    "--switchport",
                    "vm2a-eth0",
                    "--capture",
                    "VnicRx",
                    "-o",
                    str(pcap),
                    "-c",
                    "4",
                    "--seconds",
                    "10",
                    "--run",
                    run_id,
                ]
            )
            == 0
        )
    finally:
        pinger.terminate()
        pinger.wait()
    assert count_frames(pcap) == 4
    assert main(["vmotion", "vm1a", "esx1", "--run", run_id]) == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["vmotion", "nosuchvm", "esx2"],
        ["vmotion", "vm1a", "nosuchhost"],
        ["uplink", "down", "esx1", "vmnic9"],
        ["pktcap", "--switchport", "nosuch-eth0", "-o", "/tmp/x.pcap"],
    ],
)
def test_bad_operations_exit_2(held, argv, capsys):
    run_id, _ = held
    assert main(argv + ["--run", run_id]) == 2
    assert capsys.readouterr().err.strip()


def test_esxtop_prints_every_port_with_its_team_pnic(held, capsys):
    run_id, ctl = held
    capsys.readouterr()
    assert main(["esxtop", "esx1", "--interval", "0.3", "--count", "1", "--run", run_id]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "PKTTX/s" in line)
    for column in ("PORT-ID", "USED-BY", "TEAM-PNIC", "MbTX/s", "PKTRX/s", "%DRPTX", "%DRPRX"):
        assert column in header
    rows = {line.split()[1]: line.split() for line in out.splitlines()[2:] if line.strip()}
    assert {"vmnic0", "vmnic1", "vmnic2", "vmnic3", "vmk0", "vm1a", "vm1b"} <= set(rows), out
    assert rows["vmk0"][2] == ctl.applied()["pinning"]["esx1"]["vmk0"]


def test_inspect_dumps_ports_macs_ips_and_pinning(held, capsys):
    import json

    run_id, ctl = held
    capsys.readouterr()
    assert main(["inspect", "--json", "--run", run_id]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["run"] == run_id and set(data["nodes"]) >= {"esx1", "esx2", "vm1a", "fabric"}
    ports = {p["name"]: p for sw in data["esxi_hosts"]["esx1"]["vswitches"] for p in sw["ports"]}
    vm1a = ports["vm1a-eth0"]
    assert vm1a["mac"] == "00:50:56:00:01:0a" and vm1a["ip"] == "10.10.0.11/24"
    assert vm1a["vlan"] == 10 and vm1a["team_pnic"] == ctl.applied()["pinning"]["esx1"]["vm1a-eth0"]
    assert ports["vmnic2"]["kind"] == "uplink"
    # Each host's vmk0 with its own address (every host has a vmk0).
    vmk0s = {
        h: next(p for sw in v["vswitches"] for p in sw["ports"] if p["name"] == "vmk0")["ip"]
        for h, v in data["esxi_hosts"].items()
    }
    assert vmk0s == {"esx1": "192.168.100.11/24", "esx2": "192.168.100.12/24"}, vmk0s
    assert data["esxi_hosts"]["esx1"]["vmkernel"][0]["IPv4 Address"] == "192.168.100.11"
    # The lab's site groups its hosts and switch.
    assert data["esxi_hosts"]["esx1"]["site"] == "dc1"
    assert data["sites"]["dc1"]["esxi_hosts"] == ["esx1", "esx2"], data["sites"]


def _with_expect(tmp_path, expect):
    import yaml

    data = yaml.safe_load(TWO_HOSTS.read_text())
    data["expect"] = expect
    path = tmp_path / "teacher.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_lab_validate_passes_on_the_lab_and_fails_when_broken(held, tmp_path, capsys):
    run_id, ctl = held
    assert main(["lab", "validate", str(TWO_HOSTS), "--run", run_id]) == 0
    out = capsys.readouterr().out
    assert "PASS reach vm1a -> vm2a" in out and "FAIL" not in out
    # Break it: pull both cables of esx1's 1 GbE team.
    for vmnic in ("vmnic0", "vmnic1"):
        ctl.uplink("esx1", vmnic, up=False)
    try:
        _wait(
            lambda: set(ctl.applied()["uplinks_down"].get("esx1", [])) == {"vmnic0", "vmnic1"},
            10,
            "both uplinks down",
        )
        assert main(["lab", "validate", str(TWO_HOSTS), "--run", run_id]) == 1
        out = capsys.readouterr().out
        assert "FAIL uplinks esx1: down: vmnic0, vmnic1" in out
        assert "FAIL reach vm1a -> vm2a: unreachable, lab design: reachable" in out
    finally:
        for vmnic in ("vmnic0", "vmnic1"):
            ctl.uplink("esx1", vmnic, up=True)
        _wait(lambda: not ctl.applied()["uplinks_down"].get("esx1"), 10, "uplinks back")


def test_lab_validate_against_a_teachers_expectations(held, tmp_path, capsys):
    run_id, _ = held
    right = _with_expect(tmp_path, {"reachable": [["vm1a", "vm2a"]], "unreachable": [["vm1a", "vm1b"]]})
    assert main(["lab", "validate", str(right), "--run", run_id]) == 0
    wrong = _with_expect(tmp_path, {"reachable": [["vm1a", "vm1b"]]})
    capsys.readouterr()
    assert main(["lab", "validate", str(wrong), "--run", run_id]) == 1
    assert "FAIL reach vm1a -> vm1b: unreachable, lab expectation: reachable" in capsys.readouterr().out

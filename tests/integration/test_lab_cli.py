"""The teaching CLI's ESXi-flavoured commands, driven through a script as a
student would type them (Mininet's CLI runs a script and returns)."""

import os

from tests.integration.conftest import REPO
from vlab.shell.labcli import EsxiCLI


def _cli(net, tmp_path, *commands):
    script = tmp_path / "commands"
    script.write_text("\n".join(commands) + "\n")
    with open(os.devnull) as devnull:
        EsxiCLI(net, stdin=devnull, script=str(script))


def test_esxcli_vm_list_and_ip_interface_list(two_hosts, tmp_path, capsys):
    _cli(two_hosts, tmp_path, "esxcli esx1 network vm list", "esxcli esx1 network ip interface list")
    out = capsys.readouterr().out
    pins = two_hosts.control.applied()["pinning"]["esx1"]
    vm_rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("vm1")}
    assert set(vm_rows) == {"vm1a", "vm1b"}
    assert vm_rows["vm1a"][3] == "00:50:56:00:01:0a" and vm_rows["vm1a"][-1] == pins["vm1a-eth0"]
    vmk0 = next(line.split() for line in out.splitlines() if line.startswith("vmk0"))
    assert vmk0[1:4] == ["192.168.100.11", "255.255.255.0", "defaultTcpipStack"], vmk0


def test_esxtop_pktcap_uplink_and_vmotion_commands(two_hosts, tmp_path, capsys):
    pcap = tmp_path / "po.pcap"
    vm1a = two_hosts.node("vm1a").popen(["ping", "-n", "-i", "0.1", "10.10.0.12"])
    try:
        _cli(
            two_hosts,
            tmp_path,
            "esxtop esx1 --interval 0.3",
            f"pktcap-uw --switchport vm2a-eth0 --capture PortOutput -o {pcap} -c 4",
        )
    finally:
        vm1a.terminate()
        vm1a.wait()
    out = capsys.readouterr().out
    assert "PKTTX/s" in out and "vmnic0" in out
    assert "Dumped 4 packets" in out and "vlan 10" in out  # PortOutput keeps the tag
    _cli(
        two_hosts,
        tmp_path,
        "uplink down esx1 vmnic9",
        "vmotion nosuchvm esx2",
        "nsx tables",
        "esxcli esx1 network nonsense",
    )
    out = capsys.readouterr().out
    assert "esx1 has no uplink 'vmnic9'" in out and "no VM 'nosuchvm'" in out
    assert "has no nsx section" in out and "usage: esxcli" in out


def test_python3_in_a_node_is_the_testbeds_python_with_its_tools(two_hosts, tmp_path):
    marker = tmp_path / "ok"
    _cli(
        two_hosts,
        tmp_path,
        f'vm1a python3 -c "import os, scapy, experiments.tools.frames; '
        f"open('{marker}', 'w').write(os.environ['PYTHONPATH'])\"",
    )
    # The repository itself: a package directory there would shadow the
    # standard library (vlab/trace/ is named like the stdlib's trace).
    assert marker.read_text() == str(REPO)

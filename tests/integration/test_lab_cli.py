"""The teaching CLI's ESXi-flavoured commands, driven through a script as a
student would type them (Mininet's CLI runs a script and returns)."""

import os

from tests.integration.conftest import REPO
from vlab.operations.capture import pcap_records
from vlab.shell.labcli import EsxiCLI


def _cli(net, tmp_path, *commands):
    script = tmp_path / "commands"
    script.write_text("\n".join(commands) + "\n")
    with open(os.devnull) as devnull:
        EsxiCLI(net, stdin=devnull, script=str(script))


def test_esxcli_at_the_prompt_is_the_hosts_esxcli(two_hosts, tmp_path, capsys):
    world = two_hosts.control.pids["vm1a"]
    _cli(
        two_hosts,
        tmp_path,
        "esxcli esx1 network vm list",
        f"esxcli esx1 network vm port list -w {world}",
        "esxcli esx1 network ip interface ipv4 get",
    )
    out = capsys.readouterr().out
    pins = two_hosts.control.applied()["pinning"]["esx1"]
    vm_rows = {line.split()[1]: line.split() for line in out.splitlines() if " vm1" in line}
    assert set(vm_rows) == {"vm1a", "vm1b"} and vm_rows["vm1a"][0] == str(world)
    assert "   MAC Address: 00:50:56:00:01:0a" in out
    assert f"   Team Uplink: {pins['vm1a-eth0']}" in out
    vmk0 = next(line.split() for line in out.splitlines() if line.startswith("vmk0"))
    assert vmk0[1:4] == ["192.168.100.11", "255.255.255.0", "192.168.100.255"], vmk0


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
    assert f"Dumped 4 packet to file {pcap}, dropped 0 packets." in out
    frames = [frame for _, frame in pcap_records(pcap)]
    # PortOutput is the vSwitch's side of the port: the frame keeps its VLAN 10 tag.
    assert len(frames) == 4 and all(f[12:16] == bytes.fromhex("8100000a") for f in frames)
    # At the prompt the file is also read back, as tcpdump-uw -enr shows it.
    assert f"tcpdump-uw -enr {pcap}:" in out and out.count("vlan 10,") >= 4
    _cli(
        two_hosts,
        tmp_path,
        "uplink down esx1 vmnic9",
        "vmotion nosuchvm esx2",
        "nsx tables",
        "esxcli esx1 network nonsense",
        "esxcli nosuchhost network nic list",
        "pktcap-uw --uplink vmnic0 -c 1",
        "help pktcap-uw",
    )
    out = capsys.readouterr().out
    assert "esx1 has no uplink 'vmnic9'" in out and "no VM 'nosuchvm'" in out
    assert "has no nsx section" in out and "Error: Unknown command or namespace network nonsense" in out
    assert "usage: esxcli HOST network ..." in out and "as HOST/vmnic0" in out
    assert "Packet Capture and Trace command usage:" in out


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

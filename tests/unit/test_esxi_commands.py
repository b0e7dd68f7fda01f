"""The ESXi host commands' syntax and output, without a lab: seed 002's
pktcap-uw transcripts rendered from the article's own frames, port numbers,
filters, bad arguments (usage, non-zero exit), vmkping's ping and output."""

import io
import time
from pathlib import Path

import pytest

from tests.transcripts import printed_frames, transcripts, without_plumbing
from topologies.host_shell import wrapper
from vlab import naming
from vlab.bindings import switch_bindings
from vlab.lab.load import load_lab
from vlab.operations import OperationError
from vlab.operations.capture import INPUT, OUTPUT, pcap_records, write_pcap
from vlab.shell import esxcli_network, host, pktcap_uw, vmkping

REPO = Path(__file__).resolve().parents[2]
SEED002 = transcripts("seed002_pktcap_uw.txt")


@pytest.mark.parametrize("command, lines", SEED002, ids=[c for c, _ in SEED002])
def test_seed002_frames_render_as_the_article_prints_them(command, lines):
    for i, number, clock, point, frame in printed_frames(lines):
        # A timestamp that prints as the article's clock in this machine's zone.
        h, m, s = clock.split(":")
        day = time.mktime(time.strptime(f"2020-05-01 {h}:{m}:00", "%Y-%m-%d %H:%M:%S"))
        ts = day + float(s)
        got = pktcap_uw.format_frame(number, ts, point, frame)
        assert [g.rstrip() for g in got] == lines[i : i + len(got)]


@pytest.mark.parametrize("command, lines", SEED002, ids=[c for c, _ in SEED002])
def test_seed002_session_lines_are_the_articles(command, lines):
    a = pktcap_uw.parser().parse_args(command.split()[1:])
    kind = "uplink" if a.uplink else "vnic"
    s = pktcap_uw.session(a, kind, a.uplink or "vm12-eth0", int(a.switchport or 0))
    printed = without_plumbing(lines)
    head = printed[: printed.index(next(line for line in printed if " Captured at " in line))]
    assert pktcap_uw.session_lines(a, s) == head


def test_port_numbers_are_esxis_portset_and_port():
    (b,) = [b for b in switch_bindings(load_lab(REPO / "labs/reverse-teaming.yaml")) if b.host == "esx1"]
    nums = {p.name: b.port_num(p) for p in b.ports if p.kind in ("uplink", "vnic")}
    # vSwitch0's portset is 0x02: uplinks 0x02000001.., vNICs from port 200.
    assert nums == {"vmnic2": 0x02000001, "vmnic3": 0x02000002, "vm12-eth0": 0x020000C8}


def _args(line: str):
    return pktcap_uw.parser().parse_args(line.split())


def test_filters_see_through_a_vlan_tag_unless_one_is_named():
    assert pktcap_uw.bpf(_args("--uplink vmnic2 --proto 0x01")) == "(ip proto 1) or (vlan and (ip proto 1))"
    assert (
        pktcap_uw.bpf(_args("--uplink vmnic2 --vlan 100 --srcip 10.0.0.1"))
        == "vlan 100 and src host 10.0.0.1"
    )
    assert pktcap_uw.bpf(_args("--uplink vmnic2")) == ""
    both = pktcap_uw.session(_args("--switchport 1 --dir 2"), "vnic", "vm1-eth0", 1)
    assert both.points == ((INPUT, "PortInput"), (OUTPUT, "PortOutput"))


class _NoLab:
    """Bad syntax fails before pktcap-uw looks anything up."""

    def port(self, token, host):
        raise AssertionError("pktcap-uw looked up a port for bad arguments")


@pytest.mark.parametrize(
    "line, says",
    [
        ("--switchport 1 --dir 3", "invalid choice"),
        ("--uplink vmnic2 --proto icmp", "not a number"),
        ("--uplink vmnic2 --mac 00:50", "not a MAC address"),
        ("--uplink vmnic2 --switchport 1", "not allowed with argument"),
        ("-c 3", "give one of --uplink, --switchport, --vmk"),
        ("--uplink vmnic2 -c -1", "positive values"),
    ],
)
def test_bad_pktcap_arguments_print_the_usage_and_exit_1(line, says):
    out, err = io.StringIO(), io.StringIO()
    assert pktcap_uw.run(_NoLab(), "esx1", line.split(), out=out, err=err) == 1
    assert says in err.getvalue() and "Packet Capture and Trace command usage:" in err.getvalue()
    assert out.getvalue() == ""


@pytest.mark.parametrize(
    "line, kind, says",
    [
        ("--switchport 1 --dir 0 --capture PortOutput", "vnic", "sees what the vSwitch sends to the port"),
        ("--uplink vmnic2 --capture VnicRx", "uplink", "VnicRx"),
    ],
)
def test_a_capture_point_the_port_does_not_have_is_refused(line, kind, says):
    with pytest.raises((pktcap_uw.UsageError, OperationError), match=says):
        pktcap_uw.session(_args(line), kind, "x", 1)


def test_a_drop_frame_names_its_reason_and_the_stage_that_dropped_it():
    frame = bytes.fromhex("ffffffffffff005056010099" + "0806") + bytes(46)
    (head, *_) = pktcap_uw.format_frame(1, 0.0, "Drop", frame, ("forged transmits = reject: x", "vs_in_port"))
    assert head.endswith(
        "Captured at Drop point, Drop Reason 'forged transmits = reject: x'. Drop Function 'vs_in_port'. "
        "TSO not enabled, Checksum not offloaded and not verified, length 60."
    )
    with pytest.raises(pktcap_uw.UsageError, match="no direction"):
        pktcap_uw.session(_args("--capture Drop --dir 1"), "host", "esx1", 0)


def _icmp(vlan=None, src="192.168.100.11", dst="192.168.100.12") -> bytes:
    tag = b"" if vlan is None else b"\x81\x00" + vlan.to_bytes(2, "big")
    ip = (
        bytes.fromhex("450000540000400040010000")
        + bytes(map(int, src.split(".")))
        + bytes(map(int, dst.split(".")))
    )
    return bytes.fromhex("0050569dfdb10050569d4342") + tag + b"\x08\x00" + ip + bytes(64)


@pytest.mark.parametrize(
    "line, frame, want",
    [
        ("--capture Drop --proto 0x01", _icmp(100), True),  # the tag is seen through
        ("--capture Drop --proto 0x06", _icmp(100), False),
        ("--capture Drop --vlan 100 --srcip 192.168.100.11", _icmp(100), True),
        ("--capture Drop --vlan 100", _icmp(None), False),
        ("--capture Drop --dstmac 00:50:56:9d:fd:b1 --ip 192.168.100.12", _icmp(), True),
        ("--capture Drop --ethtype 0x0806", _icmp(), False),
    ],
)
def test_the_drop_points_filters_mean_what_the_taps_bpf_means(line, frame, want):
    assert pktcap_uw.matches(_args(line), frame) is want


def test_pcap_written_is_read_back_frame_for_frame(tmp_path):
    records = [(1_700_000_000.25, b"\x00" * 60), (1_700_000_001.5, bytes(range(98)))]
    got = pcap_records(write_pcap(tmp_path / "x.pcap", records))
    assert [f for _, f in got] == [f for _, f in records]
    assert [round(t, 6) for t, _ in got] == [t for t, _ in records]


def test_esxcli_unknown_namespaces_and_bare_esxcli_exit_1_with_the_namespaces():
    out, err = io.StringIO(), io.StringIO()
    assert esxcli_network.run(None, "esx1", ["network", "nonsense"], out=out, err=err) == 1
    assert err.getvalue().startswith("Error: Unknown command or namespace network nonsense\n")
    assert "Available Namespaces:\n  ip\n  nic\n  vm\n  vswitch" in err.getvalue()
    out, err = io.StringIO(), io.StringIO()
    assert esxcli_network.run(None, "esx1", [], out=out, err=err) == 1
    assert "Available Namespaces:\n  network" in err.getvalue()
    out = io.StringIO()
    assert esxcli_network.run(None, "esx1", ["network", "vm", "port", "list", "--help"], out=out) == 0
    assert "-w|--world-id=<id>" in out.getvalue() and "(required)" in out.getvalue()


def test_esxcli_missing_required_option_is_an_error():
    err = io.StringIO()
    assert esxcli_network.run(None, "esx1", ["network", "vm", "port", "list"], err=err) == 1
    assert "Error:" in err.getvalue() and "--world-id" in err.getvalue()


def _esx(name="esx1"):
    lab = load_lab(REPO / "labs/nsx-overlay.yaml")
    return next(h for h in lab.esxi_hosts if h.name == name)


def test_vmkping_is_ping_from_the_vmks_address_with_df():
    esx = _esx()
    vtep = next(v for v in esx.vmkernel if v.stack == "vxlan")
    a = vmkping.parser().parse_args(["-S", "vxlan", "-d", "-s", "1572", "-c", "2", "10.0.0.1"])
    argv = vmkping.ping_argv(esx, a)
    assert argv[:2] == ["ping", "-n"] and argv[-1] == "10.0.0.1"
    assert argv[argv.index("-M") + 1] == "do" and argv[argv.index("-s") + 1] == "1572"
    assert argv[argv.index("-I") + 1] == str(vtep.ip.ip)
    with pytest.raises(OperationError, match="Invalid netstack instance nope"):
        vmkping.ping_argv(esx, vmkping.parser().parse_args(["-S", "nope", "10.0.0.1"]))
    with pytest.raises(OperationError, match="Unknown interface 'vmk9'"):
        vmkping.ping_argv(esx, vmkping.parser().parse_args(["-I", "vmk9", "10.0.0.1"]))


def test_vmkping_prints_iputils_output_as_esxi_does():
    lines = [
        "PING 10.0.0.2 (10.0.0.2) from 10.0.0.1 : 1572(1600) bytes of data.",
        "1580 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.412 ms",
        "1 packets transmitted, 1 received, 0% packet loss, time 0ms",
        "rtt min/avg/max/mdev = 0.412/0.412/0.412/0.000 ms",
        "ping: local error: message too long, mtu=1500",
    ]
    assert [vmkping.esxi_line(line) for line in lines] == [
        "PING 10.0.0.2 (10.0.0.2): 1572 data bytes",
        "1580 bytes from 10.0.0.2: icmp_seq=0 ttl=64 time=0.412 ms",
        "1 packets transmitted, 1 packets received, 0% packet loss",
        "round-trip min/avg/max = 0.412/0.412/0.412 ms",
        "sendto() failed (Message too long)",
    ]


def test_vmkping_bad_arguments_print_the_usage_and_exit_1():
    class Lab:
        def esxi(self, name):
            return _esx(name)

    err = io.StringIO()
    assert vmkping.run(Lab(), "esx1", ["-c", "0", "10.0.0.1"], err=err) == 1
    assert "vmkping [args] [host]" in err.getvalue()


def test_every_host_command_has_a_wrapper_running_this_repository(tmp_path):
    assert tuple(host.COMMANDS) == naming.ESXI_COMMANDS
    script = wrapper(tmp_path / "vlab1234", "esx1", "net-stats")
    assert script.startswith("#!/bin/sh\n")
    assert f"PYTHONPATH={REPO}" in script and "-m vlab.shell.host" in script
    assert f'{tmp_path}/vlab1234 esx1 net-stats "$@"' in script
    assert host.main(["/nonexistent", "esx1", "nosuchcommand"]) == 2


def test_esxtop_batch_mode_is_perfmon_csv_with_a_column_per_port_counter():
    from vlab.shell.esxtop import batch_header, batch_row

    rows = [
        {"PORT-ID": 33554433, "USED-BY": "vmnic0", "DNAME": "vSwitch0", "PKTTX/s": 10.0, "MbTX/s": 0.1,
         "PKTRX/s": 9.0, "MbRX/s": 0.09, "%DRPTX": 0.0, "%DRPRX": 0.0},
    ]  # fmt: skip
    header = batch_header("esx1", rows)
    assert header[0] == "(PDH-CSV 4.0) (UTC)(0)"
    assert header[1] == "\\\\esx1\\Network Port(vSwitch0:33554433:vmnic0)\\Packets Transmitted/sec"
    assert len(header) == 1 + 6
    row = batch_row(0.0, [(33554433, "vSwitch0")], rows)
    assert row == ["01/01/1970 00:00:00", "10.0", "0.1", "9.0", "0.09", "0.0", "0.0"]
    # A port gone since the header (a VM moved away) keeps its columns, empty.
    assert batch_row(0.0, [(33554433, "vSwitch0")], [])[1:] == [""] * 6


def test_a_pcap_being_written_is_read_record_by_record_as_it_grows(tmp_path):
    from vlab.operations.capture import PcapFollower

    whole = write_pcap(tmp_path / "whole.pcap", [(1.0, b"\x01" * 60), (2.0, b"\x02" * 70)]).read_bytes()
    growing = tmp_path / "growing.pcap"
    follower = PcapFollower(growing)
    for cut in (10, 24 + 16 + 30, 24 + 16 + 60 + 5, len(whole)):
        growing.write_bytes(whole[:cut])  # tcpdump has written this much so far
        got = [frame for _, frame in follower.read()]
        assert got == [frame for _, frame in pcap_records(growing)]
    assert got == [b"\x01" * 60, b"\x02" * 70]


# -- esxcli's set commands, on a lab with no switches: the journal they write ------------------
@pytest.fixture
def offline(tmp_path, monkeypatch):
    """A LabControl over a run directory whose controller applies every
    change at once (no switches): what esxcli asks for lands in desired.json."""
    from vlab import control
    from vlab.operations import LabControl

    control.write_json(tmp_path / control.NODES, {"lab_file": str(REPO / "labs/two-hosts.yaml"), "pids": {}})
    ctl = LabControl(tmp_path)

    def request_change(edit, timeout=10.0):
        want = ctl.desired()
        edit(want)
        control.write_json(tmp_path / control.DESIRED, want)
        return {}

    monkeypatch.setattr(ctl, "request_change", request_change)
    ctl.commands = []  # what would run in the nodes: (node, command)
    monkeypatch.setattr(ctl, "sh", lambda node, cmd, check=True: ctl.commands.append((node, cmd)) or "")
    return ctl


def _esxcli(ctl, line: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = esxcli_network.run(ctl, "esx1", line.split(), out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


def _get(ctl, line: str) -> dict[str, str]:
    rc, out, err = _esxcli(ctl, line)
    assert rc == 0, err
    return dict(
        x.strip().split(": ", 1) if ": " in x else (x.strip().rstrip(":"), "") for x in out.splitlines()
    )


def test_esxcli_set_changes_what_get_shows_and_prints_nothing(offline):
    sec = "network vswitch standard portgroup policy security"
    assert _get(offline, f"{sec} get -p PG-1G")["Allow Forged Transmits"] == "true"
    assert _esxcli(offline, f"{sec} set -p PG-1G --allow-forged-transmits false") == (0, "", "")
    got = _get(offline, f"{sec} get -p PG-1G")
    assert (
        got["Allow Forged Transmits"] == "false" and got["Override Vswitch Allow Forged Transmits"] == "true"
    )
    assert _esxcli(offline, f"{sec} set -p PG-1G -u")[0] == 0
    assert _get(offline, f"{sec} get -p PG-1G")["Override Vswitch Allow Forged Transmits"] == "false"
    # esx2 shares esx1's vSwitch in the lab file (a YAML anchor): not its change.
    assert offline.lab.esxi_hosts[1].vswitches[0].port_groups[1].security.forged_transmits is None


def test_use_vswitch_on_a_port_group_without_overrides_and_a_set_of_nothing_change_nothing(offline):
    for line in (
        "portgroup policy security set -p PG-1G -u",
        "portgroup policy shaping set -p PG-10G -u",
        "policy security set -v vSwitch0",
    ):
        assert _esxcli(offline, f"network vswitch standard {line}") == (0, "", ""), line
    assert offline.lab == load_lab(REPO / "labs/two-hosts.yaml")


def test_only_what_a_running_lab_can_change_is_accepted(offline):
    from vlab.lab.edits import set_edit, vnic_path, vswitch_path
    from vlab.operations.reconfigure import ConfigRefused

    with pytest.raises(ConfigRefused, match="cannot be changed on a running lab"):
        offline.change_config([set_edit([*vswitch_path("esx1", "vSwitch0"), "mtu"], 9000)])
    with pytest.raises(ConfigRefused, match="vlab network VM NETWORK"):
        offline.change_config([set_edit([*vnic_path("vm1a", "eth0"), "port_group"], "PG-10G")])
    assert offline.desired().get("config_edits", []) == []


def test_esxcli_portgroup_vlan_add_and_remove(offline):
    assert _esxcli(offline, "network vswitch standard portgroup set -p PG-1G --vlan-id 30")[0] == 0
    assert _esxcli(offline, "network vswitch standard portgroup add -p PG-New -v vSwitch0")[0] == 0
    rc, out, _ = _esxcli(offline, "network vswitch standard portgroup list")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert rows["PG-1G"][-1] == "30" and rows["PG-New"][1:] == ["vSwitch0", "0", "0"]
    assert _esxcli(offline, "network vswitch standard portgroup remove -p PG-New -v vSwitch0")[0] == 0
    rc, _, err = _esxcli(offline, "network vswitch standard portgroup remove -p PG-1G -v vSwitch0")
    assert (rc, err) == (
        1,
        "Error: Sysinfo error: Busy See VMkernel log for details. (in use by vm1a.eth0)\n",
    )


def test_esxcli_failover_set_writes_the_whole_order_and_the_policy(offline):
    fo = "network vswitch standard portgroup policy failover"
    assert _esxcli(offline, f"{fo} set -p PG-10G -s vmnic2 -l explicit")[0] == 0
    got = _get(offline, f"{fo} get -p PG-10G")
    assert (got["Active Adapters"], got["Standby Adapters"]) == ("vmnic3", "vmnic2")
    assert got["Unused Adapters"] == "vmnic0, vmnic1" and got["Load Balancing"] == "explicit"


@pytest.mark.parametrize(
    "line, says",
    [
        (
            "portgroup set -p PG-1G --vlan-id 4096",
            "Error: Invalid vlan id 4096: it must be between 0 and 4095",
        ),
        ("portgroup set -p PG-9 --vlan-id 1", "Error: Invalid portgroup: PG-9"),
        ("portgroup policy security set -p PG-1G -f maybe", "Error: Invalid value 'maybe' for option"),
        (
            "portgroup policy failover set -p PG-1G -l roundrobin",
            "Valid values are: portid, mac, iphash, explicit",
        ),
        (
            "portgroup policy failover set -p PG-1G -a vmnic9",
            "Error: Invalid configuration: 'vmnic9' is not an uplink of vSwitch vSwitch0 "
            "(esxi_hosts[0].vswitches[0].port_groups[1].teaming.active[0])",
        ),
        ("portgroup add -p PG-10G -v vSwitch0", "Error: A portgroup with the name PG-10G already exists"),
    ],
)
def test_esxcli_set_refuses_bad_values_and_changes_nothing(offline, line, says):
    rc, out, err = _esxcli(offline, f"network vswitch standard {line}")
    assert rc == 1 and err.startswith("Error: ") and says in err.splitlines()[0], err
    assert offline.desired().get("config_edits", []) == []


def test_esxcli_shaping_set_replaces_the_qdisc_of_each_cable_whose_policy_changed(offline):
    sh = "network vswitch standard portgroup policy shaping"
    assert _esxcli(offline, f"{sh} set -p PG-1G -e true -b 10000 -k 20000 -t 1000")[0] == 0
    got = _get(offline, f"{sh} get -p PG-1G")
    assert (got["Enabled"], got["Average Bandwidth"], got["Burst Size"]) == ("true", "10000 Kbps", "1000 Kib")
    # PG-1G on esx1 holds vm1a only; link_scale 0.01: 100 kbit/s average.
    assert [(n, c.split(" tbf ")[0]) for n, c in offline.commands] == [
        ("vm1a", "tc qdisc replace dev eth0 root")
    ]
    assert "rate 100000bit burst 10240 peakrate 200000bit" in offline.commands[0][1]
    offline.commands.clear()
    assert _esxcli(offline, f"{sh} set -p PG-1G -u")[0] == 0
    assert offline.commands == [("vm1a", "tc qdisc del dev eth0 root 2>/dev/null; true")]
    rc, _, err = _esxcli(offline, f"{sh} set -p PG-1G -e true -b 1000 -k 500")
    assert rc == 1 and "below average_bandwidth" in err.splitlines()[0], err


def _vxlan(vni: int, outer_vlan=None) -> bytes:
    from scapy.layers.inet import IP, UDP, Ether
    from scapy.layers.l2 import Dot1Q
    from scapy.layers.vxlan import VXLAN

    inner = Ether(src="00:50:56:a1:00:01", dst="00:50:56:a1:00:02") / IP(src="10.1.1.11", dst="10.1.1.12")
    outer = Ether(src="00:50:56:6a:00:11", dst="00:50:56:6a:00:12")
    if outer_vlan is not None:
        outer = outer / Dot1Q(vlan=outer_vlan)
    frame = outer / IP(src="172.16.200.11", dst="172.16.200.12") / UDP(sport=50000, dport=4789)
    return bytes(frame / VXLAN(vni=vni) / inner)


@pytest.mark.parametrize(
    "frame, vni, want",
    [
        (_vxlan(5002, 200), 5002, True),
        (_vxlan(5002), 5002, True),
        (_vxlan(5001, 200), 5001, False),
        (_icmp(200), None, False),
    ],
)
def test_the_vxlan_filter_picks_one_vni_alike_in_the_taps_bpf_and_at_the_drop_point(
    tmp_path, frame, vni, want
):
    import subprocess

    a = _args("--uplink vmnic0 --vxlan 5002")
    assert pktcap_uw.vxlan_id(frame) == vni
    assert pktcap_uw.matches(a, frame) is want
    pcap = tmp_path / "one.pcap"
    pktcap_uw.write_pcap(pcap, [(0.0, frame)])
    read = subprocess.run(["tcpdump", "-nr", str(pcap), pktcap_uw.bpf(a)], capture_output=True, text=True)
    assert read.returncode == 0, read.stderr
    assert bool(read.stdout.strip()) is want, read.stdout  # tcpdump prints a VXLAN frame on two lines

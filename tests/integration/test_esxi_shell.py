"""The ESXi host shell on running labs: seed 002's own pktcap-uw command
lines on labs/reverse-teaming.yaml (after net-stats -l gives the port
number), compared line by line in shape with the article's transcripts, and
the other host commands (esxcli, esxcfg-*, net-stats, vmkping, vlab shell)
against what the lab is, with real frames."""

import csv
import subprocess
import sys
import threading
import time

import pytest
import yaml

from controller.dropcapture import EXPOSED
from controller.pipeline import Concern
from experiments.common import guest_tool, lab_session
from experiments.reverse_teaming import SPAN_LAB
from tests.integration.conftest import REPO
from tests.integration.hostshell import run_in_host
from tests.transcripts import printed_frames, shape, transcripts, without_plumbing
from vlab import naming
from vlab.operations.capture import pcap_records

SEED002 = transcripts("seed002_pktcap_uw.txt")
PING_VM12 = "ping -n -q -c 4 -i 0.2 -W 1 192.168.100.12"  # vm11 -> vm12, 4 requests, bounded


@pytest.fixture(scope="module")
def reverse_teaming():
    with lab_session(SPAN_LAB) as net:
        yield net


class HostCommand:
    """One ESXi command running in a host's shell (its wrapper on the host's
    PATH), stderr read as it comes so the test knows when it listens."""

    def __init__(self, ctl, host: str, argv: list[str]):
        exe = naming.host_bin_dir(ctl.dir, host) / argv[0]
        self.proc = ctl.popen(
            host, [str(exe), *argv[1:]], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.err: list[str] = []
        self._reader = threading.Thread(target=lambda: self.err.extend(self.proc.stderr), daemon=True)
        self._reader.start()

    def wait_listening(self, points: int = 1, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while sum(line.startswith("vlab: listening at") for line in self.err) < points:
            assert self.proc.poll() is None, f"pktcap-uw ended before listening: {''.join(self.err)}"
            assert time.monotonic() < deadline, f"pktcap-uw not listening after {timeout}s: {self.err}"
            time.sleep(0.02)

    def finish(self, timeout: float = 30.0) -> tuple[int, list[str]]:
        out = self.proc.stdout.read()
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return rc, out.splitlines()


def _while_vm11_pings_vm12(net, argv: list[str]) -> tuple[int, list[str], list[str]]:
    """Run ``argv`` on esx1; once it listens, vm11 sends its bounded pings to
    vm12; (exit code, stdout lines, stderr lines) once it has ended."""
    cap = HostCommand(net.control, "esx1", argv)
    try:
        cap.wait_listening()
        net.node("vm11").cmd(PING_VM12)
    finally:
        rc, lines = cap.finish()
    return rc, lines, cap.err


_run = run_in_host


def _port_num(ctl, host: str, client: str) -> int:
    """The PortNum net-stats -l lists for ``client``, as a user finds it."""
    rc, out, _ = _run(ctl, host, "net-stats -l")
    assert rc == 0 and out.splitlines()[0].split() == [
        "PortNum",
        "Type",
        "SubType",
        "SwitchName",
        "MACAddress",
        "ClientName",
    ]
    return next(int(line.split()[0]) for line in out.splitlines()[1:] if line.split()[-1] == client)


@pytest.mark.parametrize("command, seed_lines", SEED002, ids=[c for c, _ in SEED002])
def test_seed002_command_lines_run_unchanged_and_print_the_articles_shape(
    reverse_teaming, command, seed_lines
):
    ctl = reverse_teaming.control
    vm12 = _port_num(ctl, "esx1", "vm12.eth0")
    rc, lines, err = _while_vm11_pings_vm12(reverse_teaming, command.replace("50331657", str(vm12)).split())
    assert rc == 0, err
    # Same lines in the same order with the same fields and units; values free.
    assert [shape(x) for x in lines] == [shape(x) for x in without_plumbing(seed_lines)], "\n".join(lines)
    frames = [frame for *_, frame in printed_frames(lines)]
    requests = [f for f in frames if f[12:16] == b"\x81\x00\x00\x64" and f[38] == 8]
    vm12_mac = bytes.fromhex("0050569dfdb1")
    if "--uplink" in command:
        # Both uplinks take in every request to vm12: the SPAN copies the
        # physical switch sends the other uplink too (VLAN 100 kept as metadata).
        assert len(requests) == 3 and all(f[:6] == vm12_mac for f in requests)
    elif "PortOutput" in command:
        # The article's point: the same frame twice, one after the other.
        assert len(requests) == 3 and requests[0] == requests[1] != requests[2]
    else:
        # VnicRx: the guest gets each request once, untagged.
        untagged = [f for f in frames if f[12:14] == b"\x08\x00" and f[34] == 8]
        seqs = {f[40:42] for f in untagged}
        assert len(untagged) == 3 and len(seqs) == 3


def test_pktcap_to_a_file_writes_a_pcap_tcpdump_reads(reverse_teaming, tmp_path):
    ctl = reverse_teaming.control
    pcap = tmp_path / "vmnic2.pcap"
    argv = ["pktcap-uw", "--uplink", "vmnic2", "-c", "3", "--proto", "0x01", "-o", str(pcap)]
    rc, lines, _ = _while_vm11_pings_vm12(reverse_teaming, argv)
    assert rc == 0 and f"The output file is {pcap}" in lines
    assert lines[-2:] == [f"Dumped 3 packet to file {pcap}, dropped 0 packets.", "Done."]
    assert len(pcap_records(pcap)) == 3
    rc, shown, err = _run(ctl, "esx1", f"tcpdump-uw -enr {pcap}")  # as on ESXi, to read it back
    assert rc == 0 and shown.count("vlan 100,") == 3, (shown, err)


def test_a_count_that_never_fills_ends_at_its_time_limit_and_says_so(reverse_teaming):
    rc, out, err = _run(
        reverse_teaming.control, "esx1", "pktcap-uw --uplink vmnic2 -c 3 --ethtype 0x88b5 --seconds 0.5"
    )
    assert rc == 0 and "Dumped 0 packet to console" in out
    assert "stopped after 0.5 s with 0 of 3 packets; no frame matched the filters" in err


def test_esxcli_esxcfg_and_net_stats_show_the_running_host(two_hosts):
    ctl = two_hosts.control
    pins = ctl.applied()["pinning"]["esx1"]
    # From Mininet's shell of the host node, as `esx1 esxcli ...` in the lab CLI.
    nics = two_hosts.node("esx1").cmd("esxcli network nic list").splitlines()
    assert nics[0].split()[:2] == ["Name", "PCI"] and set(nics[1]) <= {"-", " "}
    assert [n.split()[0] for n in nics[2:]] == ["vmnic0", "vmnic1", "vmnic2", "vmnic3"]
    rc, out, _ = _run(ctl, "esx1", "esxcli network vswitch standard list")
    assert rc == 0 and "vSwitch0\n" in out and "   Uplinks: vmnic0, vmnic1, vmnic2, vmnic3" in out
    rc, out, _ = _run(ctl, "esx1", "esxcli network vswitch standard portgroup policy failover get -p PG-1G")
    assert rc == 0 and "   Active Adapters: vmnic0, vmnic1" in out
    rc, out, _ = _run(ctl, "esx1", "esxcli network ip interface ipv4 get -i vmk0")
    assert rc == 0 and "vmk0  192.168.100.11  255.255.255.0" in out
    rc, out, _ = _run(ctl, "esx1", f"esxcli network vm port list -w {ctl.pids['vm1a']}")
    assert rc == 0 and f"   Team Uplink: {pins['vm1a-eth0']}" in out
    assert f"   Port ID: {_port_num(ctl, 'esx1', 'vm1a.eth0')}" in out
    rc, out, _ = _run(ctl, "esx1", "esxcfg-vmknic -l")
    assert rc == 0 and "vmk0" in out and "192.168.100.11" in out
    rc, out, _ = _run(ctl, "esx1", "esxcfg-vswitch -l")
    assert rc == 0 and "PG-10G" in out and "20" in out.split("PG-10G")[1].split()[0]
    rc, _, err = _run(ctl, "esx1", "esxcli network vm port list -w 1")
    assert rc == 1 and "Error: Invalid World ID 1" in err


def test_vmkping_sends_real_icmp_from_the_vmk_and_df_refuses_what_the_mtu_cannot_carry(two_hosts):
    ctl = two_hosts.control
    rc, out, _ = _run(ctl, "esx1", "vmkping -I vmk0 -c 2 -i 0.2 192.168.100.12")
    assert rc == 0 and "2 packets transmitted, 2 packets received, 0% packet loss" in out, out
    assert out.startswith("PING 192.168.100.12 (192.168.100.12): 56 data bytes\n")
    # 1472 + 28 = 1500, the vSwitch's MTU: fits. 1473 does not, and -d forbids fragments.
    rc, out, _ = _run(ctl, "esx1", "vmkping -I vmk0 -d -s 1472 -c 1 192.168.100.12")
    assert rc == 0 and "1 packets received" in out, out
    rc, out, _ = _run(ctl, "esx1", "vmkping -I vmk0 -d -s 1473 -c 1 192.168.100.12")
    assert rc == 1 and out.count("sendto() failed (Message too long)") == 1, out


def test_vlab_shell_runs_a_line_in_the_host_with_its_commands(two_hosts):
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "vlab.cli",
            "shell",
            "--run",
            two_hosts.run.id,
            "esx1",
            "net-stats -l | grep -c vmnic",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0 and p.stdout.strip() == "4", p


@pytest.fixture(scope="module")
def nsx_pswitch2_1500(tmp_path_factory):
    """nsx-overlay with pswitch2 left at MTU 1500 (esx2 and esx4 behind it)."""
    data = yaml.safe_load((REPO / "labs" / "nsx-overlay.yaml").read_text())
    data["name"] = "nsx-mtu1500"
    next(s for s in data["physical_switches"] if s["name"] == "pswitch2")["mtu"] = 1500
    lab_file = tmp_path_factory.mktemp("nsx") / "nsx-overlay-mtu1500.yaml"
    lab_file.write_text(yaml.safe_dump(data, sort_keys=False))
    with lab_session(lab_file) as net:
        yield net


def test_the_transport_mtu_check_of_nsxs_guide_fails_where_the_physical_network_is_1500(nsx_pswitch2_1500):
    """``vmkping ++netstack=vxlan -d -s 1572 <remote VTEP>``: 1572 + 28 = 1600,
    the transport MTU. esx1's VTEP reaches esx3's (pswitch1 and the underlay
    router, jumbo) and not esx2's, behind pswitch2; a 1472-byte ping still does."""
    ctl = nsx_pswitch2_1500.control

    def vmkping(size: int, vtep: str) -> str:
        rc, out, _ = _run(ctl, "esx1", f"vmkping ++netstack=vxlan -d -s {size} -c 2 -i 0.2 {vtep}")
        return out

    assert "2 packets received" in vmkping(1572, "172.16.201.13")  # esx3, jumbo path
    assert "0 packets received, 100% packet loss" in vmkping(1572, "172.16.200.12")  # esx2
    assert "2 packets received" in vmkping(1472, "172.16.200.12")


def _table(out: str) -> list[list[str]]:
    """An esxcli table's rows, split on its columns' whitespace."""
    return [line.split() for line in out.splitlines()[2:] if line.strip()]


def test_the_hosts_vxlan_views_are_the_nsx_controllers_tables_for_that_host(nsx_pswitch2_1500):
    ctl = nsx_pswitch2_1500.control
    base = "esxcli network vswitch dvs vmware vxlan"
    rc, out, _ = _run(ctl, "esx1", f"{base} list")
    assert rc == 0 and _table(out)[0][:5] == [
        "dvs-compute",
        "0000000000000101",
        "1600",
        "172.16.200.0",
        "172.16.200.1",
    ]
    rc, out, _ = _run(ctl, "esx1", f"{base} network list --vds-name=dvs-compute")
    assert rc == 0 and [r[0] for r in _table(out)] == ["5001", "5002"] and "(up)" in out
    opts = "--vds-name dvs-compute --vxlan-id 5001"
    rc, out, _ = _run(ctl, "esx1", f"{base} network vtep list {opts}")
    # The other hosts of web (5001): esx2 in esx1's segment, esx3 and esx4 in
    # the other, one of them the MTEP that relays BUM frames there.
    vteps = {r[0]: r for r in _table(out)}
    assert set(vteps) == {"172.16.200.12", "172.16.201.13", "172.16.201.14"}
    assert [r[2] for r in vteps.values()].count("true") == 1 and vteps["172.16.200.12"][2] == "false"
    rc, out, _ = _run(ctl, "esx1", f"{base} network mac list {opts}")
    macs = {r[0]: r[2] for r in _table(out)}
    assert macs == {"00:50:56:a1:00:02": "172.16.200.12", "00:50:56:a1:00:05": "172.16.201.13",
                    "00:50:56:a1:00:06": "172.16.201.14"}  # fmt: skip
    rc, out, _ = _run(ctl, "esx1", f"{base} network arp list {opts}")
    assert {r[0] for r in _table(out)} >= {"10.1.1.12", "10.1.1.15", "10.1.1.16"}
    rc, _, err = _run(ctl, "esx1", f"{base} network arp list --vds-name dvs-compute --vxlan-id 7")
    assert rc == 1 and "Error: VXLAN ID 7 is not a logical switch" in err


def test_net_vdl2_lists_the_vtep_and_networks_and_each_networks_tables_as_esxcli_has_them(nsx_pswitch2_1500):
    ctl = nsx_pswitch2_1500.control
    rc, out, err = _run(ctl, "esx1", "net-vdl2 -l")
    assert rc == 0, err
    fields = [line.strip().split(":\t") for line in out.splitlines()]
    assert fields[0] == ["VXLAN Global States:"] and ["UDP port", "4789"] in fields
    assert ["VXLAN VDS", "dvs-compute"] in fields and ["MTU", "1600"] in fields
    assert ["VXLAN vmknic", "vmk3"] in fields and ["IP", "172.16.200.11"] in fields
    assert ["Switch port ID", "33554532"] in fields and ["VLAN ID", "200"] in fields
    assert ["Network count", "2"] in fields
    networks = [v for k, *v in fields if k == "VXLAN network"]
    assert networks == [["5001"], ["5002"]], out
    assert sum(1 for f in fields if f[0] == "Controller" and f[1].endswith("(up)")) == 2, out
    rc, out, _ = _run(ctl, "esx1", "net-vdl2 -M mac -s dvs-compute -n 5001")
    fields = [line.strip().split(":\t") for line in out.splitlines()]
    assert rc == 0 and fields[0] == ["MAC entry count", "3"], out
    macs = [v for k, v in fields if k == "Inner MAC"]
    assert macs == ["00:50:56:a1:00:02", "00:50:56:a1:00:05", "00:50:56:a1:00:06"], out
    rc, out, _ = _run(ctl, "esx1", "net-vdl2 -M vtep -s dvs-compute -n 5001")
    assert rc == 0 and out.splitlines()[0].strip() == "VTEP entry count:\t3", out
    rc, _, err = _run(ctl, "esx1", "net-vdl2 -M arp -s dvs-compute")
    assert rc == 1 and err.startswith("Usage: net-vdl2"), err
    rc, _, err = _run(ctl, "esx1", "net-vdl2 -M arp -s dvs-compute -n 7")
    assert rc == 1 and "VXLAN ID 7 is not a logical switch" in err, err


def test_esxtop_batch_mode_writes_csv_with_the_pinging_vms_packets(two_hosts):
    ctl = two_hosts.control
    ping = two_hosts.node("vm1a").popen(["ping", "-n", "-i", "0.1", "10.10.0.12"])
    try:
        rc, out, err = _run(ctl, "esx1", "esxtop -b -n 2 -d 0.5")
    finally:
        ping.terminate()
        ping.wait()
    assert rc == 0, err
    header, *samples = list(csv.reader(out.splitlines()))
    assert header[0] == "(PDH-CSV 4.0) (UTC)(0)" and len(samples) == 2
    vm1a = _port_num(ctl, "esx1", "vm1a.eth0")
    column = header.index(f"\\\\esx1\\Network Port(vSwitch0:{vm1a}:vm1a)\\Packets Transmitted/sec")
    # vm1a sends 10 echo requests a second; both samples saw some of them.
    assert all(float(s[column]) > 0 for s in samples), samples


def _drop_lines(lines: list[str]) -> list[str]:
    return [x for x in lines if " Captured at Drop point, " in x]


def test_the_drop_point_shows_the_span_copies_reverse_teaming_drops(reverse_teaming):
    ctl = reverse_teaming.control
    pinned = ctl.applied()["pinning"]["esx1"]["vm12-eth0"]
    other = {"vmnic2": "vmnic3", "vmnic3": "vmnic2"}[pinned]
    argv = ["pktcap-uw", "--capture", "Drop", "--proto", "0x01", "-c", "2"]
    rc, lines, err = _while_vm11_pings_vm12(reverse_teaming, argv)
    assert rc == 0, err
    drops = _drop_lines(lines)
    # Each request vm11 sends reaches esx1 twice; the copy on the uplink
    # vm12 does not transmits on is the one the vSwitch drops.
    assert len(drops) == 2, lines
    assert all(
        f"Drop Reason 'reverse teaming: came in on {other}, vm12-eth0 transmits on {pinned}'. "
        "Drop Function 'vs_forward'."
        in x
        and "VLAN tag 100, length 98." in x
        for x in drops
    ), drops
    assert ctl.desired()["drop_captures"] == {}  # the session closed with the command


def test_the_drop_point_names_forged_transmits_and_stops_when_the_session_ends(nuggets):
    ctl = nuggets.control
    forged = ("--src", "00:50:56:01:00:99", "--dst", "ff:ff:ff:ff:ff:ff", "--count", "3", "--tag", "forged")
    strict = _port_num(ctl, "esx1", "strict.eth0")
    cap = HostCommand(ctl, "esx1", ["pktcap-uw", "--capture", "Drop", "--switchport", str(strict), "-c", "3"])
    try:
        cap.wait_listening()
        guest_tool(nuggets, "strict", "frames", *forged)
    finally:
        rc, lines = cap.finish()
    assert rc == 0 and lines[0] == f"The switch port id is 0x{strict:08x}", lines
    drops = _drop_lines(lines)
    assert len(drops) == 3 and all(
        "Drop Reason 'forged transmits = reject: source MAC 00:50:56:01:00:99 is not strict-eth0's MAC "
        "00:50:56:01:00:11'. Drop Function 'vs_in_port'." in x
        for x in drops
    ), lines
    # Closed: the switch holds the pipeline without the session's copies
    # again (no flow sends what it drops to the controller).
    flows = ctl.ovs("esx1").ofctl("dump-flows", "vSwitch0", "--protocols=OpenFlow13").splitlines()
    cookies = [int(x.split("cookie=")[1].split(",")[0], 16) for x in flows if "cookie=" in x]
    assert cookies and not [c for c in cookies if c >> 56 == Concern.DROP_CAPTURE or c & EXPOSED]


def _flows(ctl, host: str = "esx1", bridge: str = "vSwitch0") -> list[str]:
    return ctl.ovs(host).ofctl("dump-flows", bridge, "--protocols=OpenFlow13").splitlines()


def _exposed(ctl) -> bool:
    """Some flow of esx1's vSwitch0 copies what it drops to the controller."""
    cookies = [int(x.split("cookie=")[1].split(",")[0], 16) for x in _flows(ctl) if "cookie=" in x]
    return any(c >> 56 == Concern.DROP_CAPTURE or c & EXPOSED for c in cookies)


def test_a_killed_pktcap_uw_session_ends_as_if_it_had_closed(nuggets):
    """A SIGKILLed pktcap-uw never closes its session: the controller sees
    its process gone and drops the copies it asked for (Drop, PortOutput)."""
    from vlab.bindings import CAPTURE_BASE
    from vlab.waiting import wait_for

    ctl = nuggets.control
    strict = next(p for b in ctl.bindings("esx1") for p in b.ports if p.name == "strict-eth0")
    copy_port = f"output:{CAPTURE_BASE + strict.ofport}"
    sessions = (
        (["pktcap-uw", "--capture", "Drop", "--seconds", "120"], lambda: _exposed(ctl)),
        (
            ["pktcap-uw", "--switchport", "strict.eth0", "--capture", "PortOutput", "--seconds", "120"],
            lambda: any(copy_port in x for x in _flows(ctl)),
        ),
    )
    for argv, copying in sessions:
        cap = HostCommand(ctl, "esx1", argv)
        try:
            cap.wait_listening()
            assert copying(), argv
            cap.proc.kill()  # no finally of its own runs
            cap.proc.wait(timeout=10)
            wait_for(lambda: not copying(), 10, f"the controller ending the killed session of {argv[1:3]}")
        finally:
            if cap.proc.poll() is None:
                cap.proc.kill()
                cap.proc.wait(timeout=10)
    # A new session on the same port works as before.
    rc, _, err = _run(ctl, "esx1", "pktcap-uw --switchport strict.eth0 --capture PortOutput --seconds 0.2")
    assert rc == 0 and "listening at PortOutput" in err, err


def test_esxtop_counts_a_vnics_forged_frames_in_its_drptx(nuggets):
    """%DRPTX of a vNIC whose forged frames the vSwitch refuses (forged
    transmits = reject), counted by its own port's refusal flow."""
    from vlab.shell import esxtop
    from vlab.waiting import wait_for

    ctl = nuggets.control
    forged = ("--src", "00:50:56:01:00:99", "--dst", "00:50:56:0e:0e:01", "--count", "20", "--tag", "forged")
    before = esxtop.sample(ctl, "esx1")
    guest_tool(nuggets, "strict", "frames", *forged)  # bounded, and sent when it returns

    def counted():
        # A flow's count grows when OVS's revalidator pushes the datapath's
        # statistics (about every 0.5 s): the 20 drops appear within seconds.
        after = esxtop.sample(ctl, "esx1")
        return after if esxtop.counts(before, after)["strict-eth0"]["tx_pdrop"] >= 20 else None

    after = wait_for(counted, 10, "esxtop counting strict's 20 refused frames")
    grown = esxtop.counts(before, after)["strict-eth0"]
    assert grown["tx_pdrop"] == 20 and grown["tx_pkts"] >= 20, grown
    row = next(r for r in esxtop.rates(before, after) if r["USED-BY"] == "strict")
    assert row["%DRPTX"] == round(100.0 * 20 / grown["tx_pkts"], 2) and row["%DRPTX"] > 0, row


def test_esxtop_counts_frames_in_a_vlan_no_port_group_carries_in_the_uplinks_drprx(nuggets):
    """The physical switch sends esx1's vmnic0 frames tagged with a VLAN no
    port group of vSwitch0 carries: vs_forward refuses them, counted by the
    uplink they came in by."""
    from vlab.shell import esxtop
    from vlab.waiting import wait_for

    ctl = nuggets.control
    fabric_end = ctl.fabric_port("esx1", "vmnic0")  # the cable's switch end
    frames = (
        "--iface",
        fabric_end,
        "--vlan",
        "77",
        "--src",
        "00:50:56:99:00:77",
        "--dst",
        "00:50:56:01:00:11",
    )
    before = esxtop.sample(ctl, "esx1")
    guest_tool(nuggets, "fabric", "frames", *frames, "--count", "10", "--tag", "vlan77")

    def counted():
        after = esxtop.sample(ctl, "esx1")
        return after if esxtop.counts(before, after)["vmnic0"]["rx_pdrop"] >= 10 else None

    after = wait_for(counted, 10, "esxtop counting vmnic0's 10 frames in VLAN 77")
    assert esxtop.counts(before, after)["vmnic0"]["rx_pdrop"] == 10
    row = next(r for r in esxtop.rates(before, after) if r["USED-BY"] == "vmnic0")
    assert row["%DRPRX"] > 0, row


def test_esxtop_counts_the_frames_the_pipeline_drops_in_the_uplinks_drprx(reverse_teaming):
    """%DRPRX of the uplink whose SPAN copies of vm11's echo requests the
    vSwitch drops (reverse teaming: vm12 transmits on the other uplink): the
    pipeline's drops, not only OVS's port drops."""
    from vlab.shell import esxtop
    from vlab.waiting import wait_for

    ctl = reverse_teaming.control
    pinned = ctl.applied()["pinning"]["esx1"]["vm12-eth0"]
    other = {"vmnic2": "vmnic3", "vmnic3": "vmnic2"}[pinned]
    before = esxtop.sample(ctl, "esx1")
    assert "4 received" in reverse_teaming.node("vm11").cmd(PING_VM12)  # 4 requests, all answered

    def counted():
        # A flow's count grows when OVS's revalidator pushes the datapath's
        # statistics (about every 0.5 s): the drops appear within seconds.
        after = esxtop.sample(ctl, "esx1")
        return after if esxtop.counts(before, after)[other]["rx_pdrop"] >= 4 else None

    after = wait_for(counted, 10, f"esxtop counting the 4 requests' copies {other} dropped")
    grown = esxtop.counts(before, after)
    # Each request's copy on the other uplink is dropped; vm12's own uplink drops none of them.
    assert grown[other]["rx_pdrop"] >= 4 and grown[pinned]["rx_pdrop"] == 0, grown
    rows = {r["USED-BY"]: r for r in esxtop.rates(before, after)}
    d = grown[other]
    assert rows[other]["%DRPRX"] == round(
        100.0 * (d["rx_drop"] + d["rx_pdrop"]) / (d["rx_pkts"] + d["rx_drop"]), 2
    )
    assert rows[other]["%DRPRX"] > 0 and rows[pinned]["%DRPRX"] == 0, rows


def _a_short_session_inside_a_long_one(net, long_argv: list[str], short_line: str, point: str):
    """A long session listening, a short one run to its end beside it, then
    vm11's 4 bounded pings to vm12: (the long one's exit code, its lines)."""
    long = HostCommand(net.control, "esx1", long_argv)
    try:
        long.wait_listening()
        rc, _, err = _run(net.control, "esx1", short_line)
        assert rc == 0 and f"listening at {point}" in err
        net.node("vm11").cmd(PING_VM12)  # after the short session has ended
    finally:
        rc, lines = long.finish()
    return rc, lines, long.err


def test_a_portoutput_session_ending_leaves_another_on_the_same_port_running(reverse_teaming):
    argv = ["pktcap-uw", "--switchport", "vm12.eth0", "--capture", "PortOutput", "--proto", "0x01", "-c", "2"]
    short = "pktcap-uw --switchport vm12.eth0 --capture PortOutput --seconds 0.2"
    rc, lines, err = _a_short_session_inside_a_long_one(reverse_teaming, argv, short, "PortOutput")
    # The copy port is shared by the port's sessions: the short one's end left it.
    assert rc == 0 and sum(" Captured at PortOutput point, " in x for x in lines) == 2, (lines, err)
    assert reverse_teaming.control.desired()["captures"] == {}


def test_a_drop_session_ending_leaves_another_on_the_same_host_running(reverse_teaming):
    argv = ["pktcap-uw", "--capture", "Drop", "--proto", "0x01", "-c", "2"]
    short = "pktcap-uw --capture Drop --ethtype 0x88b5 --seconds 0.2"
    rc, lines, err = _a_short_session_inside_a_long_one(reverse_teaming, argv, short, "Drop")
    assert rc == 0 and len(_drop_lines(lines)) == 2, (lines, err)
    assert reverse_teaming.control.desired()["drop_captures"] == {}

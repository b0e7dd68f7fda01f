"""The two-hosts lab on real OVS instances: state after bring-up, reachability
with real pings, and no flooding of unknown unicast (captured with tcpdump)."""

import subprocess

from controller.vswitch import compile_vswitch
from experiments.common import ping_sweep
from vlab import naming
from vlab.bindings import GuestNic
from vlab.lab.reachability import expected_reachability
from vlab.waiting import Pending, wait_for


def test_every_vswitch_is_secure_userspace_and_holds_exactly_its_flows(two_hosts):
    for b in two_hosts.bindings:
        ovs = two_hosts.ovs[b.host]
        assert ovs.vsctl("get", "bridge", b.bridge, "fail_mode").strip() == "secure"
        assert ovs.vsctl("get", "bridge", b.bridge, "datapath_type").strip() == "netdev"
        # Exactly the compiled flows for the guests' NIC state hostd reported.
        guests = {port: GuestNic.from_json(g) for port, g in two_hosts.control.applied()["guests"].items()}
        assert ovs.flow_count(b.bridge) == len(compile_vswitch(b.with_guests(guests)))
        # Each host runs its own vswitchd: its bridge holds only its own ports.
        assert sorted(ovs.vsctl("list-ports", b.bridge).split()) == sorted(p.name for p in b.ports)


def test_each_esxi_host_has_its_own_ovs_processes(two_hosts):
    pids = {}
    for host in two_hosts.lab.esxi_hosts:
        inst = two_hosts.ovs[host.name]
        pids[host.name] = {p.pid for p in inst.procs}
        node_netns = two_hosts.node(host.name).cmd("readlink /proc/self/ns/net").strip()
        for p in inst.procs:
            # mnexec execs the daemon, so the Popen pid is the daemon's
            assert (
                subprocess.run(
                    ["readlink", f"/proc/{p.pid}/ns/net"], capture_output=True, text=True
                ).stdout.strip()
                == node_netns
            )
    assert len(set.union(*pids.values())) == sum(len(v) for v in pids.values())


def test_tx_checksum_offload_off_on_userspace_veths(two_hosts):
    for host in two_hosts.lab.esxi_hosts:
        node = two_hosts.node(host.name)
        for intf in node.intfNames():
            if intf == "lo" or intf == naming.CONTROL_IFACE:
                continue
            out = node.cmd(f"ethtool -k {intf} | grep '^tx-checksumming'")
            assert "off" in out, f"{host.name}/{intf}: {out}"


def test_vmkernel_ip_lives_in_host_namespace(two_hosts):
    for host in two_hosts.lab.esxi_hosts:
        for vmk in host.vmkernel:
            out = two_hosts.node(host.name).cmd(f"ip -4 -o addr show dev {vmk.name}")
            assert str(vmk.ip) in out


def test_reachability_matrix_matches_design(two_hosts):
    eps = two_hosts.endpoints()
    expected = expected_reachability(two_hosts.lab)
    measured = {}
    for src in eps:
        for dst, ok in ping_sweep(two_hosts, src, [d for d in eps if d.node != src.node]).items():
            measured[(src.name, dst)] = ok
    assert measured == expected
    assert any(expected.values()) and not all(expected.values())


def _capture(node, intf: str, bpf: str, pcap: str, direction: str = "inout"):
    proc = node.popen(
        ["tcpdump", "-i", intf, "-Q", direction, "-n", "-U", "-w", pcap, bpf],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    # tcpdump says "listening on" once the capture is armed
    line = proc.stderr.readline().decode()
    assert "listening" in line, line
    return proc


def _count(pcap: str, bpf: str = "") -> int:
    out = subprocess.run(["tcpdump", "-n", "-r", pcap, *bpf.split()], capture_output=True, text=True).stdout
    return len(out.splitlines())


def test_unknown_unicast_is_not_flooded_to_other_vms(two_hosts, tmp_path):
    """vm1a sends to a MAC nobody owns: it leaves by vm1a's uplink, and no
    other guest (not even vm2a in the same VLAN on the other host) sees it."""
    net = two_hosts
    ghost_ip, ghost_mac = "10.10.0.99", "00:50:56:de:ad:99"
    vm1a = net.node("vm1a")
    vm1a.cmd(f"ip neigh replace {ghost_ip} lladdr {ghost_mac} dev eth0")
    watchers = {}
    try:
        for vm in ("vm1b", "vm2a", "vm2b"):
            watchers[vm] = (
                _capture(net.node(vm), "eth0", f"ether dst {ghost_mac}", str(tmp_path / f"{vm}.pcap")),
                str(tmp_path / f"{vm}.pcap"),
            )
        fabric = net.node(naming.FABRIC_NODE)
        uplink_pcaps = {}
        for p in (1, 2):
            name = naming.fabric_port("pswitch1", p)
            # "in" on the switch side = sent by esx1 (the switch itself floods
            # the unknown MAC back out of esx1's other uplink, as it should)
            uplink_pcaps[p] = (
                _capture(
                    fabric, name, f"ether dst {ghost_mac}", str(tmp_path / f"{name}.pcap"), direction="in"
                ),
                str(tmp_path / f"{name}.pcap"),
            )
        vm1a.cmd(f"ping -c 5 -i 0.05 -W 0.2 {ghost_ip} >/dev/null 2>&1")

        # the frames have been sent; give tcpdump time to drain its ring
        def seen_on_uplinks():
            n = sum(_count(pcap) for _, pcap in uplink_pcaps.values())
            return n >= 5 or Pending(f"{n}/5 frames captured on esx1's PG-1G uplinks")

        wait_for(seen_on_uplinks, 10, "capture on uplinks")
    finally:
        for proc, _ in list(watchers.values()) + list(uplink_pcaps.values()):
            proc.terminate()
            proc.wait()
        vm1a.cmd(f"ip neigh del {ghost_ip} dev eth0")
    counts = {p: _count(pcap) for p, (_, pcap) in uplink_pcaps.items()}
    assert sorted(counts.values()) == [0, 5], counts  # one pinned uplink carries all
    for vm, (_, pcap) in watchers.items():
        assert _count(pcap) == 0, f"{vm} received frames for an unknown MAC"


def test_physical_switch_mac_table_and_counters_are_readable(two_hosts):
    """After traffic, each VM MAC is learned once, on a port of its own host,
    in its VLAN; and the switch's port counters moved."""
    table = two_hosts.mac_table("pswitch1")
    host_ports = {
        h.name: {naming.fabric_port(u.switch, u.port) for u in h.uplinks} for h in two_hosts.lab.esxi_hosts
    }
    vlan_of = {"PG-1G": 10, "PG-10G": 20}
    for vm in two_hosts.lab.vms:
        nic = vm.vnics[0]
        rows = [r for r in table if r["mac"] == nic.mac]
        assert len(rows) == 1, table
        assert rows[0]["port"] in host_ports[vm.host]
        assert rows[0]["vlan"] == vlan_of[nic.port_group]
    counters = two_hosts.switch_counters("pswitch1")
    assert set(counters) >= set().union(*host_ports.values())
    assert sum(c.get("rx_packets", 0) for c in counters.values()) > 0

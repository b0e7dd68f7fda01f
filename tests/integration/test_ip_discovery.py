"""NSX IP discovery on real OVS: with VMware Tools discovery off, the ARP
table learns from the guests' own ARP frames and from a real DHCP exchange
(dnsmasq in one guest, udhcpc in another, across both VTEP subnets), and
ARP suppression then answers on the source host: zero ARP requests reach
the physical network."""

import subprocess

import pytest
import yaml

from experiments import nsx_packet_walk as walk
from experiments.common import REPO, lab_session
from vlab import control
from vlab.shell.snapshot import nsx_tables
from vlab.waiting import Pending, wait_for

GUEST_DHCP_HOOK = REPO / "experiments" / "tools" / "udhcpc-guest.sh"
POOL = ("10.1.1.100", "10.1.1.110")


@pytest.fixture(scope="module")
def snooping_only(tmp_path_factory):
    """The overlay lab with web discovering IPs only by ARP and DHCP snooping."""
    data = yaml.safe_load(walk.OVERLAY_LAB.read_text())
    data["nsx"]["logical_switches"][0]["ip_discovery"] = ["arp_snooping", "dhcp_snooping"]
    lab = tmp_path_factory.mktemp("lab") / "snooping.yaml"
    lab.write_text(yaml.safe_dump(data))
    with lab_session(lab) as net:
        yield net


def arp_table(net, logical_switch="web"):
    return {e["ip"]: (e["mac"], e["sources"]) for e in nsx_tables(net.control)[logical_switch]["arp_table"]}


def wait_for_entry(net, ip, what):
    def learned():
        return ip in arp_table(net) or Pending(f"arp table {arp_table(net)}")

    wait_for(learned, 10, what)


def test_without_vmtools_the_arp_table_starts_empty(snooping_only):
    assert arp_table(snooping_only) == {}
    # The app switch still uses VMware Tools: its guests are known.
    assert set(arp_table(snooping_only, "app")) == {"10.1.2.13", "10.1.2.14"}


def test_arp_snooping_learns_senders_then_suppression_answers_locally(snooping_only, work):
    vm1 = snooping_only.node("vm1")
    vm1.cmd("ip neigh flush dev eth0")
    out = vm1.cmd(f"ping -n -c 1 -W 2 {walk.IP['vm2']}")
    assert "1 received" in out, out
    # vm1's request and vm2's reply reach the controller as two packet-ins,
    # learned and written on their own: wait for each.
    wait_for_entry(snooping_only, walk.IP["vm1"], "vm1's ARP request snooped")
    wait_for_entry(snooping_only, walk.IP["vm2"], "vm2's ARP reply snooped")
    table = arp_table(snooping_only)
    assert table[walk.IP["vm1"]] == ("00:50:56:a1:00:01", ["arp_snooping"])
    assert table[walk.IP["vm2"]] == ("00:50:56:a1:00:02", ["arp_snooping"])
    r = walk.measure_arp(snooping_only, work, "snooped", rounds=3)
    assert r["replies"] == 3 and r["arp_requests_on_wire"]["total"] == 0, r


def test_dhcp_snooping_learns_a_real_lease_across_vtep_subnets(snooping_only, work):
    """dnsmasq on vm2 (esx2, subnet A) leases to udhcpc on vm5 (esx3, subnet
    B): the DISCOVER crosses by unicast replication, the ACK is snooped."""
    net = snooping_only
    net.node("vm5").cmd("ip -4 addr flush dev eth0")
    server = net.control.popen(
        "vm2",
        [
            "dnsmasq",
            "--no-daemon",
            "--conf-file=/dev/null",
            "--port=0",
            "--user=root",
            "--interface=eth0",
            "--bind-interfaces",
            f"--dhcp-range={POOL[0]},{POOL[1]},1h",
            f"--dhcp-leasefile={work / 'leases'}",
            f"--pid-file={work / 'dnsmasq.pid'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # udhcpc gives up after its five tries: the server listens first.
        wait_for(
            lambda: (
                server.poll() is None
                and net.control.sh("vm2", "ss -Huln 'sport = :67'").strip()
                or Pending("dnsmasq not listening on udp/67" if server.poll() is None else "dnsmasq exited")
            ),
            10,
            "dnsmasq on vm2",
        )
        client = net.control.sh(
            "vm5", f"udhcpc -i eth0 -n -q -f -t 5 -T 1 -s {GUEST_DHCP_HOOK} 2>&1", check=False
        )
        leased = net.node("vm5").cmd("ip -4 -o addr show dev eth0").split()
        ip = next((w.split("/")[0] for w in leased if w.startswith("10.1.1.1")), None)
        assert ip is not None, client
        wait_for_entry(net, ip, "DHCP ACK snooped")
        assert arp_table(net)[ip] == ("00:50:56:a1:00:05", ["dhcp_snooping"])
        # vm1 resolves the leased address on its own host, nothing on the wire.
        vm1 = net.node("vm1")
        with walk.Underlay(net, work, "dhcp") as under:
            vm1.cmd("ip neigh flush dev eth0")
            out = vm1.cmd(f"ping -n -c 1 -W 2 {ip}")
        assert "1 received" in out, out
        assert walk.arp_requests(under.frames, ip)["total"] == 0, [
            (w, walk._inner(f).summary()) for w, f in under.frames
        ]
    finally:
        server.terminate()
        _, err = server.communicate(timeout=10)
    assert "DHCPACK" in err, err


def test_snooped_bindings_survive_a_controller_restart(snooping_only, work):
    net = snooping_only
    before = arp_table(net)
    assert any("arp_snooping" in sources for _, sources in before.values()), before
    (net.run.dir / control.NSX_TABLES).unlink()
    net.restart_controller()
    wait_for(
        lambda: (net.run.dir / control.NSX_TABLES).exists() or Pending("no nsx.json"),
        10,
        "tables written by the new controller",
    )
    assert arp_table(net) == before
    r = walk.measure_arp(net, work, "restarted", rounds=2)
    assert r["replies"] == 2 and r["arp_requests_on_wire"]["total"] == 0, r

"""VMkernel TCP/IP stacks as routing commands, and esxtop arithmetic (no root)."""

import copy

import pytest

from vlab.lab.load import LabError, parse_lab
from vlab.shell.esxtop import Sample, format_table, rates
from vlab.vmkernel import STACK_TABLE, routing_commands

LAB = {
    "name": "stacks",
    "physical_switches": [{"name": "psw"}],
    "esxi_hosts": [
        {
            "name": "esx1",
            "uplinks": [{"name": "vmnic0", "speed": 1, "switch": "psw", "port": 1}],
            "vswitches": [
                {
                    "name": "vSwitch0",
                    "uplinks": ["vmnic0"],
                    "port_groups": [
                        {"name": "Mgmt", "vlan": 4},
                        {"name": "Data", "vlan": 28},
                        {"name": "vMotion", "vlan": 50},
                    ],
                }
            ],
            "vmkernel": [
                {"name": "vmk0", "port_group": "Mgmt", "ip": "172.17.4.102/24", "gateway": "172.17.4.1"},
                {"name": "vmk4", "port_group": "Data", "ip": "172.17.28.102/22"},
                {
                    "name": "vmk1",
                    "port_group": "vMotion",
                    "ip": "10.50.0.11/24",
                    "stack": "vmotion",
                    "gateway": "10.50.0.1",
                },
            ],
        }
    ],
}


def host(**changes):
    data = copy.deepcopy(LAB)
    data["esxi_hosts"][0].update(changes)
    return parse_lab(data).esxi_hosts[0]


def test_default_stack_routes_by_destination_in_the_main_table():
    cmds = routing_commands(host())
    assert "ip route replace default via 172.17.4.1 dev vmk0" in cmds
    assert not any("from 172.17.4.102" in c or "from 172.17.28.102" in c for c in cmds)
    assert any("rp_filter=0" in c for c in cmds)


def test_custom_stack_has_its_own_table_and_leaves_the_main_one():
    cmds = routing_commands(host())
    table = STACK_TABLE["vmotion"]
    assert "ip route del 10.50.0.0/24 dev vmk1 table main" in cmds
    assert f"ip route replace default via 10.50.0.1 dev vmk1 table {table}" in cmds
    assert any(c.startswith(f"ip rule add from 10.50.0.11 lookup {table}") for c in cmds)
    # The vMotion gateway never becomes the default stack's.
    assert "ip route replace default via 10.50.0.1 dev vmk1" not in cmds


def test_source_egress_adds_a_table_per_default_stack_vmk():
    cmds = routing_commands(host(egress="source"))
    assert any(c.startswith("ip rule add from 172.17.4.102 lookup") for c in cmds)
    assert any(c.startswith("ip rule add from 172.17.28.102 lookup") for c in cmds)
    vmk0_table = next(c for c in cmds if c.startswith("ip rule add from 172.17.4.102")).split()[6]
    assert f"ip route replace default via 172.17.4.1 dev vmk0 table {vmk0_table}" in cmds


def test_one_default_gateway_per_stack():
    data = copy.deepcopy(LAB)
    data["esxi_hosts"][0]["vmkernel"][1]["gateway"] = "172.17.28.1"
    with pytest.raises(LabError) as err:
        parse_lab(data, "lab.yaml")
    assert str(err.value) == (
        "lab.yaml: esxi_hosts[0].vmkernel[1].gateway: the default TCP/IP "
        "stack already has its default gateway on vmk0"
    )


def _port(kind, **c):
    base = {
        "bridge": "vSwitch0",
        "port_num": 0x02000001,
        "used_by": "vmk4",
        "kind": kind,
        "team_pnic": "vmnic0",
        "tx_pkts": 0,
        "tx_bytes": 0,
        "tx_drop": 0,
        "rx_pkts": 0,
        "rx_bytes": 0,
        "rx_drop": 0,
        "tx_pdrop": 0,
        "rx_pdrop": 0,
    }
    return {**base, **c}


def test_esxtop_rates_and_drop_percentages():
    before = Sample(0.0, {"vmk4": _port("vmk", port_num=0x03000065)})
    after = Sample(
        2.0,
        {
            "vmk4": _port(
                "vmk", port_num=0x03000065, tx_pkts=2000, tx_bytes=3_000_000, rx_pkts=1000, rx_drop=10
            )
        },
    )
    (row,) = rates(before, after)
    assert row["PKTTX/s"] == 1000 and row["MbTX/s"] == 12.0 and row["PKTRX/s"] == 500
    assert row["%DRPRX"] == pytest.approx(0.99, abs=0.01) and row["%DRPTX"] == 0
    assert row["TEAM-PNIC"] == "vmnic0" and "PKTTX/s" in format_table([row])
    assert row["PORT-ID"] == 50331749  # ESXi numbers ports in decimal


def test_esxtop_counts_the_pipelines_drops_of_what_a_port_sent_within_its_packets():
    from vlab.ovs import parse_flow_stats
    from vlab.shell.esxtop import pipeline_drops

    def line(cookie: str, table: int, packets: int, match: str, actions: str) -> str:
        return (
            f" cookie={cookie}, duration=3.1s, table={table}, n_packets={packets}, n_bytes={packets * 60},"
            f" priority=100,{match} actions={actions}"
        )

    lines = [
        line("0x2000000000000001", 0, 7, "in_port=200,dl_src=00:50:56:01:00:99", "drop"),
        line("0x2001000000010064", 1, 3, "in_port=200", "CONTROLLER:65535"),  # a drop a Drop capture copies
        line("0x2000000000000002", 0, 90, "in_port=200", "goto_table:1"),
        line("0x2000000000000003", 4, 5, "tunnel_id=5001", "drop"),  # no port to count it by
        "OFPST_FLOW reply (OF1.3) (xid=0x2):",
    ]
    assert pipeline_drops([f for line in lines if (f := parse_flow_stats(line))]) == {200: 10}
    before = Sample(0.0, {"vm1-eth0": _port("vnic")})
    after = Sample(1.0, {"vm1-eth0": _port("vnic", tx_pkts=100, tx_pdrop=10, rx_pkts=50)})
    (row,) = rates(before, after)
    assert row["%DRPTX"] == 10.0 and row["%DRPRX"] == 0  # 10 of the 100 it sent

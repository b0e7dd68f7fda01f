"""Every lab field works or is refused (issue 18, item 9): physical-side
fields that the topology could not honour, and guest fields with a single
meaning, each refused with one line naming the field. Rootless and fast."""

from __future__ import annotations

import pytest

from tests.unit.labedit import append, both, case, put, refusal

GUEST_ETH1 = {"name": "eth1", "port_group": "PG-10G", "mac": "00:50:56:00:01:99", "ip": "10.20.0.99/24"}

CASES = [
    case(
        "vlan-on-a-lag-member",
        put("physical_switches[0].ports", [{"port": 3, "mode": "access", "vlan": 30}]),
        "physical_switches[0].ports[0]: port 3 is in LAG 'po1': a port channel's members carry every VLAN "
        "here (the testbed configures no VLANs on a LAG)",
        base="dvs",
    ),
    case(
        "uncabled-lag-member",
        put("physical_switches[0].lags", [{"name": "po1", "ports": [3, 9]}]),
        "physical_switches[0].lags[0].ports[1]: port 9 of LAG 'po1' has no cable",
        base="dvs",
    ),
    case(
        "uncabled-span-destination",
        put("physical_switches[0].spans", [{"name": "s1", "source_ports": [1], "destination": 20}]),
        "physical_switches[0].spans[0].destination: port 20 has no cable",
    ),
    case(
        "span-source-in-a-lag",
        put("physical_switches[0].spans", [{"name": "s1", "source_ports": [3], "destination": 1}]),
        "physical_switches[0].spans[0].source_ports[0]: port 3 is in LAG 'po1': "
        "mirror a port that is not in a LAG",
        base="dvs",
    ),
    case(
        "trunk-allowing-nothing",
        put("physical_switches[0].ports", [{"port": 1, "allowed_vlans": []}]),
        "physical_switches[0].ports[0].allowed_vlans: must have at least 1 entry (got 0)",
    ),
    case(
        "two-default-gateways",
        both(
            put("vms[0].vnics[0].gateway", "10.10.0.1"),
            append("vms[0].vnics", {**GUEST_ETH1, "gateway": "10.20.0.1"}),
        ),
        "vms[0].vnics[1].gateway: vm1a already has its default gateway on eth0: "
        "a guest has one default route",
    ),
]


@pytest.mark.parametrize("base, edit, expected", CASES)
def test_a_field_the_testbed_cannot_honour_is_refused(base, edit, expected):
    assert refusal(base, edit) == expected


def test_a_pruned_trunk_still_carries_untagged_frames():
    # An EST port group's frames are untagged: a trunk's native VLAN, which
    # OVS calls 0 and which every trunk carries.
    import copy

    from tests.unit.labedit import TWO_HOSTS
    from topologies.physical import switch_commands
    from vlab.lab.load import parse_lab

    data = copy.deepcopy(TWO_HOSTS)
    data["physical_switches"][0]["ports"] = [{"port": 1, "allowed_vlans": [10, 100]}]
    lab = parse_lab(data, "lab.yaml")
    cmds = switch_commands(lab, lab.physical_switches[0], {1: None})
    assert "trunks=0,10,100" in cmds

"""Lab file validation, the schema: every error is one line
``FILE: path: problem``, for wrong types, numbers and ranges, addresses and
names, for whole-file problems (YAML syntax, duplicate keys, unreadable
files), and no input at all gives a traceback (random mutations).

Each invalid case starts from a valid lab (``tests/unit/labedit.py``),
applies one small edit and checks the exact message, so a reworded message
or a path that stops pointing at the real field fails here. Rootless and
fast: nothing is started.
"""

from __future__ import annotations

import pytest

from tests.unit.labedit import (
    HOST0,
    PG_1G,
    TWO_HOSTS,
    VNIC0,
    VSW0,
    append,
    both,
    case,
    drop,
    put,
    refusal,
)
from vlab.lab.load import LabError, load_lab, parse_lab

INVALID = [
    # --- schema: keys and types ------------------------------------------
    case("unknown-key-top-level", put("colour", "red"), "colour: unknown key"),
    case("unknown-key-nested", put(f"{PG_1G}.vlan_id", 10), f"{PG_1G}.vlan_id: unknown key"),
    case(
        "unknown-key-in-teaming",
        put(f"{PG_1G}.teaming.activ", ["vmnic0"]),
        f"{PG_1G}.teaming.activ: unknown key",
    ),
    case(
        "non-string-key",
        lambda data: data.update({True: 1}),  # YAML 'yes: 1'
        "(top): key True must be a string (quote it)",
    ),
    case("vlan-is-a-word", put(f"{PG_1G}.vlan", "ten"), f"{PG_1G}.vlan: must be a valid integer (got 'ten')"),
    case(
        "vlan-quoted-number",
        put(f"{PG_1G}.vlan", "10"),
        f"{PG_1G}.vlan: must be a valid integer (got the string '10'; write it without quotes)",
    ),
    case("vlan-float", put(f"{PG_1G}.vlan", 10.5), f"{PG_1G}.vlan: must be a valid integer (got 10.5)"),
    case("section-not-a-list", put("vms", {"name": "vm1a"}), "vms: must be a list (got a mapping)"),
    case("entry-not-a-mapping", put("vms[0]", "vm1a"), "vms[0]: must be a mapping (got 'vm1a')"),
    case(
        "teaming-not-a-mapping",
        put(f"{PG_1G}.teaming", ["vmnic0"]),
        f"{PG_1G}.teaming: must be a mapping (got a list)",
    ),
    case("empty-section-null", put("vms", None), "vms: must be a list (got None)"),
    case("missing-lab-name", drop("name"), "name: required field is missing"),
    case(
        "missing-uplink-speed",
        drop(f"{HOST0}.uplinks[0].speed"),
        f"{HOST0}.uplinks[0].speed: required field is missing",
    ),
    case("missing-vnic-mac", drop(f"{VNIC0}.mac"), f"{VNIC0}.mac: required field is missing"),
    case("empty-vnics-list", put("vms[0].vnics", []), "vms[0].vnics: must have at least 1 entry (got 0)"),
    case("vnics-not-a-list", put("vms[0].vnics", "eth0"), "vms[0].vnics: must be a list (got 'eth0')"),
    case(
        "unknown-teaming-policy",
        put(f"{PG_1G}.teaming.policy", "route_based_on_load"),
        f"{PG_1G}.teaming.policy: must be 'originating_port', 'source_mac_hash', 'ip_hash', "
        "'explicit_failover' or 'load_based' (got 'route_based_on_load')",
    ),
    case(
        "security-boolean",
        put(f"{VSW0}.security", {"promiscuous": True}),
        f"{VSW0}.security.promiscuous: must be 'accept' or 'reject' (got True)",
    ),
    case(
        "mtu-too-small",
        put(f"{VSW0}.mtu", 1000),
        f"{VSW0}.mtu: must be greater than or equal to 1280 (got 1000)",
    ),
    case(
        "vmk-name",
        put(f"{HOST0}.vmkernel[0].name", "mgmt0"),
        f"{HOST0}.vmkernel[0].name: must be vmk followed by a number, like vmk0 (got 'mgmt0')",
    ),
    # --- numbers and ranges -----------------------------------------------
    case(
        "vlan-4096-on-port-group",
        put(f"{PG_1G}.vlan", 4096),
        f"{PG_1G}.vlan: must be less than or equal to 4095 (got 4096)",
    ),
    case(
        "vlan-negative",
        put(f"{PG_1G}.vlan", -1),
        f"{PG_1G}.vlan: must be greater than or equal to 0 (got -1)",
    ),
    case(
        "vlan-0-on-access-port",
        put("physical_switches[0].ports", [{"port": 9, "mode": "access", "vlan": 0}]),
        "physical_switches[0].ports[0].vlan: must be greater than or equal to 1 (got 0)",
    ),
    case(
        "access-port-without-vlan",
        put("physical_switches[0].ports", [{"port": 9, "mode": "access"}]),
        "physical_switches[0].ports[0].vlan: an access port needs a vlan",
    ),
    case(
        "trunk-port-with-vlan",
        put("physical_switches[0].ports", [{"port": 9, "vlan": 10}]),
        "physical_switches[0].ports[0].vlan: vlan is for access ports; trunks use allowed_vlans",
    ),
    case(
        "access-port-with-allowed-vlans",
        put(
            "physical_switches[0].ports",
            [{"port": 9, "mode": "access", "vlan": 10, "allowed_vlans": [10, 20]}],
        ),
        "physical_switches[0].ports[0].allowed_vlans: allowed_vlans is for trunk ports; "
        "an access port carries only its vlan",
    ),
    case(
        "speed-40",
        put(f"{HOST0}.uplinks[2].speed", 40),
        f"{HOST0}.uplinks[2].speed: must be 1, 10 or 25 (got 40)",
    ),
    case(
        "speed-quoted",
        put(f"{HOST0}.uplinks[2].speed", "10"),
        f"{HOST0}.uplinks[2].speed: must be a valid integer (got the string '10'; write it without quotes)",
    ),
    case(
        "speed-yes",
        put(f"{HOST0}.uplinks[2].speed", True),
        f"{HOST0}.uplinks[2].speed: must be a valid integer (got True)",
    ),
    case("link-scale-0", put("link_scale", 0), "link_scale: must be greater than 0 (got 0)"),
    case(
        "link-scale-above-1", put("link_scale", 1.5), "link_scale: must be less than or equal to 1 (got 1.5)"
    ),
    case("link-scale-word", put("link_scale", "fast"), "link_scale: must be a valid number (got 'fast')"),
    case(
        "span-destination-is-a-source",
        put("physical_switches[0].spans", [{"name": "s1", "source_ports": [1, 2], "destination": 2}]),
        "physical_switches[0].spans[0].destination: port 2 is also a source of the session",
    ),
    case(
        "span-destination-in-lag",
        both(
            put("physical_switches[0].lags", [{"name": "po1", "ports": [3, 4]}]),
            put("physical_switches[0].spans", [{"name": "s1", "source_ports": [1], "destination": 4}]),
        ),
        "physical_switches[0].spans[0].destination: port 4 is in LAG 'po1'",
    ),
    case(
        "span-direction-unknown",
        put(
            "physical_switches[0].spans",
            [{"name": "s1", "source_ports": [1], "direction": "up", "destination": 2}],
        ),
        "physical_switches[0].spans[0].direction: must be 'tx', 'rx' or 'both' (got 'up')",
    ),
    case(
        # Open vSwitch raises any MAC aging time under 15 s to 15 s: a lower
        # value would be accepted and not applied.
        "mac-aging-under-the-ovs-floor",
        put("physical_switches[0].mac_aging", 10),
        "physical_switches[0].mac_aging: must be greater than or equal to 15 (got 10)",
    ),
    case(
        "igmp-aging-too-short",
        put("physical_switches[0].igmp_aging", 5),
        "physical_switches[0].igmp_aging: must be greater than or equal to 15 (got 5)",
    ),
    case(
        "expectation-unknown-endpoint",
        put("expect", {"reachable": [["vm1a", "vm9z"]]}),
        "expect.reachable[0][1]: unknown endpoint 'vm9z' (endpoints: esx1/vmk0, esx2/vmk0, "
        "vm1a, vm1b, vm2a, vm2b)",
    ),
    case(
        "lag-of-one-port",
        put("physical_switches[0].lags", [{"name": "po1", "ports": [1]}]),
        "physical_switches[0].lags[0].ports: must have at least 2 entries (got 1)",
    ),
    case(
        "port-in-two-lags",
        put(
            "physical_switches[0].lags", [{"name": "po1", "ports": [1, 2]}, {"name": "po2", "ports": [2, 3]}]
        ),
        "physical_switches[0].lags[1].ports[0]: port 2 is already in LAG 'po1'",
    ),
    # --- addresses ---------------------------------------------------------
    case(
        "mac-bad-hex",
        put(f"{VNIC0}.mac", "00:50:56:zz:01:0a"),
        f"{VNIC0}.mac: MAC address must look like 00:50:56:aa:bb:cc (got '00:50:56:zz:01:0a')",
    ),
    case(
        "mac-five-octets",
        put(f"{VNIC0}.mac", "00:50:56:01:0a"),
        f"{VNIC0}.mac: MAC address must look like 00:50:56:aa:bb:cc (got '00:50:56:01:0a')",
    ),
    case(
        "mac-multicast",
        put(f"{VNIC0}.mac", "01:00:5e:00:00:01"),
        f"{VNIC0}.mac: MAC address must be unicast (first octet even) (got '01:00:5e:00:00:01')",
    ),
    case(
        "ip-bad-octet",
        put(f"{VNIC0}.ip", "10.10.0.300/24"),
        f"{VNIC0}.ip: not an IPv4 address/prefix: Octet 300 (> 255) not permitted in "
        "'10.10.0.300' (got '10.10.0.300/24')",
    ),
    case(
        "ip-without-prefix",
        put(f"{VNIC0}.ip", "10.10.0.11"),
        f"{VNIC0}.ip: must include the prefix length, like 10.0.0.1/24 (got '10.10.0.11')",
    ),
    case(
        "ip-is-network-address",
        put(f"{VNIC0}.ip", "10.10.0.0/24"),
        f"{VNIC0}.ip: must not be the network or broadcast address of its subnet (got '10.10.0.0/24')",
    ),
    case("ip-not-a-string", put(f"{VNIC0}.ip", 10), f"{VNIC0}.ip: must be a valid string (got 10)"),
    case(
        "gateway-outside-subnet",
        put(f"{VNIC0}.gateway", "10.99.0.1"),
        f"{VNIC0}.gateway: gateway 10.99.0.1 is not in the subnet 10.10.0.0/24",
    ),
    case(
        "gateway-is-own-address",
        put(f"{VNIC0}.gateway", "10.10.0.11"),
        f"{VNIC0}.gateway: gateway 10.10.0.11 is the interface's own address",
    ),
    case(
        "vmk-gateway-outside-subnet",
        put(f"{HOST0}.vmkernel[0].gateway", "10.0.0.1"),
        f"{HOST0}.vmkernel[0].gateway: gateway 10.0.0.1 is not in the subnet 192.168.100.0/24",
    ),
    # --- names ---------------------------------------------------------------
    case(
        "name-too-long",
        put("vms[0].name", "a-very-long-vm-name"),
        "vms[0].name: must be at most 15 characters, as it becomes part of Linux interface "
        "names (got 'a-very-long-vm-name')",
    ),
    case(
        "name-with-dot",
        put("vms[0].name", "vm.1a"),
        "vms[0].name: must start with a letter and contain only letters, digits, '-' and '_' (got 'vm.1a')",
    ),
    case(
        "vnic-port-name-too-long",
        put("vms[0].name", "webserver-01"),
        f"{VNIC0}.name: vNIC port interface name 'webserver-01-eth0' is 17 characters; "
        "Linux allows at most 15",
    ),
    case(
        "control-port-name-too-long",
        put(f"{HOST0}.name", "esx-rack1-node"),
        f"{HOST0}.name: control interface name 'c-esx-rack1-node' is 16 characters; Linux allows at most 15",
    ),
    case(
        "reserved-name-fabric",
        put("vms[0].name", "fabric"),
        "vms[0].name: 'fabric' is reserved for the testbed's own node",
    ),
    case(
        "reserved-name-mgmt",
        put(f"{HOST0}.name", "mgmt"),
        f"{HOST0}.name: 'mgmt' is reserved for the testbed's own node",
    ),
    case(
        "duplicate-node-vm-vs-host",
        put("vms[0].name", "esx2"),
        "vms[0].name: duplicate node name 'esx2' (first at esxi_hosts[1].name)",
    ),
    case(
        "duplicate-vm-names",
        put("vms[1].name", "vm1a"),
        "vms[1].name: duplicate node name 'vm1a' (first at vms[0].name)",
    ),
    case(
        "duplicate-mac",
        put("vms[1].vnics[0].mac", "00:50:56:00:01:0A"),
        "vms[1].vnics[0].mac: duplicate MAC 00:50:56:00:01:0a (first at vms[0].vnics[0].mac)",
    ),
    case(
        "duplicate-ip-vm-vs-vmk",
        put(f"{VNIC0}.ip", "192.168.100.11/24"),
        f"{VNIC0}.ip: duplicate IP 192.168.100.11 (first at esxi_hosts[0].vmkernel[0].ip)",
    ),
    case(
        "duplicate-port-group",
        put(f"{PG_1G}.name", "Management"),
        f"{VSW0}.port_groups[1]: duplicate port group 'Management' (first at {VSW0}.port_groups[0])",
    ),
    case(
        "duplicate-vswitch",
        append(f"{HOST0}.vswitches", {"name": "vSwitch0"}),
        f"{HOST0}.vswitches[1]: duplicate vSwitch 'vSwitch0' (first at {VSW0})",
    ),
]


@pytest.mark.parametrize("base, edit, expected", INVALID)
def test_invalid_lab(base, edit, expected):
    assert refusal(base, edit) == expected


# --- whole-file problems -------------------------------------------------------


@pytest.mark.parametrize(
    "data, expected",
    [
        pytest.param(
            [TWO_HOSTS],
            "a lab file must be a YAML mapping at the top level (got a list)",
            id="top-level-list",
        ),
        pytest.param(
            "two-hosts",
            "a lab file must be a YAML mapping at the top level (got 'two-hosts')",
            id="top-level-string",
        ),
        pytest.param(None, "the lab file is empty", id="empty"),
    ],
)
def test_top_level_not_a_mapping(data, expected):
    with pytest.raises(LabError) as info:
        parse_lab(data, "lab.yaml")
    assert str(info.value) == f"lab.yaml: (top): {expected}"


def test_invalid_yaml_syntax(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text("name: broken\ndescription: vlan: 10\n")  # unquoted ': '
    with pytest.raises(LabError) as info:
        load_lab(path)
    assert str(info.value) == (
        f"{path}: line 2, column 18: invalid YAML: mapping values are not allowed here"
    )


def test_duplicate_yaml_key(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text("name: a\nlink_scale: 0.1\nname: b\n")
    with pytest.raises(LabError) as info:
        load_lab(path)
    assert str(info.value) == (
        f"{path}: line 3, column 1: invalid YAML: duplicate key 'name' (first on line 1)"
    )


def test_yaml_merge_key_may_be_overridden(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text("name: merged\nsites:\n  - &dc {name: dc1}\n  - {<<: *dc, name: dc2}\n")
    assert [s.name for s in load_lab(path).sites] == ["dc1", "dc2"]


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(LabError) as info:
        load_lab(path)
    assert str(info.value) == f"{path}: (top): cannot read: No such file or directory"


def test_unreadable_file(tmp_path):
    # A directory cannot be read as a file even by root (chmod 000 can).
    with pytest.raises(LabError) as info:
        load_lab(tmp_path)
    assert str(info.value) == f"{tmp_path}: (top): cannot read: Is a directory"


def test_binary_file(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_bytes(b"name: x\n\xff\xfe")
    with pytest.raises(LabError) as info:
        load_lab(path)
    assert str(info.value) == f"{path}: (top): cannot read: not UTF-8 text (byte 8)"

"""Lab file validation: every error is one line ``FILE: path: problem``.

Each invalid case starts from a valid lab (``labs/two-hosts.yaml``, or the
distributed-switch lab below), applies one small edit and checks the exact
message, so a reworded message or a path that stops pointing at the real
field fails here. Rootless and fast: nothing is started.
"""

from __future__ import annotations

import copy
import random
import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from vlab.lab.load import LabError, load_lab, parse_lab
from vlab.lab.resolve import host_switches

LABS = Path(__file__).resolve().parents[2] / "labs"
TWO_HOSTS = yaml.safe_load((LABS / "two-hosts.yaml").read_text())

# Two hosts with a standard vSwitch for management and a distributed switch
# for VM traffic; esx2 maps the dvUplinks the other way round than esx1.
DVS_LAB_YAML = """
name: dvs-lab
physical_switches:
  - name: pswitch1
    lags:
      - {name: po1, ports: [3, 4]}
distributed_switches:
  - name: dvs1
    uplinks: [Uplink1, Uplink2]
    port_groups:
      - {name: DPG-10, vlan: 10}
      - name: DPG-Trunk
        vlan: 4095
        security: {forged_transmits: accept}
        teaming: {active: [Uplink2], standby: [Uplink1]}
esxi_hosts:
  - name: esx1
    uplinks:
      - {name: vmnic0, speed: 1, switch: pswitch1, port: 1}
      - {name: vmnic1, speed: 1, switch: pswitch1, port: 2}
      - {name: vmnic2, speed: 10, switch: pswitch1, port: 3}
      - {name: vmnic3, speed: 10, switch: pswitch1, port: 4}
    vswitches:
      - name: vSwitch0
        uplinks: [vmnic0, vmnic1]
        port_groups: [{name: Management, vlan: 100}]
    distributed_switches:
      - {name: dvs1, uplinks: {Uplink1: vmnic2, Uplink2: vmnic3}}
    vmkernel:
      - {name: vmk0, port_group: Management, ip: 192.168.100.11/24}
  - name: esx2
    uplinks:
      - {name: vmnic0, speed: 1, switch: pswitch1, port: 5}
      - {name: vmnic1, speed: 1, switch: pswitch1, port: 6}
      - {name: vmnic2, speed: 10, switch: pswitch1, port: 7}
      - {name: vmnic3, speed: 10, switch: pswitch1, port: 8}
    vswitches:
      - name: vSwitch0
        uplinks: [vmnic0, vmnic1]
        port_groups: [{name: Management, vlan: 100}]
    distributed_switches:
      - {name: dvs1, uplinks: {Uplink1: vmnic3, Uplink2: vmnic2}}
    vmkernel:
      - {name: vmk0, port_group: Management, ip: 192.168.100.12/24}
vms:
  - {name: vm1, host: esx1, vnics: [{port_group: DPG-10, mac: "00:50:56:00:01:01", ip: 10.10.0.1/24}]}
  - {name: vm2, host: esx2, vnics: [{port_group: DPG-Trunk, mac: "00:50:56:00:02:01"}]}
"""
DVS_LAB = yaml.safe_load(DVS_LAB_YAML)
NSX_LAB = yaml.safe_load((LABS / "nsx-overlay.yaml").read_text())
BASES = {"two-hosts": TWO_HOSTS, "dvs": DVS_LAB, "nsx": NSX_LAB}


# --- dict-path edits, in the same notation as the error messages ------------


def _parts(path: str) -> list:
    """'esxi_hosts[0].uplinks[1].speed' -> ['esxi_hosts', 0, 'uplinks', 1, 'speed']."""
    return [int(tok[1:-1]) if tok.startswith("[") else tok for tok in re.findall(r"\[\d+\]|[^.\[\]]+", path)]


def _walk(data, path: str):
    *head, last = _parts(path)
    for part in head:
        data = data[part]
    return data, last


def put(path: str, value):
    """Set (or add) the field at ``path``."""

    def edit(data):
        parent, last = _walk(data, path)
        parent[last] = copy.deepcopy(value)

    return edit


def drop(path: str):
    """Delete the field at ``path``."""

    def edit(data):
        parent, last = _walk(data, path)
        del parent[last]

    return edit


def append(path: str, value):
    """Append ``value`` to the list at ``path`` (creating it if absent)."""

    def edit(data):
        parent, last = _walk(data, path)
        parent.setdefault(last, []).append(copy.deepcopy(value))

    return edit


def both(*edits):
    def edit(data):
        for e in edits:
            e(data)

    return edit


HOST0 = "esxi_hosts[0]"
VSW0 = "esxi_hosts[0].vswitches[0]"
PG_1G = "esxi_hosts[0].vswitches[0].port_groups[1]"  # PG-1G on esx1
VNIC0 = "vms[0].vnics[0]"  # vm1a's eth0
DVS = "distributed_switches[0]"
MEMBER0 = "esxi_hosts[0].distributed_switches[0]"  # esx1's dvs1 membership
IP_HASH_HINT = "ip_hash needs every active uplink in one static LAG (physical_switches[].lags)"


def case(id_, edit, expected, base="two-hosts"):
    return pytest.param(base, edit, "lab.yaml: " + expected, id=id_)


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
        put(f"{PG_1G}.teaming.policy", "load_based"),
        f"{PG_1G}.teaming.policy: must be 'originating_port', 'source_mac_hash', 'ip_hash' "
        "or 'explicit_failover' (got 'load_based')",
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
    # --- dangling references --------------------------------------------------
    case("unknown-vm-host", put("vms[0].host", "esx9"), "vms[0].host: unknown ESXi host 'esx9'"),
    case(
        "unknown-vnic-port-group",
        put(f"{VNIC0}.port_group", "PG-25G"),
        f"{VNIC0}.port_group: esx1 has no port group 'PG-25G'",
    ),
    case(
        "unknown-vmk-port-group",
        put(f"{HOST0}.vmkernel[0].port_group", "vMotion"),
        f"{HOST0}.vmkernel[0].port_group: esx1 has no port group 'vMotion'",
    ),
    case(
        "vmk-on-trunk-port-group",
        put(f"{VSW0}.port_groups[0].vlan", 4095),
        f"{HOST0}.vmkernel[0].port_group: a VMkernel adapter cannot use a VLAN 4095 (trunk) port group",
    ),
    case(
        "unknown-uplink-switch",
        put(f"{HOST0}.uplinks[0].switch", "pswitch9"),
        f"{HOST0}.uplinks[0].switch: unknown physical switch 'pswitch9'",
    ),
    case("unknown-host-site", put(f"{HOST0}.site", "dc9"), f"{HOST0}.site: unknown site 'dc9'"),
    case(
        "unknown-switch-site",
        put("physical_switches[0].site", "dc9"),
        "physical_switches[0].site: unknown site 'dc9'",
    ),
    case(
        "vswitch-uplink-not-on-host",
        put(f"{VSW0}.uplinks[3]", "vmnic9"),
        f"{VSW0}.uplinks[3]: esx1 has no uplink 'vmnic9'",
    ),
    case(
        "vswitch-uplink-listed-twice",
        put(f"{VSW0}.uplinks[3]", "vmnic0"),
        f"{VSW0}.uplinks[3]: vmnic0 is listed twice",
    ),
    case(
        "unknown-distributed-switch",
        put(f"{HOST0}.distributed_switches", [{"name": "dvs9"}]),
        f"{MEMBER0}.name: unknown distributed switch 'dvs9'",
    ),
    # --- teaming and the physical side ---------------------------------------
    case(
        "teaming-uplink-not-on-vswitch",
        both(
            put(f"{VSW0}.uplinks", ["vmnic0", "vmnic1", "vmnic2"]),
            put(f"{VSW0}.port_groups[2].teaming", {"active": ["vmnic2", "vmnic3"]}),
        ),
        f"{VSW0}.port_groups[2].teaming.active[1]: 'vmnic3' is not an uplink of vSwitch vSwitch0",
    ),
    case(
        "uplink-active-and-standby",
        put(f"{PG_1G}.teaming", {"active": ["vmnic0", "vmnic1"], "standby": ["vmnic1"]}),
        f"{PG_1G}.teaming.standby[0]: vmnic1 is already listed as active",
    ),
    case(
        "no-active-or-standby-uplink",
        put(f"{PG_1G}.teaming", {"unused": ["vmnic0", "vmnic1", "vmnic2", "vmnic3"]}),
        f"{PG_1G}.teaming.unused: no active or standby uplink left: traffic could not leave the host",
    ),
    case(
        "uplink-on-two-vswitches",
        both(
            put(f"{VSW0}.uplinks", ["vmnic0", "vmnic1", "vmnic2"]),
            put(f"{VSW0}.port_groups[2].teaming", {"active": ["vmnic2"]}),
            append(f"{HOST0}.vswitches", {"name": "vSwitch1", "uplinks": ["vmnic2", "vmnic3"]}),
        ),
        f"{HOST0}.vswitches[1].uplinks[0]: vmnic2 is already an uplink of vSwitch0",
    ),
    case(
        "two-links-on-one-switch-port",
        put("esxi_hosts[1].uplinks[0].port", 1),
        "esxi_hosts[1].uplinks[0].port: pswitch1 port 1 is already used by esx1/vmnic0",
    ),
    case(
        "ip-hash-without-lag",
        put(f"{PG_1G}.teaming.policy", "ip_hash"),
        f"{PG_1G}.teaming.policy: {IP_HASH_HINT}; PG-1G on esx1: vmnic0 (pswitch1 port 1) is in no LAG",
    ),
    case(
        "ip-hash-inherited-from-vswitch",
        put(f"{VSW0}.teaming", {"policy": "ip_hash"}),
        f"{VSW0}.teaming.policy: {IP_HASH_HINT}; Management on esx1: vmnic0 (pswitch1 port 1) is in no LAG",
    ),
    case(
        "ip-hash-across-two-lags",
        both(
            put(
                "physical_switches[0].lags",
                [{"name": "po1", "ports": [1, 5]}, {"name": "po2", "ports": [2, 6]}],
            ),
            put(f"{PG_1G}.teaming.policy", "ip_hash"),
        ),
        f"{PG_1G}.teaming.policy: {IP_HASH_HINT}; PG-1G on esx1: active uplinks are in "
        "different LAGs (pswitch1/po1, pswitch1/po2)",
    ),
    # --- distributed switches -------------------------------------------------
    case(
        "dvs-member-unknown-dvuplink",
        put(f"{MEMBER0}.uplinks", {"Uplink9": "vmnic2"}),
        f"{MEMBER0}.uplinks.Uplink9: dvs1 has no dvUplink 'Uplink9'",
        base="dvs",
    ),
    case(
        "dvs-member-vmnic-not-on-host",
        put(f"{MEMBER0}.uplinks.Uplink2", "vmnic7"),
        f"{MEMBER0}.uplinks.Uplink2: esx1 has no uplink 'vmnic7'",
        base="dvs",
    ),
    case(
        "dvs-member-vmnic-on-vswitch",
        put(f"{MEMBER0}.uplinks.Uplink2", "vmnic1"),
        f"{MEMBER0}.uplinks.Uplink2: vmnic1 is already an uplink of vSwitch0",
        base="dvs",
    ),
    case(
        "dvs-member-vmnic-mapped-twice",
        put(f"{MEMBER0}.uplinks.Uplink2", "vmnic2"),
        f"{MEMBER0}.uplinks.Uplink2: vmnic2 is already mapped to another dvUplink",
        base="dvs",
    ),
    case(
        "dvs-member-uplink-key-number",
        put(f"{MEMBER0}.uplinks", {1: "vmnic2"}),
        f"{MEMBER0}.uplinks.1: key must be a valid string (got 1)",
        base="dvs",
    ),
    case(
        "dvs-joined-twice",
        append(f"{HOST0}.distributed_switches", {"name": "dvs1"}),
        f"{HOST0}.distributed_switches[1]: duplicate distributed switch membership 'dvs1' "
        f"(first at {MEMBER0})",
        base="dvs",
    ),
    case(
        "dvs-duplicate-dvuplink",
        put(f"{DVS}.uplinks", ["Uplink1", "Uplink1"]),
        f"{DVS}.uplinks[1]: duplicate dvUplink 'Uplink1' (first at {DVS}.uplinks[0])",
        base="dvs",
    ),
    case(
        "dvs-teaming-unknown-dvuplink",
        put(f"{DVS}.port_groups[0].teaming", {"active": ["Uplink3"]}),
        f"{DVS}.port_groups[0].teaming.active[0]: 'Uplink3' is not an uplink of distributed switch dvs1",
        base="dvs",
    ),
    case(
        "dvs-port-group-clashes-with-vswitch",
        put(f"{DVS}.port_groups[0].name", "Management"),
        f"{MEMBER0}.name: port group 'Management' of dvs1 clashes with one on esx1",
        base="dvs",
    ),
    case(
        "dvs-ip-hash-lag-on-one-host-only",
        put(f"{DVS}.port_groups[0].teaming", {"policy": "ip_hash"}),
        f"{DVS}.port_groups[0].teaming.policy: {IP_HASH_HINT}; DPG-10 on esx2: vmnic3 "
        "(pswitch1 port 8) is in no LAG",
        base="dvs",
    ),
]


NSX_VM0 = "vms[0].vnics[0]"
NSX_INVALID = [
    case(
        "nsx-vnic-both-attachments",
        put(f"{NSX_VM0}.port_group", "VTEP-A"),
        f"{NSX_VM0}: give exactly one of port_group and logical_switch",
        base="nsx",
    ),
    case(
        "nsx-unknown-logical-switch",
        put(f"{NSX_VM0}.logical_switch", "db"),
        f"{NSX_VM0}.logical_switch: unknown logical switch 'db' (nsx.logical_switches)",
        base="nsx",
    ),
    case(
        "nsx-vm-on-host-without-vtep",
        both(put("esxi_hosts[0].vmkernel", []), put("vms[2].host", "esx2")),
        f"{NSX_VM0}.logical_switch: esx1 has no VTEP (a VMkernel adapter with stack: vxlan)",
        base="nsx",
    ),
    case(
        "nsx-duplicate-vni",
        put("nsx.logical_switches[1].vni", 5001),
        "nsx.logical_switches[1]: duplicate VNI 5001 (first at nsx.logical_switches[0])",
        base="nsx",
    ),
    case(
        "nsx-vni-too-small",
        put("nsx.logical_switches[0].vni", 10),
        "nsx.logical_switches[0].vni: must be greater than or equal to 5000 (got 10)",
        base="nsx",
    ),
    case(
        "nsx-two-vteps",
        append(
            "esxi_hosts[0].vmkernel",
            {"name": "vmk4", "port_group": "VTEP-A", "ip": "172.16.200.21/24", "stack": "vxlan"},
        ),
        "esxi_hosts[0].vmkernel[1].stack: esx1 already has a VTEP, vmk3",
        base="nsx",
    ),
    case(
        "nsx-vtep-without-nsx-section",
        drop("nsx"),
        "esxi_hosts[0].vmkernel[0].stack: a VTEP (stack: vxlan) needs an nsx section",
        base="nsx",
    ),
    case(
        "nsx-lif-unknown-switch",
        put("nsx.distributed_routers[0].interfaces[1].logical_switch", "db"),
        "nsx.distributed_routers[0].interfaces[1].logical_switch: unknown logical switch 'db'",
        base="nsx",
    ),
    case(
        "nsx-lif-same-subnet",
        put("nsx.distributed_routers[0].interfaces[1].ip", "10.1.1.2/24"),
        "nsx.distributed_routers[0].interfaces[1].ip: subnet 10.1.1.0/24 is already on interface 0",
        base="nsx",
    ),
    case(
        "nsx-ip-discovery-twice",
        put("nsx.logical_switches[0].ip_discovery", ["arp_snooping", "arp_snooping"]),
        "nsx.logical_switches[0].ip_discovery[1]: arp_snooping is listed twice",
        base="nsx",
    ),
    case(
        "nsx-ip-discovery-unknown",
        put("nsx.logical_switches[0].ip_discovery", ["lldp"]),
        "nsx.logical_switches[0].ip_discovery[0]: must be 'vmtools', 'arp_snooping' or "
        "'dhcp_snooping' (got 'lldp')",
        base="nsx",
    ),
    case(
        "nsx-vtep-switch-mtu",
        put("distributed_switches[0].mtu", 9000),
        "esxi_hosts[0].vmkernel[0].port_group: dvs-compute carries the VTEP, so its MTU is "
        "nsx.transport_mtu (1600), not the 9000 it sets",
        base="nsx",
    ),
]


@pytest.mark.parametrize("base, edit, expected", INVALID + NSX_INVALID)
def test_invalid_lab(base, edit, expected):
    data = copy.deepcopy(BASES[base])
    edit(data)
    with pytest.raises(LabError) as info:
        parse_lab(data, "lab.yaml")
    assert str(info.value) == expected


def test_error_carries_file_path_and_problem():
    data = copy.deepcopy(TWO_HOSTS)
    data["vms"][0]["host"] = "esx9"
    with pytest.raises(LabError) as info:
        parse_lab(data, "lab.yaml")
    err = info.value
    assert (err.file, err.path, err.problem) == ("lab.yaml", "vms[0].host", "unknown ESXi host 'esx9'")


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


# --- valid labs ------------------------------------------------------------------


def test_two_hosts_lab_loads():
    lab = load_lab(LABS / "two-hosts.yaml")
    assert lab.name == "two-hosts"
    assert [h.name for h in lab.esxi_hosts] == ["esx1", "esx2"]
    assert [vm.name for vm in lab.vms] == ["vm1a", "vm1b", "vm2a", "vm2b"]
    assert lab.link_scale == 0.01
    assert lab.vms[0].vnics[0].mac == "00:50:56:00:01:0a"
    assert str(lab.vms[0].vnics[0].ip) == "10.10.0.11/24"


def test_models_are_immutable():
    lab = parse_lab(copy.deepcopy(TWO_HOSTS), "lab.yaml")
    with pytest.raises(ValidationError):
        lab.name = "other"
    with pytest.raises(ValidationError):
        lab.esxi_hosts[0].uplinks[0].speed = 25
    with pytest.raises(ValidationError):
        lab.esxi_hosts[0].vswitches[0].port_groups[1].teaming.policy = "ip_hash"
    with pytest.raises(AttributeError):
        lab.vms.append(lab.vms[0])  # lists of objects are tuples


def test_parsing_does_not_modify_the_input():
    data = copy.deepcopy(TWO_HOSTS)
    parse_lab(data, "lab.yaml")
    assert data == TWO_HOSTS


def test_ip_hash_with_lag_loads():
    data = copy.deepcopy(TWO_HOSTS)
    data["physical_switches"][0]["lags"] = [
        {"name": "po1", "ports": [1, 2]},
        {"name": "po2", "ports": [5, 6]},
    ]
    for host in data["esxi_hosts"]:
        host["vswitches"][0]["port_groups"][1]["teaming"]["policy"] = "ip_hash"
    parse_lab(data, "lab.yaml")


def test_distributed_switch_lab():
    lab = parse_lab(copy.deepcopy(DVS_LAB), "lab.yaml")
    esx1, esx2 = lab.esxi_hosts
    vss, dvs = host_switches(lab, esx1)
    assert (vss.name, vss.kind, vss.uplinks) == ("vSwitch0", "standard", ("vmnic0", "vmnic1"))
    assert (dvs.name, dvs.kind, dvs.index) == ("dvs1", "distributed", 1)
    # dvUplink names are mapped to this host's vmnics, in the switch's order.
    assert dvs.uplinks == ("vmnic2", "vmnic3")
    assert dvs.port_group("DPG-10").teaming.active == ("vmnic2", "vmnic3")
    trunk = dvs.port_group("DPG-Trunk")
    assert (trunk.vlan, trunk.teaming.active, trunk.teaming.standby) == (4095, ("vmnic3",), ("vmnic2",))
    # esx2 maps Uplink1/Uplink2 the other way round.
    dvs2 = host_switches(lab, esx2)[1]
    assert dvs2.uplinks == ("vmnic3", "vmnic2")
    assert dvs2.port_group("DPG-Trunk").teaming.active == ("vmnic2",)


def test_security_defaults_per_switch_type():
    lab = parse_lab(copy.deepcopy(DVS_LAB), "lab.yaml")
    vss, dvs = host_switches(lab, lab.esxi_hosts[0])

    def policy(pg):
        s = pg.security
        return (s.promiscuous, s.mac_changes, s.forged_transmits)

    assert policy(vss.port_group("Management")) == ("reject", "accept", "accept")
    assert policy(dvs.port_group("DPG-10")) == ("reject", "reject", "reject")
    # A port group overrides one setting and inherits the rest.
    assert policy(dvs.port_group("DPG-Trunk")) == ("reject", "reject", "accept")


def test_dvs_ip_hash_with_lags_on_every_host_loads():
    data = copy.deepcopy(DVS_LAB)
    data["physical_switches"][0]["lags"].append({"name": "po2", "ports": [7, 8]})
    data["distributed_switches"][0]["port_groups"][0]["teaming"] = {"policy": "ip_hash"}
    lab = parse_lab(data, "lab.yaml")
    dpg = host_switches(lab, lab.esxi_hosts[1])[1].port_group("DPG-10")
    assert dpg.teaming.policy == "ip_hash"


def test_port_group_teaming_overrides_failover_order_as_a_unit():
    data = copy.deepcopy(TWO_HOSTS)
    vsw = data["esxi_hosts"][0]["vswitches"][0]
    vsw["teaming"] = {
        "policy": "explicit_failover",
        "active": ["vmnic0", "vmnic1"],
        "standby": ["vmnic2"],
        "failback": False,
    }
    vsw["port_groups"][1]["teaming"] = {"standby": ["vmnic3"]}
    vsw["port_groups"][2]["teaming"] = {}
    lab = parse_lab(data, "lab.yaml")
    sw = host_switches(lab, lab.esxi_hosts[0])[0]
    # PG-1G gives its own order (standby only): the vSwitch's active and
    # standby lists are not merged in, every other uplink is active.
    pg = sw.port_group("PG-1G").teaming
    assert (pg.active, pg.standby, pg.unused) == (("vmnic0", "vmnic1", "vmnic2"), ("vmnic3",), ())
    # ... while policy and failback, not part of the order, still inherit.
    assert (pg.policy, pg.failback, pg.notify_switches) == ("explicit_failover", False, True)
    # PG-10G gives no order: the vSwitch's applies, unlisted uplinks unused.
    pg = sw.port_group("PG-10G").teaming
    assert (pg.active, pg.standby, pg.unused) == (("vmnic0", "vmnic1"), ("vmnic2",), ("vmnic3",))
    # Management gives active+standby: vmnic2 and vmnic3 become unused.
    pg = sw.port_group("Management").teaming
    assert (pg.active, pg.standby, pg.unused) == (("vmnic0",), ("vmnic1",), ("vmnic2", "vmnic3"))


# --- no input gives a traceback ---------------------------------------------------

_ERROR_LINE = re.compile(r"^lab\.yaml: \S.*?: \S")
_ODD_VALUES = [
    None,
    0,
    -1,
    4096,
    10**20,
    0.5,
    float("nan"),
    True,
    "",
    "10",
    "x" * 40,
    [],
    {},
    ["vmnic0"],
    {"name": "x"},
    "00:50:56:00:01:0a",
    "10.10.0.11/24",
]


def _all_paths(node):
    """Every (parent, key) pair in a YAML tree, depth first."""
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    else:
        return
    for key, child in items:
        yield node, key
        yield from _all_paths(child)


def _mutate(data, rng: random.Random) -> None:
    parent, key = rng.choice(list(_all_paths(data)))
    op = rng.choice(["delete", "retype", "duplicate", "random-string", "odd-value"])
    if op == "delete":
        del parent[key]
    elif op == "retype":
        value = parent[key]
        if isinstance(value, str):
            parent[key] = int(value) if value.isdigit() else [value]
        else:
            parent[key] = str(value)
    elif op == "duplicate":
        lists = [p[k] for p, k in _all_paths(data) if isinstance(p[k], list) and p[k]]
        target = rng.choice(lists)
        target.append(copy.deepcopy(rng.choice(target)))
    elif op == "random-string":
        parent[key] = "".join(rng.choice("abcXYZ019-_.:/ ") for _ in range(rng.randint(0, 20)))
    else:
        parent[key] = copy.deepcopy(rng.choice(_ODD_VALUES))


@pytest.mark.parametrize("base", ["two-hosts", "dvs", "nsx"])
def test_random_mutations_never_traceback(base):
    rng = random.Random(20240607)
    outcomes = {"parsed": 0, "rejected": 0}
    for _ in range(150):
        data = copy.deepcopy(BASES[base])
        for _ in range(rng.randint(1, 3)):
            _mutate(data, rng)
        try:
            parse_lab(data, "lab.yaml")
        except LabError as exc:
            assert _ERROR_LINE.match(str(exc)), str(exc)
            outcomes["rejected"] += 1
        else:
            outcomes["parsed"] += 1
    # Most random edits break something; a few (a changed description, a
    # duplicated port list entry...) are harmless.
    assert outcomes["rejected"] > 100


def test_link_faster_than_shaping_allows_is_rejected():
    data = copy.deepcopy(TWO_HOSTS)
    data["link_scale"] = 0.5
    with pytest.raises(LabError) as err:
        parse_lab(data, "lab.yaml")
    assert str(err.value) == (
        "lab.yaml: esxi_hosts[0].uplinks[2].speed: 10 Gbit/s x link_scale "
        "0.5 = 5000 Mbit/s; emulated links must stay at or below 1000 Mbit/s "
        "(lower link_scale)"
    )


def test_nsx_lab_loads_with_transport_mtu_on_the_vtep_switch():
    lab = parse_lab(copy.deepcopy(NSX_LAB))
    assert [sw.mtu for sw in host_switches(lab, lab.esxi_hosts[0])] == [1600]
    from vlab.lab.check import lab_warnings

    assert lab_warnings(lab) == []


def test_transport_mtu_below_1550_is_allowed_with_a_warning():
    from vlab.lab.check import lab_warnings

    data = copy.deepcopy(NSX_LAB)
    data["nsx"]["transport_mtu"] = 1500
    lab = parse_lab(data)
    assert [w for w, _ in lab_warnings(lab)] == ["nsx.transport_mtu"]
    assert "bulk TCP" in lab_warnings(lab)[0][1]


def _problem(data: dict) -> str:
    with pytest.raises(LabError) as err:
        parse_lab(data)
    return str(err.value)


def test_a_vmkernel_name_longer_than_linux_allows_is_refused():
    data = copy.deepcopy(TWO_HOSTS)
    data["esxi_hosts"][0]["vmkernel"][0]["name"] = "vmk1234567890123"
    assert _problem(data).endswith(
        "esxi_hosts[0].vmkernel[0].name: VMkernel adapter interface name 'vmk1234567890123' "
        "is 16 characters; Linux allows at most 15"
    )


def test_a_virtual_gateway_device_longer_than_linux_allows_is_refused():
    """The vip becomes a macvlan named after its interface plus 'v': a
    15-character interface name is fine alone, not with a vip."""
    data = yaml.safe_load((LABS / "vmsc.yaml").read_text())
    gw1 = next(h for h in data["hosts"] if h["name"] == "gw1")
    i = data["hosts"].index(gw1)
    gw1["interfaces"][0]["name"] = "eth0-to-psw1-10"
    assert _problem(data).endswith(
        f"hosts[{i}].interfaces[0].name: virtual gateway (vip) interface name "
        "'eth0-to-psw1-10v' is 16 characters; Linux allows at most 15"
    )
    del gw1["interfaces"][0]["vip"]
    parse_lab(data)

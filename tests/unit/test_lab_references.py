"""Lab file validation, the cross-references a schema cannot express
(``vlab check``): dangling names, teaming and the physical side,
distributed switches, NSX; and the valid labs that must load.

Each invalid case starts from a valid lab (``tests/unit/labedit.py``),
applies one small edit and checks the exact message. Rootless and fast.
"""

from __future__ import annotations

import copy

import pytest
import yaml

from tests.unit.labedit import (
    DVS,
    HOST0,
    IP_HASH_HINT,
    LABS,
    MEMBER0,
    NSX_LAB,
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
from vlab.lab.load import LabError, parse_lab
from vlab.lab.resolve import host_switches

REFERENCES = [
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
        f"{PG_1G}.teaming.policy: {IP_HASH_HINT}; PG-1G on esx1: vmnic0 (pswitch1 port 1) "
        "is in no static LAG (lacp: off)",
    ),
    case(
        "ip-hash-inherited-from-vswitch",
        put(f"{VSW0}.teaming", {"policy": "ip_hash"}),
        f"{VSW0}.teaming.policy: {IP_HASH_HINT}; Management on esx1: vmnic0 (pswitch1 port 1) "
        "is in no static LAG (lacp: off)",
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
    case(
        "ip-hash-with-beacon-probing",
        both(
            put("physical_switches[0].lags", [{"name": "po1", "ports": [1, 2]}]),
            put(f"{PG_1G}.teaming", {"policy": "ip_hash", "failure_detection": "beacon_probing"}),
        ),
        f"{PG_1G}.teaming.policy: PG-1G on esx1: ip_hash with beacon_probing: a port channel sends no "
        "beacon back into the LAG, so no uplink would hear another",
    ),
    case(
        "ip-hash-over-three-uplinks",
        both(
            put("physical_switches[0].lags", [{"name": "po1", "ports": [1, 2, 3]}]),
            put(f"{PG_1G}.teaming", {"policy": "ip_hash", "active": ["vmnic0", "vmnic1", "vmnic2"]}),
        ),
        f"{PG_1G}.teaming.policy: PG-1G on esx1: 3 active uplinks; IP hash is emulated for teams of "
        "1, 2, 4, 8 (its (src ^ dst) mod N is matched bit by bit in flows)",
    ),
    # --- distributed switches -------------------------------------------------
    case(
        "dvs-member-unknown-dvuplink",
        put(f"{MEMBER0}.uplinks", {"Uplink9": "vmnic2"}),
        f"{MEMBER0}.uplinks.Uplink9: dvs1 has no dvUplink or LAG port 'Uplink9'",
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
        "(pswitch1 port 8) is in no static LAG (lacp: off)",
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
        "nsx-promiscuous-logical-switch",
        put("nsx.logical_switches[0].security", {"promiscuous": "accept"}),
        "nsx.logical_switches[0].security.promiscuous: promiscuous: accept is not emulated on "
        "logical switches",
        base="nsx",
    ),
    case(
        "nsx-promiscuous-inherited-from-the-vtep-switch",
        put("distributed_switches[0].security", {"promiscuous": "accept"}),
        "nsx.logical_switches[0].security.promiscuous: promiscuous: accept is not emulated on logical "
        "switches (inherited from dvs-compute; set reject here)",
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


@pytest.mark.parametrize("base, edit, expected", REFERENCES + NSX_INVALID)
def test_invalid_lab(base, edit, expected):
    assert refusal(base, edit) == expected


def test_error_carries_file_path_and_problem():
    data = copy.deepcopy(TWO_HOSTS)
    data["vms"][0]["host"] = "esx9"
    with pytest.raises(LabError) as info:
        parse_lab(data, "lab.yaml")
    err = info.value
    assert (err.file, err.path, err.problem) == ("lab.yaml", "vms[0].host", "unknown ESXi host 'esx9'")


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


def test_beacon_probing_over_fewer_than_three_uplinks_loads_with_a_warning():
    from vlab.lab.check import lab_warnings

    data = copy.deepcopy(TWO_HOSTS)
    data["esxi_hosts"][0]["vswitches"][0]["port_groups"][1]["teaming"]["failure_detection"] = "beacon_probing"
    (warning,) = lab_warnings(parse_lab(data))
    assert warning[0] == "esx1/vSwitch0/PG-1G.teaming.failure_detection"
    assert "cannot tell which one failed" in warning[1] and "shotgun" in warning[1]
    three = parse_lab(copy.deepcopy(yaml.safe_load((LABS / "beacon-probing.yaml").read_text())))
    assert [w for w, _ in lab_warnings(three)] == ["esx1/vSwitch1/PG-Beacon2.teaming.failure_detection"]


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

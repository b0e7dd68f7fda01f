"""Port mirroring sessions in a lab file: each wrong session is one
``FILE: path: problem`` line (rootless; nothing is started).

Every case edits ``labs/erspan.yaml`` (an ERSPAN, a GRE and a local session
on dvSwitch) in one place and checks the exact message."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tests.unit.labedit import append, both, drop, put
from vlab.lab.load import LabError, parse_lab
from vlab.lab.resolve import mirror_session_id

LAB = yaml.safe_load((Path(__file__).resolve().parents[2] / "labs" / "erspan.yaml").read_text())
M = "distributed_switches[0].mirrors"
ERSPAN, GRE, LOCAL = f"{M}[0]", f"{M}[1]", f"{M}[2]"
# A second switch the VMs are not on: a standard vSwitch on esx1 with a VM.
OTHER_SWITCH = both(
    append("esxi_hosts[0].uplinks", {"name": "vmnic2", "speed": 1, "switch": "pswitch1", "port": 5}),
    put(
        "esxi_hosts[0].vswitches",
        [{"name": "vSwitch1", "uplinks": ["vmnic2"], "port_groups": [{"name": "Lab", "vlan": 40}]}],
    ),
    append(
        "vms", {"name": "lab1", "host": "esx1", "vnics": [{"port_group": "Lab", "mac": "00:50:56:03:00:40"}]}
    ),
)


def case(id_, edit, expected):
    return pytest.param(edit, "lab.yaml: " + expected, id=id_)


INVALID = [
    case(
        "unknown-vm",
        put(f"{ERSPAN}.sources[0].vm", "jumpbox2"),
        f"{ERSPAN}.sources[0].vm: unknown VM 'jumpbox2'",
    ),
    case(
        "unknown-vnic",
        put(f"{ERSPAN}.sources[0].vnic", "eth1"),
        f"{ERSPAN}.sources[0].vnic: jumpbox has no vNIC 'eth1'",
    ),
    case(
        "vnic-on-another-switch",
        both(OTHER_SWITCH, put(f"{ERSPAN}.sources[0].vm", "lab1")),
        f"{ERSPAN}.sources[0]: lab1/eth0 is on port group 'Lab', not on distributed switch dvSwitch",
    ),
    case(
        "destination-on-another-switch",
        both(OTHER_SWITCH, put(f"{LOCAL}.destination_vnics[0].vm", "lab1")),
        f"{LOCAL}.destination_vnics[0]: lab1/eth0 is on port group 'Lab', not on distributed switch dvSwitch",
    ),
    case(
        "destination-with-a-direction",
        put(f"{LOCAL}.destination_vnics[0].direction", "ingress"),
        f"{LOCAL}.destination_vnics[0].direction: direction is a source's; a destination receives the copies",
    ),
    case(
        "erspan-without-destination",
        drop(f"{ERSPAN}.destination_ip"),
        f"{ERSPAN}.destination_ip: an erspan session needs destination_ip (the monitoring host's address)",
    ),
    case(
        "local-without-destination",
        drop(f"{LOCAL}.destination_vnics"),
        f"{LOCAL}.destination_vnics: a local session needs destination_vnics (the VMs that "
        "receive the copies)",
    ),
    case(
        "local-with-destination-ip",
        put(f"{LOCAL}.destination_ip", "10.2.1.110"),
        f"{LOCAL}.destination_ip: destination_ip is for erspan sessions, this one is local",
    ),
    case(
        "local-with-snap-is-fine-but-encapsulation-is-not",
        put(f"{LOCAL}.encapsulation", "gre"),
        f"{LOCAL}.encapsulation: encapsulation is for erspan sessions, this one is local",
    ),
    case(
        "erspan-with-destination-vnics",
        put(f"{ERSPAN}.destination_vnics", [{"vm": "sniffer"}]),
        f"{ERSPAN}.destination_vnics: destination_vnics is for local sessions, this one is erspan",
    ),
    case(
        "erspan-with-normal-traffic",
        put(f"{ERSPAN}.normal_traffic", "allowed"),
        f"{ERSPAN}.normal_traffic: normal_traffic is for local sessions, this one is erspan",
    ),
    case(
        "destination-is-a-source",
        put(f"{LOCAL}.destination_vnics[0].vm", "jumpbox"),
        f"{LOCAL}.destination_vnics[0]: jumpbox/eth0 is also a source of this session (sources[0])",
    ),
    case(
        "source-twice",
        append(f"{ERSPAN}.sources", {"vm": "jumpbox", "direction": "ingress"}),
        f"{ERSPAN}.sources[1]: jumpbox/eth0 is already a source (sources[0])",
    ),
    case(
        "destination-of-two-sessions",
        append(
            M,
            {
                "name": "web-local",
                "type": "local",
                "sources": [{"vm": "web"}],
                "destination_vnics": [{"vm": "sniffer"}],
            },
        ),
        f"{M}[3].destination_vnics[0]: sniffer/eth0 is already a destination of session 'jumpbox-local'",
    ),
    case(
        "duplicate-session-name",
        put(f"{GRE}.name", "jumpbox-erspan"),
        f"{M}[1]: duplicate mirror session 'jumpbox-erspan' (first at {M}[0])",
    ),
    case(
        "duplicate-session-id",
        put(f"{GRE}.session_id", 1),
        f"{GRE}.session_id: session ID 1 is already used by session 'jumpbox-erspan'",
    ),
    case(
        "default-session-id-collides",
        both(drop(f"{ERSPAN}.session_id"), put(f"{GRE}.session_id", 1)),
        f"{GRE}.session_id: session ID 1 is already used by session 'jumpbox-erspan'",
    ),
    case(
        "destination-is-the-source-itself",
        put(f"{ERSPAN}.destination_ip", "10.2.2.10"),
        f"{ERSPAN}.destination_ip: 10.2.2.10 is the address of source jumpbox/eth0: its copies "
        "would be mirrored again",
    ),
    case(
        "snap-length-too-short",
        put(f"{GRE}.snap_length", 59),
        f"{GRE}.snap_length: must be greater than or equal to 60 (got 59)",
    ),
    case(
        "snap-length-too-long",
        put(f"{GRE}.snap_length", 9001),
        f"{GRE}.snap_length: must be less than or equal to 9000 (got 9001)",
    ),
    case(
        "session-id-out-of-range",
        put(f"{ERSPAN}.session_id", 1024),
        f"{ERSPAN}.session_id: must be less than or equal to 1023 (got 1024)",
    ),
    case(
        "unknown-direction",
        put(f"{ERSPAN}.sources[0].direction", "in"),
        f"{ERSPAN}.sources[0].direction: must be 'both', 'ingress' or 'egress' (got 'in')",
    ),
    case(
        "unknown-type",
        put(f"{ERSPAN}.type", "rspan"),
        f"{ERSPAN}.type: must be 'erspan' or 'local' (got 'rspan')",
    ),
    case(
        "unknown-encapsulation",
        put(f"{GRE}.encapsulation", "erspan3"),
        f"{GRE}.encapsulation: must be 'erspan' or 'gre' (got 'erspan3')",
    ),
    case(
        "normal-traffic-word",
        put(f"{LOCAL}.normal_traffic", "no"),
        f"{LOCAL}.normal_traffic: must be 'allowed' or 'disallowed' (got 'no')",
    ),
    case("no-sources", put(f"{ERSPAN}.sources", []), f"{ERSPAN}.sources: must have at least 1 entry (got 0)"),
    case(
        "destination-ip-not-an-address",
        put(f"{ERSPAN}.destination_ip", "monitor"),
        f"{ERSPAN}.destination_ip: not an IPv4 address: Expected 4 octets in 'monitor' (got 'monitor')",
    ),
]


@pytest.mark.parametrize("edit, expected", INVALID)
def test_invalid_mirror_session(edit, expected):
    data = copy.deepcopy(LAB)
    edit(data)
    with pytest.raises(LabError) as info:
        parse_lab(data, "lab.yaml")
    assert str(info.value) == expected


def test_erspan_lab_loads_with_defaults():
    lab = parse_lab(copy.deepcopy(LAB))
    dvs = lab.distributed_switches[0]
    erspan, gre, local = dvs.mirrors
    assert (erspan.type, erspan.encapsulation, erspan.enabled, erspan.snap_length) == (
        "erspan",
        "erspan",
        True,
        None,
    )
    assert (gre.encapsulation, gre.snap_length, gre.sources[0].direction) == ("gre", 128, "ingress")
    assert (local.normal_traffic, local.sources[0].direction, local.sources[0].vnic) == (
        "disallowed",
        "both",
        "eth0",
    )
    assert [mirror_session_id(dvs, i) for i in range(3)] == [1, 2, 3]


def test_session_id_defaults_to_position():
    data = copy.deepcopy(LAB)
    del data["distributed_switches"][0]["mirrors"][0]["session_id"]
    del data["distributed_switches"][0]["mirrors"][1]["session_id"]
    dvs = parse_lab(data).distributed_switches[0]
    assert [mirror_session_id(dvs, i) for i in range(2)] == [1, 2]


def test_disabled_session_still_validated():
    data = copy.deepcopy(LAB)
    data["distributed_switches"][0]["mirrors"][0]["enabled"] = False
    data["distributed_switches"][0]["mirrors"][0]["sources"][0]["vm"] = "nobody"
    with pytest.raises(LabError) as info:
        parse_lab(data, "lab.yaml")
    assert str(info.value) == f"lab.yaml: {ERSPAN}.sources[0].vm: unknown VM 'nobody'"

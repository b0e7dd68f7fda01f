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

# The local session turned into a Remote Mirroring Source session.
AS_RSPAN = both(
    put(f"{LOCAL}.type", "rspan"), drop(f"{LOCAL}.destination_vnics"), drop(f"{LOCAL}.normal_traffic")
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
        put(f"{ERSPAN}.type", "remote"),
        f"{ERSPAN}.type: must be 'erspan', 'rspan' or 'local' (got 'remote')",
    ),
    case(
        "unknown-encapsulation",
        put(f"{GRE}.encapsulation", "erspan4"),
        f"{GRE}.encapsulation: must be 'erspan', 'erspan3' or 'gre' (got 'erspan4')",
    ),
    case(
        "normal-traffic-word",
        put(f"{LOCAL}.normal_traffic", "no"),
        f"{LOCAL}.normal_traffic: must be 'allowed' or 'disallowed' (got 'no')",
    ),
    case(
        "uplink-as-source",
        put(f"{LOCAL}.sources[0]", {"uplink": "dvUplink1"}),
        f"{LOCAL}.sources[0].uplink: vSphere mirrors no uplink as a source: an uplink is only a "
        "Remote Mirroring Source (rspan) session's destination (destination_uplinks); to see an "
        "uplink's frames, capture on it (pktcap-uw --uplink HOST/VMNIC)",
    ),
    case(
        "unknown-vmk",
        put(f"{LOCAL}.sources[0]", {"host": "esx1", "vmk": "vmk9"}),
        f"{LOCAL}.sources[0].vmk: esx1 has no VMkernel adapter 'vmk9'",
    ),
    case(
        "vmk-without-host",
        put(f"{LOCAL}.sources[0]", {"vmk": "vmk0"}),
        f"{LOCAL}.sources[0].host: vmk vmk0 needs the host it is on (host: HOST)",
    ),
    case(
        "vmk-and-vm",
        put(f"{LOCAL}.sources[0]", {"vm": "jumpbox", "host": "esx1", "vmk": "vmk0"}),
        f"{LOCAL}.sources[0]: name either a VM's vNIC (vm, vnic) or a host's VMkernel adapter (host, vmk)",
    ),
    case(
        "vmk-with-a-vnic",
        put(f"{LOCAL}.sources[0]", {"host": "esx1", "vmk": "vmk0", "vnic": "eth0"}),
        f"{LOCAL}.sources[0].vnic: vnic is a VM's; a VMkernel adapter source has host and vmk",
    ),
    case(
        "vmk-on-a-standard-switch",
        both(
            OTHER_SWITCH,
            append("esxi_hosts[0].vmkernel", {"name": "vmk1", "port_group": "Lab", "ip": "10.9.0.1/24"}),
            put(f"{LOCAL}.sources[0]", {"host": "esx1", "vmk": "vmk1"}),
        ),
        f"{LOCAL}.sources[0]: esx1/vmk1 is on port group 'Lab' of vSwitch1, not on distributed "
        "switch dvSwitch (vSphere mirrors only distributed ports)",
    ),
    case(
        "vmk-as-destination",
        put(f"{LOCAL}.destination_vnics[0]", {"host": "esx1", "vmk": "vmk0"}),
        f"{LOCAL}.destination_vnics[0].vmk: a destination is a VM's vNIC (a capture VM); copies are "
        "not delivered to a vmk",
    ),
    case(
        "erspan-mirroring-its-own-vmk",
        put(f"{ERSPAN}.sources[0]", {"host": "esx1", "vmk": "vmk0"}),
        f"{ERSPAN}.sources[0]: esx1 sends this session's ERSPAN copies from vmk0: mirroring what it "
        "sends would mirror the copies again (an egress source is allowed)",
    ),
    case(
        "erspan-mirroring-the-vmk-of-another-erspan-session",
        both(
            append(
                "esxi_hosts[0].vmkernel", {"name": "vmk1", "port_group": "Management", "ip": "10.2.5.21/24"}
            ),
            put(f"{GRE}.sources[0]", {"host": "esx1", "vmk": "vmk0", "direction": "ingress"}),
            put(f"{GRE}.destination_ip", "10.2.5.99"),  # sent from vmk1
        ),
        f"{GRE}.sources[0]: esx1 sends session 'jumpbox-erspan''s ERSPAN copies from vmk0: mirroring what it "
        "sends would mirror the copies again (an egress source is allowed)",
    ),
    case(
        "rspan-without-uplinks",
        both(AS_RSPAN, put(f"{LOCAL}.encapsulation_vlan", 999)),
        f"{LOCAL}.destination_uplinks: an rspan session needs destination_uplinks (the dvUplinks the "
        "copies leave by)",
    ),
    case(
        "rspan-unknown-uplink",
        both(
            AS_RSPAN, put(f"{LOCAL}.encapsulation_vlan", 999), put(f"{LOCAL}.destination_uplinks", ["vmnic0"])
        ),
        f"{LOCAL}.destination_uplinks[0]: dvSwitch has no dvUplink 'vmnic0'",
    ),
    case(
        "rspan-without-vlan",
        both(AS_RSPAN, put(f"{LOCAL}.destination_uplinks", ["dvUplink1"])),
        f"{LOCAL}.encapsulation_vlan: an rspan session needs encapsulation_vlan (the RSPAN VLAN)",
    ),
    case(
        "rspan-vlan-of-a-port-group",
        both(
            AS_RSPAN,
            put(f"{LOCAL}.destination_uplinks", ["dvUplink1"]),
            put(f"{LOCAL}.encapsulation_vlan", 20),
        ),
        f"{LOCAL}.encapsulation_vlan: VLAN 20 is port group 'VM-Network''s: the copies would reach its "
        "ports; RSPAN needs a VLAN of its own",
    ),
    case(
        "rspan-with-destination-vnics",
        both(
            put(f"{LOCAL}.type", "rspan"),
            drop(f"{LOCAL}.normal_traffic"),
            put(f"{LOCAL}.destination_uplinks", ["dvUplink1"]),
            put(f"{LOCAL}.encapsulation_vlan", 999),
        ),
        f"{LOCAL}.destination_vnics: destination_vnics is for local sessions, this one is rspan",
    ),
    case(
        "preserve-vlan-on-erspan",
        put(f"{ERSPAN}.preserve_original_vlan", True),
        f"{ERSPAN}.preserve_original_vlan: preserve_original_vlan is for rspan sessions, this one is erspan",
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


def test_vmk_and_rspan_sessions_load():
    """A vmk source of a local session, and an RSPAN source session, as
    vSphere allows them."""
    data = copy.deepcopy(LAB)
    mirrors = data["distributed_switches"][0]["mirrors"]
    mirrors[2]["sources"] = [{"host": "esx1", "vmk": "vmk0", "direction": "egress"}]
    mirrors.append(
        {
            "name": "to-rspan",
            "type": "rspan",
            "sources": [{"vm": "web"}],
            "destination_uplinks": ["dvUplink2"],
            "encapsulation_vlan": 999,
            "preserve_original_vlan": True,
        }
    )
    dvs = parse_lab(data).distributed_switches[0]
    assert (dvs.mirrors[2].sources[0].vmk, dvs.mirrors[3].encapsulation_vlan) == ("vmk0", 999)


SOURCES_LAB = Path(__file__).resolve().parents[2] / "labs" / "port-mirroring.yaml"


def test_rspan_vlan_the_switches_learn_in_is_allowed_with_a_warning():
    """Without rspan_vlans the physical switch learns the copies' MACs in the
    RSPAN VLAN and delivers only the flooded ones (seen on real frames: the
    analyser got the ARP broadcasts and none of the pings)."""
    from topologies.physical import switch_commands
    from vlab.lab.check import lab_warnings

    data = yaml.safe_load(SOURCES_LAB.read_text())
    lab = parse_lab(copy.deepcopy(data))
    assert "flood_vlans=999" in switch_commands(lab, lab.physical_switches[0], {1: None})
    assert lab_warnings(lab) == []
    del data["physical_switches"][0]["rspan_vlans"]
    lab = parse_lab(data)
    assert "flood_vlans=999" not in " ".join(switch_commands(lab, lab.physical_switches[0], {1: None}))
    warnings = dict(lab_warnings(lab))
    assert warnings["distributed_switches[0].mirrors[1].encapsulation_vlan"] == (
        "VLAN 999 is in no physical switch's rspan_vlans: the switches learn the copies' MACs in it "
        "and pass on only copies of frames they flood"
    )


def test_an_erspan_session_may_mirror_what_its_sending_vmk_receives():
    """Copies leaving a vmk are that vmk's ingress: an egress source makes no loop."""
    data = copy.deepcopy(LAB)
    data["distributed_switches"][0]["mirrors"][0]["sources"] = [
        {"host": "esx1", "vmk": "vmk0", "direction": "egress"}
    ]
    assert parse_lab(data).distributed_switches[0].mirrors[0].sources[0].vmk == "vmk0"


def test_an_rspan_vlan_the_destination_uplinks_switch_port_prunes_is_warned():
    from vlab.lab.check import lab_warnings

    data = yaml.safe_load(SOURCES_LAB.read_text())
    data["physical_switches"][0]["ports"] = [{"port": 1, "allowed_vlans": [10, 20]}]
    assert dict(lab_warnings(parse_lab(data))) == {
        "distributed_switches[0].mirrors[1].encapsulation_vlan": "pswitch1 port 1 (esx1/vmnic0, dvUplink1) "
        "does not carry VLAN 999: it drops the copies"
    }

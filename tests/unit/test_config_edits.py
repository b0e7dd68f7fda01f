"""The administrator's changes to a running lab (``vlab.lab.edits``): replayed
on the lab file's data, validated exactly as the file is, one host's change
never leaking to another through a YAML anchor; and the controller
(against fake switches) recompiling every bridge from the changed lab while
keeping what the runtime learned, announcing ports a new team moved. Rootless."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.app import VSwitchController
from tests.unit.fakeswitch import Event, FakeDatapath, Msg
from vlab.lab.edits import (
    EditError,
    apply_edits,
    edited_lab,
    portgroup_path,
    set_edit,
    unset_edit,
    vswitch_path,
)
from vlab.lab.load import LabError, load_lab, read_lab_data

LABS = Path(__file__).resolve().parents[2] / "labs"
NUGGETS, TWO_HOSTS = LABS / "vswitch-nuggets.yaml", LABS / "two-hosts.yaml"
STRICT = portgroup_path("esx1", "vSwitch0", "PG-Strict")


def _pg(lab, host, name):
    h = next(h for h in lab.esxi_hosts if h.name == host)
    return next(pg for sw in h.vswitches for pg in sw.port_groups if pg.name == name)


def test_no_edits_is_the_lab_file():
    assert edited_lab(NUGGETS, []) == load_lab(NUGGETS)


def test_an_edit_on_one_host_does_not_reach_another_sharing_its_yaml_anchor():
    lab = edited_lab(NUGGETS, [set_edit([*STRICT, "security", "forged_transmits"], "accept")])
    assert _pg(lab, "esx1", "PG-Strict").security.forged_transmits == "accept"
    assert _pg(lab, "esx2", "PG-Strict").security.forged_transmits == "reject"
    data = read_lab_data(NUGGETS)
    apply_edits(
        data,
        [
            set_edit(
                [
                    *STRICT,
                    "vlan",
                ],
                30,
            )
        ],
    )  # the file's data is untouched
    assert data["esxi_hosts"][0]["vswitches"][0]["port_groups"][0]["vlan"] == 10


def test_set_creates_the_mapping_on_its_way_and_unset_falls_back_to_inheritance():
    path = [*portgroup_path("esx1", "vSwitch0", "PG-1G"), "security", "forged_transmits"]
    lab = edited_lab(TWO_HOSTS, [set_edit(path, "reject")])
    assert _pg(lab, "esx1", "PG-1G").security.forged_transmits == "reject"
    lab = edited_lab(TWO_HOSTS, [set_edit(path, "reject"), unset_edit(path)])
    assert _pg(lab, "esx1", "PG-1G").security.forged_transmits is None


def test_append_and_remove_name_the_item():
    groups = [*vswitch_path("esx1", "vSwitch0"), "port_groups"]
    added = edited_lab(TWO_HOSTS, [{"op": "append", "path": groups, "value": {"name": "PG-New", "vlan": 44}}])
    assert _pg(added, "esx1", "PG-New").vlan == 44
    removed = edited_lab(
        TWO_HOSTS,
        [
            {"op": "append", "path": groups, "value": {"name": "PG-New"}},
            {"op": "remove", "path": groups, "value": "PG-New"},
        ],
    )
    assert removed == load_lab(TWO_HOSTS)


def test_a_bad_value_is_refused_naming_the_field_as_the_lab_file_would():
    active = [*portgroup_path("esx1", "vSwitch0", "PG-1G"), "teaming", "active"]
    with pytest.raises(LabError) as err:
        edited_lab(TWO_HOSTS, [set_edit(active, ["vmnic9"])])
    assert err.value.path == "esxi_hosts[0].vswitches[0].port_groups[1].teaming.active[0]"
    assert "not an uplink" in err.value.problem
    with pytest.raises(LabError) as err:
        edited_lab(TWO_HOSTS, [set_edit([*portgroup_path("esx1", "vSwitch0", "PG-1G"), "vlan"], 5000)])
    assert err.value.path.endswith("port_groups[1].vlan")


def test_an_edit_that_leads_nowhere_says_where():
    with pytest.raises(EditError, match="nothing named 'vSwitch9'"):
        apply_edits(read_lab_data(TWO_HOSTS), [set_edit([*vswitch_path("esx1", "vSwitch9"), "mtu"], 9000)])
    with pytest.raises(LabError, match="cannot apply a change"):
        edited_lab(TWO_HOSTS, [{"op": "frobnicate", "path": ["name"]}])


# -- the controller ----------------------------------------------------------------------
@pytest.fixture
def ctl(tmp_path):
    c = VSwitchController.__new__(VSwitchController)  # no os-ken app manager
    c.configure(load_lab(TWO_HOSTS), tmp_path, str(TWO_HOSTS))
    return c


def _connected(ctl) -> dict[int, FakeDatapath]:
    dps = {}
    for d in ctl.state.dpids:
        dps[d] = FakeDatapath(d)
        ctl.on_switch_features(Event(Msg(dps[d])))
        while dps[d].barriers:
            ctl.on_barrier(Event(Msg(dps[d], xid=dps[d].barriers.pop(0))))
    return dps


def _esx1(ctl) -> int:
    return next(d for d in ctl.state.dpids if ctl.state.host_of(d) == "esx1")


def test_the_controller_compiles_the_changed_lab_into_every_bridge(ctl):
    dps = _connected(ctl)
    d = _esx1(ctl)
    before = dict(dps[d].table())
    edits = [set_edit([*portgroup_path("esx1", "vSwitch0", "PG-1G"), "vlan"], 30)]
    ctl._apply(ctl._take_desired({"generation": 1, "config_edits": edits}))
    fresh = VSwitchController.__new__(VSwitchController)
    fresh.configure(edited_lab(TWO_HOSTS, edits), ctl.run_dir)
    for dpid, dp in dps.items():
        assert dp.table() == dp.expected(fresh.state.flows(dpid)), ctl.state.host_of(dpid)
    assert dps[d].table() != before
    assert ctl.state.binding(d).switch.port_group("PG-1G").vlan == 30


def test_a_new_failover_order_replaces_what_failback_left_and_announces_the_moved_ports(ctl):
    dps = _connected(ctl)
    d = _esx1(ctl)
    port = "vm1b-eth0"  # PG-10G: active vmnic2, vmnic3
    ctl.state.teams[d] = {"PG-10G": ctl.state.binding(d).teaming("PG-10G")}  # as failback would leave it
    sent = len(dps[d].packet_outs)
    pinned = ctl.state.pinning()[d][port]
    other = {"vmnic2": "vmnic3", "vmnic3": "vmnic2"}[pinned]
    order = [*portgroup_path("esx1", "vSwitch0", "PG-10G"), "teaming"]
    edits = [set_edit([*order, "active"], [other]), set_edit([*order, "standby"], [pinned])]
    ctl._apply(ctl._take_desired({"generation": 1, "config_edits": edits}))
    ctl._send_notifications(ctl._config_notes)
    assert "PG-10G" not in ctl.state.teams[d]
    assert ctl.state.pinning()[d][port] == other
    rarps = dps[d].packet_outs[sent:]
    assert len(rarps) == 1 and rarps[0].actions[0].port == ctl.state.binding(d).port(other).ofport


def test_a_restarted_controller_takes_the_changes_from_desired_json(ctl, tmp_path):
    from vlab import control

    edits = [set_edit([*STRICT[:2], "vswitches", "vSwitch0", "port_groups", "PG-1G", "vlan"], 31)]
    control.write_json(tmp_path / control.DESIRED, {"generation": 3, "config_edits": edits})
    fresh = VSwitchController.__new__(VSwitchController)
    fresh.configure(load_lab(TWO_HOSTS), tmp_path, str(TWO_HOSTS))
    assert fresh.state.binding(_esx1(fresh)).switch.port_group("PG-1G").vlan == 31


def test_a_restarted_controller_keeps_the_teaming_decisions_of_changed_and_added_port_groups(ctl, tmp_path):
    from vlab import control

    d = _esx1(ctl)
    groups = [*vswitch_path("esx1", "vSwitch0"), "port_groups"]
    edits = [
        set_edit([*portgroup_path("esx1", "vSwitch0", "PG-10G"), "teaming", "failback"], False),
        {"op": "append", "path": groups, "value": {"name": "PG-New", "vlan": 40}},
    ]
    ctl._apply(ctl._take_desired({"generation": 1, "config_edits": edits}))
    # As failover and failback would leave them: kept across a restart.
    ctl.state.teams[d] = {pg: ctl.state.binding(d).teaming(pg) for pg in ("PG-10G", "PG-New")}
    ctl._write_applied()
    control.write_json(tmp_path / control.DESIRED, {"generation": 1, "config_edits": edits})
    fresh = VSwitchController.__new__(VSwitchController)
    fresh.configure(load_lab(TWO_HOSTS), tmp_path, str(TWO_HOSTS))
    assert set(fresh.state.teams[d]) == {"PG-10G", "PG-New"}
    assert fresh.state.teaming_to_json() == ctl.state.teaming_to_json()


def test_a_bridge_whose_beacon_probing_changed_starts_its_verdicts_over(tmp_path):
    lab_file = LABS / "beacon-probing.yaml"
    c = VSwitchController.__new__(VSwitchController)
    c.configure(load_lab(lab_file), tmp_path, str(lab_file))
    d = next(
        x for x in c.state.dpids if c.state.binding(x).bridge == "vSwitch0" and c.state.host_of(x) == "esx1"
    )
    c.state.beacon_failed[d] = frozenset({"vmnic0"})
    beacon_pg = [*portgroup_path("esx1", "vSwitch0", "PG-Beacon"), "teaming", "failure_detection"]
    c._apply(c._take_desired({"generation": 1, "config_edits": [set_edit(beacon_pg, "link_status")]}))
    assert c.state.binding(d).beacon_failed == frozenset()

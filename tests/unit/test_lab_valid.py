"""Labs that must load, and what loading them gives: immutable models, the
input left untouched, teaming resolved as vSphere resolves it. Rootless."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.unit.labedit import (
    DVS_LAB,
    LABS,
    TWO_HOSTS,
)
from vlab.lab.load import load_lab, parse_lab
from vlab.lab.resolve import host_switches

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


def test_sites_group_hosts_and_switches_for_inspect():
    from vlab.lab.resolve import sites_of

    root = Path(__file__).resolve().parents[2] / "labs"
    sites = sites_of(load_lab(root / "vmsc.yaml"))
    for dc, n in (("DC1", 1), ("DC2", 2)):
        members = {"esxi_hosts": [f"esx{n}1", f"esx{n}2"], "physical_switches": [f"psw{n}"]}
        assert sites[dc] == {**members, "hosts": [f"gw{n}", f"fw{n}"]}
    # The WAN and its users belong to no site.
    assert sites[""] == {"esxi_hosts": [], "physical_switches": ["wan"], "hosts": ["wanrtr", "u1", "u2"]}
    assert sites_of(load_lab(root / "vswitch-nuggets.yaml")) == {}

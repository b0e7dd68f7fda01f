"""Load-based teaming without a switch: utilization from port counters, the
30 s / 75% rule, which port moves where (and which never), and what a move
does to pinning, notifications, failovers and restarts
(labs/load-based-teaming.yaml, no root)."""

from __future__ import annotations

import copy

import pytest
import yaml

from controller import failover
from controller.loadbalance import SAMPLE_S, THRESHOLD, WINDOW_S, LoadMonitor, Move, load_based, rebalance
from controller.state import ControllerState
from controller.vswitch import pinning
from tests.unit.labedit import LABS, TWO_HOSTS
from vlab.bindings import switch_bindings
from vlab.lab.load import LabError, load_lab, parse_lab

LAB = load_lab(LABS / "load-based-teaming.yaml")
CAP = 10e6  # 1 GbE at link_scale 0.01
DVS1 = next(b for b in switch_bindings(LAB) if b.bridge == "dvs1")


class Feeder:
    """Port counters as a switch would report them, one reading per sample:
    ``rates`` maps a port to (tx bit/s, rx bit/s) in OVS's terms (an
    uplink's tx leaves the host; a vNIC port's rx is what its VM sends)."""

    def __init__(self, monitor: LoadMonitor):
        self.monitor, self.t, self.totals = monitor, 0.0, {}

    def run(self, seconds: float, rates: dict[str, tuple[float, float]]) -> float:
        end = self.t + seconds
        while self.t <= end + 1e-9:
            for port, (tx, rx) in rates.items():
                old = self.totals.get(port, (0, 0))
                self.totals[port] = (old[0] + int(tx / 8 * SAMPLE_S), old[1] + int(rx / 8 * SAMPLE_S))
            self.monitor.feed(self.t, {p: (tx, rx, 100.0 + self.t) for p, (tx, rx) in self.totals.items()})
            self.t += SAMPLE_S
        return self.t - SAMPLE_S


def monitor() -> tuple[LoadMonitor, Feeder]:
    m = LoadMonitor.of(LAB, DVS1)
    return m, Feeder(m)


def moves_of(b, m, now):
    return [(mv.port, mv.from_uplink, mv.to_uplink) for mv in rebalance(b, pinning(b), m, now)]


def test_ports_start_where_their_port_id_puts_them():
    assert load_based(DVS1) and LoadMonitor.of(LAB, DVS1).capacity_bps == {"vmnic0": CAP, "vmnic1": CAP}
    assert pinning(DVS1) == {"busy1-eth0": "vmnic0", "busy2-eth0": "vmnic0"}


def test_an_uplink_is_overloaded_only_after_30_s_above_75_percent_in_its_busier_direction():
    m, feed = monitor()
    # Transmit only: the busier direction counts.
    now = feed.run(WINDOW_S - 2 * SAMPLE_S, {"vmnic0": (0.95 * CAP, 0.05 * CAP)})
    assert m.overloaded(now) == {}  # not 30 s of history yet
    now = feed.run(2 * SAMPLE_S, {"vmnic0": (0.95 * CAP, 0.05 * CAP)})
    assert m.overloaded(now) == {"vmnic0": pytest.approx(0.95, abs=0.01)}
    # One sample at the threshold inside the window starts the wait again.
    now = feed.run(0, {"vmnic0": (THRESHOLD * CAP, 0)})
    assert m.overloaded(now) == {}


def test_the_busiest_port_that_fits_moves_to_the_idle_uplink_and_only_one():
    m, feed = monitor()
    now = feed.run(
        WINDOW_S + SAMPLE_S,
        {"vmnic0": (0.96 * CAP, 0), "busy1-eth0": (0, 0.40 * CAP), "busy2-eth0": (0, 0.56 * CAP)},
    )
    assert moves_of(DVS1, m, now) == [("busy2-eth0", "vmnic0", "vmnic1")]
    # The move restarts both uplinks' windows: 29 s more of the same is not enough.
    now = feed.run(WINDOW_S - 2 * SAMPLE_S, {"vmnic0": (0.96 * CAP, 0), "vmnic1": (0.96 * CAP, 0)})
    assert moves_of(DVS1, m, now) == []


def test_a_port_that_would_overload_its_target_stays_so_a_lone_busy_vm_never_bounces():
    m, feed = monitor()
    # busy1 alone fills vmnic0: on vmnic1 it would fill that one too.
    now = feed.run(WINDOW_S + SAMPLE_S, {"vmnic0": (0.97 * CAP, 0), "busy1-eth0": (0, 0.97 * CAP)})
    assert moves_of(DVS1, m, now) == []
    # A target already at 40% cannot take 40% more; at 20% it can.
    for target, expected in ((0.40, []), (0.20, [("busy1-eth0", "vmnic0", "vmnic1")])):
        m, feed = monitor()
        now = feed.run(
            WINDOW_S + SAMPLE_S,
            {"vmnic0": (0.97 * CAP, 0), "vmnic1": (target * CAP, 0), "busy1-eth0": (0, 0.40 * CAP)},
        )
        assert moves_of(DVS1, m, now) == expected, target


def test_no_move_to_a_failed_or_standby_uplink_nor_of_a_port_of_another_policy():
    rates = {"vmnic0": (0.96 * CAP, 0), "busy1-eth0": (0, 0.5 * CAP), "busy2-eth0": (0, 0.46 * CAP)}
    m, feed = monitor()
    now = feed.run(WINDOW_S + SAMPLE_S, rates)
    assert moves_of(DVS1.with_uplink_state("vmnic1", up=False), m, now) == []
    data = yaml.safe_load((LABS / "load-based-teaming.yaml").read_text())
    data["distributed_switches"][0]["teaming"]["standby"] = ["dvUplink2"]
    standby = next(b for b in switch_bindings(parse_lab(data, "lab.yaml")) if b.bridge == "dvs1")
    assert moves_of(standby, m, now) == []
    data = yaml.safe_load((LABS / "load-based-teaming.yaml").read_text())
    data["distributed_switches"][0]["teaming"]["policy"] = "originating_port"
    fixed = next(b for b in switch_bindings(parse_lab(data, "lab.yaml")) if b.bridge == "dvs1")
    assert moves_of(fixed, m, now) == []


def test_a_move_pins_the_port_announces_it_and_ends_with_its_uplink_or_its_port():
    state = ControllerState(LAB)
    placement = {
        p.name: {"host": "esx1", "ofport": p.ofport} for b in switch_bindings(LAB) for p in b.local_ports()
    }
    state.take_desired({"placement": placement})
    notes = failover.load_moved(state, DVS1.dpid, [Move("busy1-eth0", "vmnic0", "vmnic1", 1.0, 0.0)])
    assert pinning(state.binding(DVS1.dpid)) == {"busy1-eth0": "vmnic1", "busy2-eth0": "vmnic0"}
    assert [(n.port, n.uplink, n.reason) for n in notes] == [("busy1-eth0", "vmnic1", "load balancing")]
    assert state.load_moves_by_host() == {"esx1": {"busy1-eth0": "vmnic1"}}
    # The same placement again (a capture opened, say) keeps the move.
    state.take_desired({"placement": placement})
    assert state.load_moves_by_host() == {"esx1": {"busy1-eth0": "vmnic1"}}
    # The moved-to uplink dies: the move ends, the port goes by its port ID
    # and stays there when the uplink comes back.
    failover.link_changed(state, DVS1.dpid, "vmnic1", up=False)
    assert state.load_moves_by_host() == {}
    failover.link_changed(state, DVS1.dpid, "vmnic1", up=True)
    assert pinning(state.binding(DVS1.dpid))["busy1-eth0"] == "vmnic0"
    # A reconnect (new port ID) is a new port: its move is forgotten.
    failover.load_moved(state, DVS1.dpid, [Move("busy1-eth0", "vmnic0", "vmnic1", 1.0, 0.0)])
    moved = copy.deepcopy(placement)
    moved["busy1-eth0"]["ofport"] = 210
    state.take_desired({"placement": moved})
    assert state.load_moves_by_host() == {}


def test_a_restarted_controller_keeps_a_move_of_a_port_the_testbed_placed(tmp_path):
    from controller.app import VSwitchController
    from vlab import control

    placement = {
        p.name: {"host": "esx1", "ofport": p.ofport} for b in switch_bindings(LAB) for p in b.local_ports()
    }
    control.write_json(tmp_path / control.DESIRED, {"generation": 1, "placement": placement})
    control.write_json(
        tmp_path / control.TEAMING, {f"{DVS1.dpid:016x}": {"load_moves": {"busy1-eth0": "vmnic1"}}}
    )
    c = VSwitchController.__new__(VSwitchController)
    c.configure(LAB, tmp_path)
    assert pinning(c.state.binding(DVS1.dpid))["busy1-eth0"] == "vmnic1"


def test_load_based_on_a_standard_switch_is_refused():
    data = copy.deepcopy(TWO_HOSTS)
    data["esxi_hosts"][0]["vswitches"][0]["port_groups"][1]["teaming"]["policy"] = "load_based"
    with pytest.raises(LabError) as err:
        parse_lab(data, "lab.yaml")
    assert str(err.value) == (
        "lab.yaml: esxi_hosts[0].vswitches[0].port_groups[1].teaming.policy: load_based (route based on "
        "physical NIC load) is a distributed switch policy; a standard switch does not offer it"
    )


def test_load_based_over_a_lag_or_for_the_vtep_is_refused():
    data = yaml.safe_load((LABS / "load-based-teaming.yaml").read_text())
    data["physical_switches"][0]["lags"] = [{"name": "po1", "ports": [1, 2]}]
    with pytest.raises(LabError) as err:
        parse_lab(data, "lab.yaml")
    assert str(err.value) == (
        "lab.yaml: distributed_switches[0].teaming.policy: DPG-LBT on esx1: load-based teaming needs "
        "independent uplinks, but vmnic0, vmnic1 are in a LAG on the physical switch (remove the LAG, "
        "or use ip_hash)"
    )
    data = yaml.safe_load((LABS / "load-based-teaming.yaml").read_text())
    data["esxi_hosts"][0]["vmkernel"] = [{"name": "vmk3", "port_group": "DPG-LBT", "ip": "172.16.0.1/24"}]
    data["esxi_hosts"][0]["vmkernel"][0]["stack"] = "vxlan"
    data["nsx"] = {"logical_switches": [{"name": "ls1", "vni": 5001}]}
    data["distributed_switches"][0]["mtu"] = 1600
    with pytest.raises(LabError) as err:
        parse_lab(data, "lab.yaml")
    assert "DPG-LBT carries esx1's VTEP: NSX's VXLAN teaming has no load-based policy" in str(err.value)


def test_a_first_reconnect_of_a_port_the_testbed_never_placed_ends_its_move():
    # desired.json lists only the ports the testbed moved: a port's first
    # reconnect is its first appearance there.
    state = ControllerState(LAB)
    state.take_desired({"placement": {}})
    failover.load_moved(state, DVS1.dpid, [Move("busy1-eth0", "vmnic0", "vmnic1", 1.0, 0.0)])
    state.take_desired({"placement": {"busy1-eth0": {"host": "esx1", "ofport": 210}}})
    assert state.load_moves_by_host() == {}

"""Load-based teaming without a switch: utilization from port counters, the
30 s / 75% rule, which port moves where, and what a move does to pinning
and notifications (labs/load-based-teaming.yaml, no root)."""

from __future__ import annotations

import copy

import pytest

from controller import failover
from controller.loadbalance import SAMPLE_S, THRESHOLD, WINDOW_S, LoadMonitor, load_based, rebalance
from controller.state import ControllerState
from controller.vswitch import pinning
from tests.unit.labedit import LABS, TWO_HOSTS
from vlab.bindings import switch_bindings
from vlab.lab.load import LabError, load_lab, parse_lab

LAB = load_lab(LABS / "load-based-teaming.yaml")
CAPACITY = 10e6  # 1 GbE at link_scale 0.01
DVS1 = next(b for b in switch_bindings(LAB) if b.bridge == "dvs1")


def feed(monitor: LoadMonitor, seconds: float, rates: dict[str, float], start: float = 0.0, totals=None):
    """Feed ``seconds`` of counters at bit/s ``rates`` (both directions for
    uplinks, tx for ports), one reading per sample; returns the last time."""
    totals = totals if totals is not None else {}
    t = start
    while t <= start + seconds + 1e-9:
        for port, bps in rates.items():
            totals[port] = totals.get(port, 0) + int(bps / 8 * SAMPLE_S)
        monitor.feed(t, {p: (n, 0) for p, n in totals.items()})
        t += SAMPLE_S
    return t - SAMPLE_S, totals


def test_ports_start_where_their_port_id_puts_them():
    assert load_based(DVS1)
    assert pinning(DVS1) == {"busy1-eth0": "vmnic0", "busy2-eth0": "vmnic0"}


def test_an_uplink_is_overloaded_only_after_30_s_above_75_percent():
    m = LoadMonitor({"vmnic0": CAPACITY, "vmnic1": CAPACITY})
    now, totals = feed(m, WINDOW_S - 2 * SAMPLE_S, {"vmnic0": 0.95 * CAPACITY})
    assert m.overloaded(now) == {}  # not 30 s of history yet
    now, totals = feed(m, 3 * SAMPLE_S, {"vmnic0": 0.95 * CAPACITY}, now + SAMPLE_S, totals)
    assert m.overloaded(now) == {"vmnic0": pytest.approx(0.95)}
    # One sample at the threshold inside the window is enough to wait on.
    now, totals = feed(m, 0, {"vmnic0": THRESHOLD * CAPACITY}, now + SAMPLE_S, totals)
    assert m.overloaded(now) == {}


def test_the_busiest_port_moves_to_the_idle_uplink_and_only_one():
    m = LoadMonitor({"vmnic0": CAPACITY, "vmnic1": CAPACITY})
    rates = {"vmnic0": 0.96 * CAPACITY, "busy1-eth0": 0.40 * CAPACITY, "busy2-eth0": 0.56 * CAPACITY}
    now, _ = feed(m, WINDOW_S + SAMPLE_S, rates)
    moves = rebalance(DVS1, pinning(DVS1), m, now)
    assert [(mv.port, mv.from_uplink, mv.to_uplink) for mv in moves] == [("busy2-eth0", "vmnic0", "vmnic1")]
    # The move restarts both uplinks' windows: nothing more for 30 s.
    assert rebalance(DVS1, pinning(DVS1), m, now + SAMPLE_S) == []


def test_nothing_moves_onto_a_saturated_uplink_or_off_a_half_loaded_one():
    m = LoadMonitor({"vmnic0": CAPACITY, "vmnic1": CAPACITY})
    now, _ = feed(m, WINDOW_S + SAMPLE_S, {"vmnic0": 0.95 * CAPACITY, "vmnic1": 0.9 * CAPACITY})
    assert rebalance(DVS1, pinning(DVS1), m, now) == []
    m = LoadMonitor({"vmnic0": CAPACITY, "vmnic1": CAPACITY})
    now, _ = feed(m, 3 * WINDOW_S, {"vmnic0": 0.5 * CAPACITY, "busy1-eth0": 0.5 * CAPACITY})
    assert rebalance(DVS1, pinning(DVS1), m, now) == []


def test_a_move_pins_the_port_announces_it_and_ends_with_a_new_port():
    state = ControllerState(LAB)
    m = LoadMonitor({"vmnic0": CAPACITY, "vmnic1": CAPACITY})
    now, _ = feed(m, WINDOW_S + SAMPLE_S, {"vmnic0": CAPACITY, "busy1-eth0": CAPACITY})
    b = state.binding(DVS1.dpid)
    moves = rebalance(b, pinning(b), m, now)
    notes = failover.load_moved(state, DVS1.dpid, moves)
    assert pinning(state.binding(DVS1.dpid)) == {"busy1-eth0": "vmnic1", "busy2-eth0": "vmnic0"}
    assert [(n.port, n.uplink, n.reason) for n in notes] == [("busy1-eth0", "vmnic1", "load balancing")]
    assert state.load_moves_by_host() == {"esx1": {"busy1-eth0": "vmnic1"}}
    # The moved uplink dies: the port-ID placement takes over (vmnic0).
    failover.link_changed(state, DVS1.dpid, "vmnic1", up=False)
    assert pinning(state.binding(DVS1.dpid))["busy1-eth0"] == "vmnic0"
    # A reconnect (new port ID) is a new port: the move is forgotten.
    placement = {
        p.name: {"host": "esx1", "ofport": p.ofport} for b in switch_bindings(LAB) for p in b.local_ports()
    }
    placement["busy1-eth0"]["ofport"] = 210
    state.take_desired({"placement": placement})
    assert state.load_moves_by_host() == {}


def test_load_based_on_a_standard_switch_is_refused():
    data = copy.deepcopy(TWO_HOSTS)
    data["esxi_hosts"][0]["vswitches"][0]["port_groups"][1]["teaming"]["policy"] = "load_based"
    with pytest.raises(LabError) as err:
        parse_lab(data, "lab.yaml")
    assert str(err.value) == (
        "lab.yaml: esxi_hosts[0].vswitches[0].port_groups[1].teaming.policy: load_based (route based on "
        "physical NIC load) is a distributed switch policy; a standard switch does not offer it"
    )

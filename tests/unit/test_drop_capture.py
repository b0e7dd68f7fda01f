"""The Drop capture's compiler pass and its reasons, without root: while a
host has a Drop session, every frame its pipeline drops also reaches the
controller (and nothing else changes); the reason the controller gives is
the trace's, from the frame and the dropping flow the packet-in names."""

from pathlib import Path

from controller import dropcapture
from controller.explain import drop_reason
from controller.pipeline import STAGES
from controller.simulate import Frame, frame_of, walk
from controller.state import ControllerState
from vlab.lab.load import load_lab

LABS = Path(__file__).resolve().parents[2] / "labs"


def _state(lab: str) -> ControllerState:
    return ControllerState(load_lab(LABS / lab))


def _bridge(state: ControllerState, host: str) -> int:
    return next(d for d in state.dpids if state.host_of(d) == host)


def test_without_a_session_the_pipeline_is_untouched_and_with_one_only_drops_change():
    state = _state("vswitch-nuggets.yaml")
    dpid = _bridge(state, "esx1")
    plain = state.flows(dpid)
    assert not any(f.cookie & dropcapture.EXPOSED for f in plain)
    state.take_desired({"drop_captures": {"esx1": [1]}})
    exposed = state.flows(dpid)
    assert state.flows(dpid, drops_exposed=False) == plain
    before = {f.key: f for f in plain}
    after = {f.key: f for f in exposed}
    for key, f in before.items():
        if dropcapture.is_drop(f):
            assert after[key].actions == dropcapture.TO_CONTROLLER
            assert dropcapture.dropped_by(after[key].cookie, f.table) == (f.priority,)
        else:
            assert after[key] == f
    misses = set(after) - set(before)
    assert {k[0] for k in misses} == {s.table for s in STAGES.values()} and {k[1] for k in misses} == {0}


def _dropped(state, host: str, frame: Frame) -> list[str]:
    """Walk ``frame`` through the host's exposed flows; the reason of each
    copy the controller gets, as the controller computes it."""
    dpid = _bridge(state, host)
    binding, plain = state.binding(dpid), state.flows(dpid, drops_exposed=False)
    reasons = []
    for step in walk(state.flows(dpid), frame).steps:
        if step.flow is not None and step.flow.actions == dropcapture.TO_CONTROLLER:
            (priority,) = dropcapture.dropped_by(step.flow.cookie, step.table)
            reasons.append(drop_reason(binding, plain, state.lab, step.table, step.frame, priority))
    return reasons


def test_a_forged_source_mac_is_dropped_at_ingress_with_the_policy_named():
    state = _state("vswitch-nuggets.yaml")
    state.take_desired({"drop_captures": {"esx1": [1]}})
    strict = state.binding(_bridge(state, "esx1")).port("strict-eth0")
    frame = Frame(strict.ofport, eth_dst="ff:ff:ff:ff:ff:ff", eth_src="00:50:56:01:00:99")
    assert _dropped(state, "esx1", frame) == [
        "forged transmits = reject: source MAC 00:50:56:01:00:99 is not strict-eth0's MAC 00:50:56:01:00:11"
    ]


def test_a_frame_in_on_the_other_uplink_is_dropped_by_reverse_teaming():
    state = _state("reverse-teaming.yaml")
    state.take_desired({"drop_captures": {"esx1": [1]}})
    b = state.binding(_bridge(state, "esx1"))
    request = bytes.fromhex("0050569dfdb10050569d4342" + "81000064" + "0800")
    request += bytes.fromhex("450000540000400040010000c0a8640bc0a8640c") + bytes(64)
    frame = frame_of(request, b.port("vmnic3").ofport)
    assert _dropped(state, "esx1", frame) == [
        "reverse teaming: came in on vmnic3, vm12-eth0 transmits on vmnic2"
    ]


def _dead_pid() -> int:
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid  # reaped: no process has it now (PIDs are not reused at once)


def test_a_session_whose_process_died_counts_as_closed_and_is_forgotten_by_the_next_change():
    from vlab.control import live_sessions, with_session

    dead = _dead_pid()
    sessions = {"esx1": [dead], "esx2": [dead, 1]}
    assert live_sessions(sessions) == frozenset({"esx2"})  # 1: init, alive
    assert live_sessions(["vm1-eth0"]) == frozenset({"vm1-eth0"})  # the older list form
    # Opening or closing a session drops every dead process's.
    assert with_session(sessions, "esx3", 1, True) == {"esx2": [1], "esx3": [1]}
    assert with_session(sessions, "esx2", 1, False) == {}
    state = _state("vswitch-nuggets.yaml")
    dpid = _bridge(state, "esx1")
    assert state.take_desired({"drop_captures": {"esx1": [1]}}) and state.binding(dpid).drop_capture
    # The same desired.json, its process gone: the bridge recompiles without the copies.
    assert dpid in state.take_sessions({"drop_captures": {"esx1": [dead]}})
    assert not state.binding(dpid).drop_capture

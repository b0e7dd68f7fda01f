"""Route based on physical NIC load with real TCP: two VMs whose port IDs
share an uplink saturate it, and after 30 s above 75% load-based teaming
moves one of them to the idle uplink (with a RARP from its new uplink);
a team loaded to half its speed moves nothing
(``experiments.teaming_policies.measure_load_based``)."""

import pytest

from experiments import teaming_policies as tp
from experiments.common import lab_session


@pytest.fixture(scope="module")
def lab():
    with lab_session(tp.LABS["lbt"]) as net:
        yield net


def test_one_busy_port_moves_after_30_s_and_a_half_loaded_team_stays(lab):
    r = tp.measure_load_based(lab, tp.DEFAULTS["lbt_s"])
    assert r["pinning_before"]["busy1-eth0"] == r["pinning_before"]["busy2-eth0"], r
    lo, hi = r["window_s"]
    assert len(r["moved_after_s"]) == 1 and lo <= r["moved_after_s"][0] <= hi, r
    assert r["pinning_after"]["busy1-eth0"] != r["pinning_after"]["busy2-eth0"], r
    moved = next(m["port"] for m in r["moves"] if m["vswitch"] == "dvs1")
    assert any(e["port"] == moved and e["uplink"] == r["pinning_after"][moved] for e in r["rarps"]), r
    # The half-loaded team kept its port where it was.
    assert r["verdict_quiet"], r
    # After the move each busy VM has an uplink of its own: the last 5 s of
    # each run well above half the uplink's speed (they shared it before).
    for vm in ("busy1", "busy2"):
        late = r["rates_bps"][vm][-5:]
        assert sum(late) / len(late) > 0.75 * tp._uplink_bps(lab, "esx1", "vmnic0"), (vm, late)

"""Seed 000's esxtop claim judged from the seed's words: vmk0 receives
"roughly the same amount" as vmk4 transmits when the receiver ACKs every
segment; with delayed ACKs only "at most once per segment" (Linux's 0.39 on
a loaded machine is no failure). From the shipped result, rootless."""

import copy
import json

from experiments import vmk_egress
from experiments.common import REPO

SHIPPED = json.loads((REPO / "results" / "vmk-egress" / "result.json").read_text())


def _with_rates(default_rx: float, quick_rx: float, tx: float = 7000.0) -> dict:
    cases = copy.deepcopy(SHIPPED["cases"])
    for t in cases["B"]["transfers"]:
        rx = quick_rx if t.get("receiver") == "quickack" else default_rx
        n = len(t["esxtop"]["vmk0"]["PKTRX/s"])
        t["esxtop"]["vmk0"]["PKTRX/s"] = [rx] * n
        t["esxtop"]["vmk4"]["PKTTX/s"] = [tx] * len(t["esxtop"]["vmk4"]["PKTTX/s"])
    return cases


def verdict(cases) -> bool:
    return vmk_egress._verdicts(cases)[1]["B_vmk0_pktrx_tracks_vmk4_pkttx"]


def test_delayed_ack_ratio_below_the_old_band_still_reproduces_the_claim():
    assert verdict(_with_rates(default_rx=0.39 * 7000, quick_rx=0.99 * 7000))


def test_a_receiver_acking_every_segment_must_match_roughly():
    assert not verdict(_with_rates(default_rx=0.45 * 7000, quick_rx=0.6 * 7000))
    assert not verdict(_with_rates(default_rx=0.45 * 7000, quick_rx=1.3 * 7000))


def test_vmk4_receiving_the_acks_is_not_the_seed_picture():
    cases = _with_rates(default_rx=0.45 * 7000, quick_rx=0.99 * 7000)
    for t in cases["B"]["transfers"]:
        t["esxtop"]["vmk4"]["PKTRX/s"] = [3000.0] * len(t["esxtop"]["vmk4"]["PKTRX/s"])
    assert not verdict(cases)

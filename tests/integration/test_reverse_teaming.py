"""Seed 002 on real OVS: duplicates at PortOutput, one copy at VnicRx, and the
four-row visibility table of a promiscuous VM, with the flip on a new port."""

from experiments import reverse_teaming as rt
from experiments.common import lab_session


def test_portoutput_sees_both_copies_vnicrx_one(work):
    with lab_session(rt.SPAN_LAB) as net:
        r = rt.measure_duplicates(net, work, pings=5)
    assert r["echo_requests_seen"] == {
        "uplink vmnic2 (rx)": 5,
        "uplink vmnic3 (rx)": 5,
        "PortOutput": 10,
        "VnicRx": 5,
    }, r
    assert r["with_vlan_100_tag"] == {"PortOutput": 10, "VnicRx": 0}, r


def test_promiscuous_visibility_matches_the_seed_table_across_uplinks(work):
    with lab_session(rt.PROMISC_LAB) as net:
        r = rt.measure_table(net, work, assignments=2, frames=5)
    assert r["both_uplink_cases_covered"], r
    for a in r["assignments"]:
        assert a["matches_seed"], a

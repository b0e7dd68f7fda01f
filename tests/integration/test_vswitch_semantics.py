"""Seed 001 on real guests and real OVS: each vSwitch policy proved with real
frames counted in pcaps. The measurements are the experiment's own
(experiments.vswitch_nuggets), so the experiment reports what is tested here."""

from experiments import vswitch_nuggets as vn


def test_no_mac_learning_and_unknown_unicast_reaches_no_other_vm(nuggets, work):
    r = vn.measure_no_learning(nuggets, work)
    assert r["left_by_pinned_uplink"] == r["sent"], r
    assert set(r["received_by_other_vms"].values()) == {0}, r
    assert r["vswitch_mac_table_entries"] == 0 and not r["learn_actions_in_flows"], r


def test_mac_change_reject_drops_inbound_until_changed_back(nuggets, work):
    r = vn.measure_mac_change(nuggets, work, "strict")
    assert (
        r["delivered_to_new_mac"],
        r["delivered_to_configured_mac_while_changed"],
        r["delivered_after_change_back"],
    ) == (0, 0, r["sent_each"]), r


def test_mac_change_accept_delivers_to_the_new_mac(nuggets, work):
    r = vn.measure_mac_change(nuggets, work, "open")
    assert (r["delivered_to_new_mac"], r["delivered_to_configured_mac_while_changed"]) == (
        r["sent_each"],
        0,
    ), r


def test_forged_transmits_reject_drops_accept_forwards(nuggets, work):
    strict = vn.measure_forged(nuggets, work, "strict")
    open_ = vn.measure_forged(nuggets, work, "open")
    assert strict["forged_received_outside"] == 0, strict
    assert open_["forged_received_outside"] == open_["sent_each"], open_
    assert strict["genuine_received_outside"] == strict["sent_each"], strict


def test_multicast_follows_the_vnic_filter_including_the_32_to_1_overlap(nuggets, work):
    r = vn.measure_multicast_filter(nuggets, work)
    n = r["sent"]
    assert r["delivered_to_vnic"] == {"m1": n, "m2": n, "m3": 0}, r
    assert r["received_by_application"] == {"m1": n, "m2": 0}, r


def test_promiscuous_guest_becomes_a_monitor_port_without_mirror(nuggets, work):
    r = vn.measure_promiscuous(nuggets, work)
    assert r["seen_by_spy"] == {"guest_not_promiscuous": 0, "guest_promiscuous": r["sent"]}, r
    assert not r["mirror_sessions_on_vswitch"], r


def test_failover_failback_and_notify_switches(nuggets, work):
    r = vn.measure_failover(nuggets, work)
    q1, q2 = r["quiet1"], r["quiet2"]
    assert q1["failed_over_to"] != q1["uplink"] and q2["failed_over_to"] != q2["uplink"], r
    assert q1["rarp_reasons"] == ["failover", "failback"] and q1["rarps_seen_outside"] == 2, r
    assert q1["switch_port_after_failover"] != q1["switch_port_before"], r
    assert q2["rarps_seen_outside"] == 0 and q2["rarp_reasons"] == [], r


def test_vmotion_keeps_mac_ip_and_tcp_session(nuggets, work):
    r = vn.measure_vmotion_tcp(nuggets, work)
    assert r["error"] is None and r["bytes_received"] > 0, r
    assert r["same_mac_after"] == "00:50:56:01:00:23", r


def test_quiet_vm_vmotion_notify_switches_yes_vs_no(nuggets, work):
    r = vn.measure_quiet_vmotion(nuggets, work)
    q1, q2 = r["series"]["quiet1"], r["series"]["quiet2"]
    # Packets lost, not gaps between arrivals (those grow with every stall
    # of a loaded machine): with the RARP, the stun and the RARP's trip.
    assert q1["lost_s"] < 0.1 * r["mac_aging_s"], q1
    # Without the RARP the switch keeps the stale entry until it ages out.
    assert q2["lost_s"] >= r["mac_aging_s"] * 0.5, q2
    assert r["rarp_sent_for"] == ["quiet1-eth0"], r["rarp_sent_for"]


def test_multicast_after_vmotion_spoofed_igmp_query(nuggets, work):
    r = vn.measure_multicast_vmotion(nuggets, work, max_responses=(1.0,))
    assert r["verdict"], r
    no_query, with_query = r["moves"]
    assert no_query["lost_s"] >= r["igmp_aging_s"] * 0.5, r
    assert with_query["lost_s"] <= with_query["report_after_stun_s"] + vn.REPORT_TO_SWITCH_S, r
    q = with_query["query_seen_by_guest"]
    assert q and q["source_ip"] == "0.0.0.0" and q["max_response_s"] == 1.0, r

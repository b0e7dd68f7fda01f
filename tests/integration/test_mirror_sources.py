"""Port mirroring sessions beyond a vNIC source and ERSPAN type II, on real
OVS (labs/port-mirroring.yaml, the port-mirroring experiment's
measurements): a VMkernel adapter as a source, a Remote Mirroring Source
(RSPAN) session to an analyser on the physical switch's RSPAN VLAN, and
ERSPAN type III with its direction bit and the original VLAN. Every count is
of the pings the test itself sent, finished before the captures stop."""

import pytest

from experiments import port_mirroring as pm
from experiments.common import lab_session

PINGS = 5
NONE = {"requests": 0, "replies": 0}
ALL = {"requests": PINGS, "replies": PINGS}


@pytest.fixture(scope="module")
def lab():
    with lab_session(pm.LAB) as net:
        yield net


def test_a_vmk_is_mirrored_to_the_capture_vm_both_ways(lab, tmp_path):
    """vSphere: a VMkernel adapter's distributed port is a source like any
    other. The capture VM gets the gateway's pings to vmk0 (what the switch
    delivers to vmk0) and vmk0's replies (what vmk0 sends), untagged, as the
    vmk sees them."""
    r = pm.measure_vmk_source(lab, tmp_path, PINGS)
    assert r["at_capture_vm"] == ALL and r["tags"] == [()], r
    assert r["verdict"]


def test_rspan_copies_cross_the_physical_switch_in_the_rspan_vlan(lab, tmp_path):
    """Remote Mirroring Source: a's frames leave esx1 by dvUplink1 (vmnic0,
    also a's own uplink: copies of the replies a receives leave by the
    uplink the replies came in by) tagged 999 over their own VLAN 20 tag
    (preserve original VLAN), and the
    physical switch, which floods VLAN 999 (rspan_vlans), delivers them to
    the analyser's access port with the inner tag. b is not a source: none
    of its frames arrive."""
    r = pm.measure_rspan(lab, tmp_path, PINGS)
    assert r["a_pinned_to"] == "vmnic0", r
    assert (r["on_uplink"], r["tags_on_uplink"]) == (ALL, [(999, 20)]), r
    assert (r["at_analyser"], r["tags_at_analyser"]) == (ALL, [(20,)]), r
    assert r["not_a_source_at_analyser"] == NONE
    assert r["verdict"]


def test_erspan_type_iii_copies_say_their_direction_and_vlan(lab, tmp_path):
    """ERSPAN type III (GRE protocol 0x22EB, version 2), session 3, from
    esx1's vmk0: b's echo requests are copies of what b sent (D bit 0,
    ingress), the replies of what b received (D bit 1, egress). The header's
    original-VLAN field says 20, b's port group's, and the inner frames are
    untagged, as b sent and received them (the uplink's tc program moved
    the tag there: OVS writes 0)."""
    r = pm.measure_erspan3(lab, tmp_path, PINGS)
    assert r["headers"] == [(2, 3, pm.VMK0, 20)], r
    assert r["by_direction"] == {
        "ingress": {"requests": PINGS, "replies": 0},
        "egress": {"requests": 0, "replies": PINGS},
    }
    assert r["inner_tags"] == [()]
    assert r["verdict"]

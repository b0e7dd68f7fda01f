"""vSphere's security policy against the effective MAC, with real frames,
on a standard port group, a distributed port group and an NSX logical
switch: the guest changes its MAC, sends from both addresses and receives to
both (``experiments.port_security``, whose counts the experiment reports)."""

import pytest

from experiments import port_security as ps
from experiments.common import lab_session


@pytest.fixture(scope="module")
def lab():
    with lab_session(ps.LAB) as net:
        yield net


@pytest.mark.parametrize("vm", list(ps.CASES))
def test_a_guest_that_changed_its_mac_gets_what_vsphere_documents(lab, work, vm):
    r = ps.measure(lab, work, vm)
    assert r["measured"] == r["documented"], r


def test_the_documented_table_follows_the_policy_not_the_port_kind(lab):
    # MAC changes = accept: the new MAC is the one that sends and receives.
    assert ps.documented("accept", "reject", 5) == {
        "from_vmx_mac": 0,
        "from_new_mac": 5,
        "to_vmx_mac": 0,
        "to_new_mac": 5,
        "to_vmx_mac_after_change_back": 5,
    }
    # = reject: the .vmx MAC still sends; nothing is received while changed.
    assert ps.documented("reject", "reject", 5) == {
        "from_vmx_mac": 5,
        "from_new_mac": 0,
        "to_vmx_mac": 0,
        "to_new_mac": 0,
        "to_vmx_mac_after_change_back": 5,
    }
    for strict, change in ps.CLAIMS.values():
        assert ps.policy(lab, strict) == {"mac_changes": "reject", "forged_transmits": "reject"}
        assert ps.policy(lab, change) == {"mac_changes": "accept", "forged_transmits": "reject"}

"""Security policies, multicast filters, promiscuous ports, reverse teaming,
capture points and failover, as flows: where does a frame go? (no root)"""

import copy

import pytest

from controller.simulate import Frame, forward
from controller.teaming import after_recovery, pinned_uplink
from controller.vswitch import capture_port, compile_vswitch, pinning
from vlab.bindings import GuestNic, Placement, switch_bindings
from vlab.lab.load import parse_lab

BCAST = "ff:ff:ff:ff:ff:ff"
OUTSIDE = "00:50:56:99:99:99"
NEW_MAC = "00:50:56:aa:bb:cc"
GROUP_MAC = "01:00:5e:01:01:01"  # 239.1.1.1 and 239.129.1.1 (32:1 overlap)

LAB = {
    "name": "policies",
    "physical_switches": [{"name": "psw"}],
    "esxi_hosts": [
        {
            "name": "esx1",
            "uplinks": [{"name": f"vmnic{i}", "speed": 1, "switch": "psw", "port": i + 1} for i in range(3)],
            "vswitches": [
                {
                    "name": "vSwitch0",
                    "uplinks": ["vmnic0", "vmnic1", "vmnic2"],
                    "port_groups": [
                        {
                            "name": "STRICT",
                            "vlan": 10,
                            "security": {
                                "promiscuous": "reject",
                                "mac_changes": "reject",
                                "forged_transmits": "reject",
                            },
                            "teaming": {"active": ["vmnic0", "vmnic1"]},
                        },
                        {
                            "name": "OPEN",
                            "vlan": 10,
                            "security": {
                                "promiscuous": "accept",
                                "mac_changes": "accept",
                                "forged_transmits": "accept",
                            },
                            "teaming": {"active": ["vmnic0", "vmnic1"]},
                        },
                        {
                            "name": "CHANGES",
                            "vlan": 30,
                            "security": {"mac_changes": "accept", "forged_transmits": "reject"},
                            "teaming": {"active": ["vmnic0", "vmnic1"]},
                        },
                        {
                            "name": "FAILOVER",
                            "vlan": 20,
                            "teaming": {
                                "policy": "explicit_failover",
                                "active": ["vmnic0"],
                                "standby": ["vmnic1"],
                                "failback": False,
                            },
                        },
                    ],
                }
            ],
        }
    ],
    "vms": [
        {"name": "s1", "host": "esx1", "vnics": [{"port_group": "STRICT", "mac": "00:50:56:00:00:01"}]},
        {"name": "s2", "host": "esx1", "vnics": [{"port_group": "STRICT", "mac": "00:50:56:00:00:02"}]},
        {"name": "o1", "host": "esx1", "vnics": [{"port_group": "OPEN", "mac": "00:50:56:00:00:03"}]},
        {"name": "spy", "host": "esx1", "vnics": [{"port_group": "OPEN", "mac": "00:50:56:00:00:04"}]},
        {"name": "f1", "host": "esx1", "vnics": [{"port_group": "FAILOVER", "mac": "00:50:56:00:00:05"}]},
        {"name": "c1", "host": "esx1", "vnics": [{"port_group": "CHANGES", "mac": "00:50:56:00:00:06"}]},
    ],
}


def binding(lab=LAB, guests=None, down=(), captures=()):
    b = switch_bindings(parse_lab(copy.deepcopy(lab)))[0]
    names = {p.owner: p.name for p in b.ports if p.kind == "vnic"}
    b = b.with_guests({names[k]: g for k, g in (guests or {}).items()})
    b = b.with_captures(frozenset(names[k] for k in captures))
    for u in down:
        b = b.with_uplink_state(u, up=False)
    return b


def port(b, owner):
    return next(p for p in b.ports if p.owner == owner)


def uplink(b, name):
    return b.port(name).ofport


def delivered(b, frame):
    """Set of owners (VMs) and uplink names a frame leaves by."""
    names = {p.ofport: (p.owner if p.kind == "vnic" else p.name) for p in b.ports}
    names.update({capture_port(p): f"capture:{p.owner}" for p in b.ports if p.kind == "vnic"})
    return {names[n] for n, _ in forward(compile_vswitch(b), frame)}


def from_vm(b, owner, dst, src=None, **kw):
    p = port(b, owner)
    return Frame(in_port=p.ofport, eth_dst=dst, eth_src=src or p.mac, **kw)


def from_uplink(b, name, dst, vlan=10, **kw):
    return Frame(in_port=uplink(b, name), eth_dst=dst, eth_src=OUTSIDE, vlan=vlan, **kw)


def pinned_to(b, owner):
    return pinning(b)[port(b, owner).name]


# -- forged transmits ---------------------------------------------------------
def test_forged_transmit_rejected_on_strict_port_group():
    b = binding()
    assert delivered(b, from_vm(b, "s1", OUTSIDE)) == {pinned_to(b, "s1")}
    assert delivered(b, from_vm(b, "s1", OUTSIDE, src=NEW_MAC)) == set()
    assert delivered(b, from_vm(b, "s1", BCAST, src=NEW_MAC)) == set()


def test_forged_transmit_accepted_on_open_port_group():
    b = binding()
    assert delivered(b, from_vm(b, "o1", OUTSIDE, src=NEW_MAC)) == {pinned_to(b, "o1")}


# -- MAC address changes --------------------------------------------------------
def test_mac_change_reject_drops_everything_to_the_port_until_changed_back():
    changed = binding(guests={"s1": GuestNic(effective_mac=NEW_MAC)})
    s1 = port(changed, "s1")
    up = pinned_to(changed, "s1")
    for dst in (s1.mac, NEW_MAC, BCAST):
        assert "s1" not in delivered(changed, from_uplink(changed, up, dst))
        assert "s1" not in delivered(changed, from_vm(changed, "s2", dst))
    back = binding(guests={"s1": GuestNic(effective_mac=s1.mac)})
    assert delivered(back, from_uplink(back, up, s1.mac)) == {"s1"}


def test_mac_change_accept_delivers_to_the_new_mac_not_the_old():
    b = binding(guests={"o1": GuestNic(effective_mac=NEW_MAC)})
    up = pinned_to(b, "o1")
    assert delivered(b, from_uplink(b, up, NEW_MAC)) == {"o1"}
    assert delivered(b, from_uplink(b, up, port(b, "o1").mac)) == set()


# -- forged transmits against the effective MAC (vSphere: "different from
# the one currently set on the adapter") ---------------------------------------
def test_mac_changes_accept_makes_the_new_mac_legitimate_and_the_old_one_forged():
    b = binding(guests={"c1": GuestNic(effective_mac=NEW_MAC)})
    c1, up = port(b, "c1"), pinned_to(b, "c1")
    assert delivered(b, from_vm(b, "c1", OUTSIDE, src=NEW_MAC)) == {up}
    assert delivered(b, from_vm(b, "c1", OUTSIDE, src=c1.mac)) == set()
    assert delivered(b, from_uplink(b, up, NEW_MAC, vlan=30)) == {"c1"}


def test_mac_changes_reject_keeps_the_configured_mac_the_only_source():
    b = binding(guests={"s1": GuestNic(effective_mac=NEW_MAC)})
    assert delivered(b, from_vm(b, "s1", OUTSIDE, src=NEW_MAC)) == set()
    assert delivered(b, from_vm(b, "s1", OUTSIDE)) == {pinned_to(b, "s1")}


def test_a_changed_mac_is_announced_by_failover_from_the_effective_mac():
    from controller.failover import notification

    b = binding(guests={"c1": GuestNic(effective_mac=NEW_MAC), "s1": GuestNic(effective_mac=NEW_MAC)})
    assert notification(b, port(b, "c1").name, "test").mac == NEW_MAC
    assert notification(b, port(b, "s1").name, "test").mac == port(b, "s1").mac


# -- no MAC learning ---------------------------------------------------------------
def test_a_forged_source_is_not_learned():
    b = binding()
    # o1 may send from NEW_MAC, but frames to NEW_MAC are still unknown unicast.
    flows = compile_vswitch(b)
    assert forward(flows, from_vm(b, "o1", OUTSIDE, src=NEW_MAC))
    assert delivered(b, from_uplink(b, pinned_to(b, "o1"), NEW_MAC)) == set()


# -- promiscuous mode ----------------------------------------------------------------
def test_promiscuous_needs_both_the_policy_and_the_guest():
    guest_promisc = GuestNic(promiscuous=True)
    b = binding(guests={"spy": guest_promisc, "s2": guest_promisc})
    frame = from_vm(b, "s1", port(b, "o1").mac)
    assert delivered(b, frame) == {"o1", "spy"}  # s2's port group rejects promiscuous
    assert delivered(binding(), frame) == {"o1"}  # spy's guest is not promiscuous


def _visibility(spy_port: int) -> dict:
    """The seed-002 table for a promiscuous spy plugged into ``spy_port``."""
    lab = parse_lab(copy.deepcopy(LAB))
    b = switch_bindings(lab, {"spy-eth0": Placement("esx1", spy_port)})[0]
    b = b.with_guests({"spy-eth0": GuestNic(promiscuous=True)})
    local, other = "s1", "o1"
    arrive = pinned_to(b, local)  # the physical switch learned s1 there
    return {
        "same-host -> same-host": "spy" in delivered(b, from_vm(b, local, port(b, other).mac)),
        "same-host -> outside": "spy" in delivered(b, from_vm(b, local, OUTSIDE)),
        "outside -> same-host": "spy" in delivered(b, from_uplink(b, arrive, port(b, local).mac)),
        "uplinks match": pinned_to(b, "spy") == arrive,
    }


@pytest.mark.parametrize("spy_port", [203, 300])
def test_seed_002_visibility_table_for_a_promiscuous_vm(spy_port):
    row = _visibility(spy_port)
    assert row["same-host -> same-host"] and row["same-host -> outside"]
    assert row["outside -> same-host"] == row["uplinks match"]


def test_a_new_port_flips_the_outside_to_same_host_row():
    assert _visibility(203)["outside -> same-host"] != _visibility(300)["outside -> same-host"]


@pytest.mark.parametrize("arrives_on", ["vmnic0", "vmnic1"])
def test_promiscuous_port_is_reverse_teaming_filtered(arrives_on):
    b = binding(guests={"spy": GuestNic(promiscuous=True)})
    seen = "spy" in delivered(b, from_uplink(b, arrives_on, OUTSIDE))  # outside -> outside, flooded
    assert seen == (pinned_to(b, "spy") == arrives_on)


# -- multicast filter ------------------------------------------------------------------
def test_multicast_only_to_ports_whose_filter_has_the_group_mac():
    b = binding(
        guests={
            "s1": GuestNic(mcast=frozenset({GROUP_MAC})),
            "s2": GuestNic(mcast=frozenset()),
            "o1": GuestNic(mcast=frozenset({GROUP_MAC})),
            "spy": GuestNic(mcast=frozenset()),
        }
    )
    up = pinned_to(b, "s1")
    assert pinned_to(b, "o1") == up, "test assumes s1 and o1 share an uplink"
    assert delivered(b, from_uplink(b, up, GROUP_MAC)) == {"s1", "o1"}
    assert delivered(b, from_vm(b, "s2", GROUP_MAC)) == {"s1", "o1", pinned_to(b, "s2")}
    # Another group MAC nobody joined: not delivered to any guest.
    assert delivered(b, from_uplink(b, up, "01:00:5e:02:02:02")) == set()
    # Broadcast is not filtered.
    assert {"s1", "o1"} <= delivered(b, from_uplink(b, up, BCAST))


def test_unreported_filter_passes_all_multicast():
    b = binding()
    up = pinned_to(b, "s1")
    assert "s1" in delivered(b, from_uplink(b, up, "01:00:5e:02:02:02"))


# -- reverse teaming and capture points ------------------------------------------------
def test_portoutput_capture_sees_both_copies_vnicrx_one():
    b = binding(captures=["s1"])
    s1 = port(b, "s1")
    mine = pinned_to(b, "s1")
    other = "vmnic1" if mine == "vmnic0" else "vmnic0"
    on_mine = forward(compile_vswitch(b), from_uplink(b, mine, s1.mac))
    on_other = forward(compile_vswitch(b), from_uplink(b, other, s1.mac))
    # PortOutput: a copy from each uplink, still carrying VLAN 10 (as in the seed).
    assert (capture_port(s1), 10) in on_mine and (capture_port(s1), 10) in on_other
    # VnicRx: only the copy from the pinned uplink, untagged.
    assert (s1.ofport, None) in on_mine and (s1.ofport, None) not in on_other


def test_ip_hash_has_no_reverse_teaming():
    lab = copy.deepcopy(LAB)
    lab["physical_switches"][0]["lags"] = [{"name": "po1", "ports": [1, 2]}]
    lab["esxi_hosts"][0]["vswitches"][0]["port_groups"][0]["teaming"]["policy"] = "ip_hash"
    b = binding(lab)
    for up in ("vmnic0", "vmnic1"):
        assert "s1" in delivered(b, from_uplink(b, up, BCAST))


# -- teaming: failover and failback ----------------------------------------------------------
def test_failover_moves_only_ports_of_the_failed_uplink():
    lab = copy.deepcopy(LAB)
    lab["esxi_hosts"][0]["vswitches"][0]["port_groups"][0]["teaming"] = {
        "active": ["vmnic0", "vmnic1"],
        "standby": ["vmnic2"],
    }
    before = pinning(binding(lab))
    after = pinning(binding(lab, down=["vmnic0"]))
    for name, up in before.items():
        if up == "vmnic1":
            assert after[name] == "vmnic1"
    moved = [n for n, up in before.items() if up == "vmnic0" and n.startswith("s")]
    assert moved and all(after[n] == "vmnic2" for n in moved)


def test_all_uplinks_down_leaves_the_port_local():
    b = binding(down=["vmnic0", "vmnic1"])
    assert pinned_to(b, "s1") is None
    assert delivered(b, from_vm(b, "s1", OUTSIDE)) == set()
    assert delivered(b, from_vm(b, "s1", port(b, "s2").mac)) == {"s2"}


def test_explicit_failover_and_failback_no():
    b = binding()
    team = b.teaming("FAILOVER")
    f1 = port(b, "f1")
    assert pinned_uplink(f1, team) == "vmnic0"
    assert pinned_uplink(f1, team, frozenset({"vmnic0"})) == "vmnic1"
    # vmnic0 recovers; failback is off, so vmnic1 keeps the slot.
    kept = after_recovery(team, "vmnic0", frozenset({"vmnic0"}))
    assert pinned_uplink(f1, kept) == "vmnic1"
    assert kept.standby == ("vmnic0",)
    # With failback the configured order applies again.
    back = after_recovery(
        team.__class__(**{**team.__dict__, "failback": True}), "vmnic0", frozenset({"vmnic0"})
    )
    assert pinned_uplink(f1, back) == "vmnic0"


# -- IP hash: the uplink per packet ----------------------------------------------
def ip_hash_lab():
    lab = copy.deepcopy(LAB)
    lab["physical_switches"][0]["lags"] = [{"name": "po1", "ports": [1, 2]}]
    lab["esxi_hosts"][0]["vswitches"][0]["port_groups"].append(
        {"name": "IPHASH", "vlan": 40, "teaming": {"policy": "ip_hash", "active": ["vmnic0", "vmnic1"]}}
    )
    nic = {"port_group": "IPHASH", "mac": "00:50:56:00:00:40"}
    lab["vms"].append({"name": "h1", "host": "esx1", "vnics": [nic]})
    return lab


def test_ip_hash_picks_the_uplink_per_packet_from_the_addresses_last_octets():
    b = binding(ip_hash_lab())
    for d in range(1, 9):
        frame = from_vm(b, "h1", OUTSIDE, ipv4_src="10.0.40.5", ipv4_dst=f"10.0.40.{d}")
        # vSphere: last octets XOR, modulo the number of uplinks.
        assert delivered(b, frame) == {("vmnic0", "vmnic1")[(5 ^ d) % 2]}, d
    # Not IPv4: the first slot.
    assert delivered(b, from_vm(b, "h1", BCAST, eth_type=0x0806)) == {"vmnic0"}


def test_ip_hash_moves_a_failed_members_packets_to_the_survivor():
    b = binding(ip_hash_lab(), down=("vmnic0",))
    for d in range(1, 5):
        frame = from_vm(b, "h1", OUTSIDE, ipv4_src="10.0.40.5", ipv4_dst=f"10.0.40.{d}")
        assert delivered(b, frame) == {"vmnic1"}, d

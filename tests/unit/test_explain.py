"""The trace explains every kind of drop the pipeline makes, in ESXi and NSX
terms, on lab files without root: forged transmits, MAC address changes,
reverse teaming, VLAN, unknown unicast from an uplink, the multicast
filter, distributed firewall rules and state, and the MTU."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from controller.explain import explain, on_host
from controller.simulate import TCP_ACK, TCP_SYN, Conntrack, Frame
from controller.state import ControllerState
from vlab.bindings import GuestNic
from vlab.lab.load import load_lab, parse_lab

LABS = Path(__file__).resolve().parents[2] / "labs"
BCAST = "ff:ff:ff:ff:ff:ff"
STRICT, OPEN, SPY = "00:50:56:01:00:11", "00:50:56:01:00:12", "00:50:56:01:00:13"
WEB, DB, CLIENT, ATTACKER = (
    "00:50:56:a4:00:11",
    "00:50:56:a4:00:12",
    "00:50:56:a4:00:10",
    "00:50:56:a4:00:66",
)
POLICY = {
    "groups": [{"name": "web-tier", "vms": ["web"]}],
    "rules": [
        {
            "name": "no-ssh-to-web",
            "sources": ["any"],
            "destinations": ["web-tier"],
            "services": ["tcp/22"],
            "action": "drop",
        },
        {
            "name": "http-to-web",
            "sources": ["any"],
            "destinations": ["web-tier"],
            "services": ["tcp/80"],
            "action": "allow",
        },
    ],
    "default_action": "drop",
    "applied_to": ["web-tier"],  # only web's vNIC enforces: what it receives and sends
}


def nuggets() -> ControllerState:
    return ControllerState(load_lab(LABS / "vswitch-nuggets.yaml"))


def microseg() -> ControllerState:
    data = yaml.safe_load((LABS / "microseg.yaml").read_text())
    data["distributed_firewall"] = copy.deepcopy(POLICY)
    return ControllerState(parse_lab(data))


def run(state, host, port, conntrack=None, to=None, size=None, **fields):
    binding, flows = on_host(state, host, port)
    frame = Frame(binding.port(port).ofport, **fields)
    return explain(binding, flows, state.lab, frame, conntrack, to=to, size=size)


def test_a_delivered_frame_names_every_stage_and_band():
    ex = run(nuggets(), "esx1", "open-eth0", eth_dst=STRICT, eth_src=OPEN)
    assert ex.delivered == ["strict-eth0"]
    assert [(s.stage, s.band, s.concern) for s in ex.steps] == [
        ("vs_in_port", "classify", "vswitch"),
        ("vs_forward", "exact", "vswitch"),
    ]
    assert "goto vs_forward" in ex.steps[0].did
    assert "strict-eth0" in ex.render()


def test_forged_transmits():
    ex = run(nuggets(), "esx1", "strict-eth0", eth_dst=OPEN, eth_src="00:50:56:01:99:99")
    assert ex.dropped and ex.steps[0].band == "refused"
    assert ex.refused == [
        (
            "",
            "forged transmits = reject: source MAC 00:50:56:01:99:99 is "
            "not strict-eth0's MAC 00:50:56:01:00:11",
        )
    ]


def test_forged_transmits_accept_lets_the_frame_in():
    ex = run(nuggets(), "esx1", "open-eth0", eth_dst=STRICT, eth_src="00:50:56:01:99:99")
    assert ex.delivered == ["strict-eth0"]


def test_mac_address_changes_reject():
    state = nuggets()
    state.set_guests({"strict-eth0": GuestNic(effective_mac="00:50:56:01:77:77")})
    ex = run(state, "esx1", "open-eth0", eth_dst=BCAST, eth_src=OPEN, to="strict-eth0")
    assert "strict-eth0" not in ex.delivered
    assert ex.reason_for("strict-eth0") == (
        "MAC address changes = reject: the guest changed strict-eth0's MAC to "
        "00:50:56:01:77:77 (configured 00:50:56:01:00:11), so nothing is delivered to it"
    )


def test_reverse_teaming():
    state = ControllerState(load_lab(LABS / "reverse-teaming.yaml"))
    pinned = state.pinning_by_host()["esx1"]["vm12-eth0"]
    other = next(u for u in ("vmnic2", "vmnic3") if u != pinned)
    ex = run(state, "esx1", other, eth_dst=BCAST, eth_src="00:50:56:9d:43:42", vlan=100)
    assert ex.dropped
    assert ex.reason_for("vm12-eth0") == (
        f"reverse teaming: came in on {other}, vm12-eth0 transmits on {pinned}"
    )
    assert run(state, "esx1", pinned, eth_dst=BCAST, eth_src="00:50:56:9d:43:42", vlan=100).delivered == [
        "vm12-eth0"
    ]


def test_a_guest_on_a_vst_port_group_may_not_send_tags():
    ex = run(nuggets(), "esx1", "open-eth0", eth_dst=STRICT, eth_src=OPEN, vlan=20)
    assert ex.dropped
    assert ex.refused[0][1].startswith(
        "VLAN: open-eth0's port group PG-Open is VLAN 10 (VST); only a VGT (4095) port group"
    )


def test_a_vlan_no_port_group_carries():
    ex = run(nuggets(), "esx1", "vmnic0", eth_dst=STRICT, eth_src="00:50:56:99:00:01", vlan=77)
    assert ex.dropped and ex.steps[-1].stage == "vs_forward" and ex.steps[-1].band == "refused"
    assert ex.refused == [("", "VLAN 77: no port group on this vSwitch carries it, and no VGT port")]


def test_a_port_in_another_vlan_is_named_when_asked_for():
    state = ControllerState(load_lab(LABS / "two-hosts.yaml"))
    binding, _ = on_host(state, "esx1", "vmnic0")
    vlans = {p.name: binding.switch.port_group(p.port_group).vlan for p in binding.local_ports()}
    port, vlan = next(iter(vlans.items()))
    other = next(v for v in vlans.values() if v != vlan)  # a VLAN this vSwitch carries
    ex = run(state, "esx1", "vmnic0", eth_dst=BCAST, eth_src="00:50:56:99:00:01", vlan=other, to=port)
    assert port not in ex.delivered
    assert ex.reason_for(port) == f"VLAN: {port} is in VLAN {vlan} (VST), the frame in VLAN {other} (VST)"


def test_a_vlan_no_port_group_carries_is_named_for_the_expected_port_too():
    state = ControllerState(load_lab(LABS / "two-hosts.yaml"))
    binding, _ = on_host(state, "esx1", "vmnic0")
    port = binding.local_ports()[0].name
    ex = run(state, "esx1", "vmnic0", eth_dst=BCAST, eth_src="00:50:56:99:00:01", vlan=3999, to=port)
    assert ex.reason_for(port) == "VLAN 3999: no port group on this vSwitch carries it, and no VGT port"


def test_unknown_unicast_in_a_vlan_only_vgt_ports_carry():
    data = yaml.safe_load((LABS / "vswitch-nuggets.yaml").read_text())
    for sw in data["esxi_hosts"][0]["vswitches"]:
        for pg in sw["port_groups"]:
            if pg["name"] == "PG-Quiet":
                pg["vlan"] = 4095
    state = ControllerState(parse_lab(data))
    ex = run(state, "esx1", "vmnic0", eth_dst="00:50:56:01:55:55", eth_src="00:50:56:99:00:01", vlan=77)
    assert ex.dropped
    assert ex.refused[0][1].startswith("unknown unicast from uplink vmnic0 in VLAN 77: only VGT ports")


def test_unknown_unicast_from_an_uplink():
    state = nuggets()
    state.set_guests({"spy-eth0": GuestNic(promiscuous=True)})
    ex = run(state, "esx1", "vmnic0", eth_dst="00:50:56:01:55:55", eth_src="00:50:56:99:00:01", vlan=10)
    assert ex.steps[-1].band == "unknown-unicast"
    assert "spy-eth0" in ex.delivered  # promiscuous = accept sees it
    assert (
        "",
        "unknown unicast from uplink vmnic0: no port on this vSwitch has "
        "00:50:56:01:55:55, and frames from an uplink never go out of another "
        "uplink",
    ) not in ex.refused  # something was delivered
    state = nuggets()
    state.set_guests({"spy-eth0": GuestNic()})  # the spy's guest leaves promiscuous mode
    ex = run(
        state,
        "esx1",
        "vmnic0",
        eth_dst="00:50:56:01:55:55",
        eth_src="00:50:56:99:00:01",
        vlan=10,
        to="strict-eth0",
    )
    assert ex.dropped
    assert ex.reason_for("strict-eth0").startswith("unknown unicast: no port here has 00:50:56:01:55:55")


def test_multicast_filter():
    state = nuggets()
    state.set_guests({"m1-eth0": GuestNic(mcast=frozenset({"01:00:5e:01:01:01"}))})
    ex = run(state, "esx1", "open-eth0", eth_dst="01:00:5e:02:02:02", eth_src=OPEN)
    assert ex.reason_for("m1-eth0") == ("multicast filter: m1-eth0's guest has not joined 01:00:5e:02:02:02")
    assert "m1-eth0" in run(state, "esx1", "open-eth0", eth_dst="01:00:5e:01:01:01", eth_src=OPEN).delivered


def _tcp(src_mac, dst_mac, src, dst, sport, dport, flags=TCP_SYN):
    return dict(
        eth_src=src_mac,
        eth_dst=dst_mac,
        eth_type=0x0800,
        ip_proto=6,
        ipv4_src=src,
        ipv4_dst=dst,
        tcp_src=sport,
        tcp_dst=dport,
        tcp_flags=flags,
    )


def test_dfw_rule_that_drops_is_named():
    ex = run(
        microseg(), "esx1", "attacker-eth0", **_tcp(ATTACKER, WEB, "10.30.0.66", "10.30.0.11", 40000, 22)
    )
    assert ex.dropped
    assert ex.refused == [("web-eth0", "distributed firewall rule 1 'no-ssh-to-web' at web-eth0: drop")]
    assert [s.stage for s in ex.steps][-3:] == ["vs_forward", "dfw_to_vm", "dfw_to_vm_ct"]


def test_dfw_default_rule_and_allowed_connection_with_its_reply():
    state = microseg()
    ex = run(state, "esx1", "attacker-eth0", **_tcp(ATTACKER, WEB, "10.30.0.66", "10.30.0.11", 40000, 443))
    assert ex.refused == [
        ("web-eth0", "distributed firewall at web-eth0: no rule allows it; the default rule drops")
    ]
    ct = Conntrack()
    syn = run(
        state, "esx1", "attacker-eth0", ct, **_tcp(ATTACKER, WEB, "10.30.0.66", "10.30.0.11", 40000, 80)
    )
    assert syn.delivered == ["web-eth0"]
    reply = run(
        state,
        "esx1",
        "web-eth0",
        ct,
        **_tcp(WEB, ATTACKER, "10.30.0.11", "10.30.0.66", 80, 40000, TCP_SYN | TCP_ACK),
    )
    assert reply.delivered == ["attacker-eth0"]
    assert "state" in [s.band for s in reply.steps]


def test_a_drop_on_the_sending_side_is_the_reason_for_the_expected_port():
    ex = run(
        microseg(),
        "esx1",
        "web-eth0",
        to="attacker-eth0",
        **_tcp(WEB, ATTACKER, "10.30.0.11", "10.30.0.66", 40000, 443),
    )
    assert ex.reason_for("attacker-eth0") == (
        "distributed firewall at web-eth0: no rule allows it; the default rule drops"
    )


def test_dfw_invalid_state():
    ex = run(
        microseg(),
        "esx1",
        "web-eth0",
        **_tcp(WEB, ATTACKER, "10.30.0.11", "10.30.0.66", 80, 40000, TCP_SYN | TCP_ACK),
    )
    assert ex.dropped
    assert ex.refused[0][1].startswith("distributed firewall at web-eth0: invalid")


def test_mtu():
    ex = run(nuggets(), "esx1", "open-eth0", eth_dst=STRICT, eth_src=OPEN, size=1600)
    assert ex.dropped
    assert ex.refused == [
        ("strict-eth0", "MTU: a 1600-byte IP packet is larger than vSwitch0's MTU of 1500; the port drops it")
    ]
    assert run(nuggets(), "esx1", "open-eth0", eth_dst=STRICT, eth_src=OPEN, size=1500).delivered == [
        "strict-eth0"
    ]


def test_simulator_resubmit_miss_goes_on_and_ct_commit_sees_a_new_connection():
    from controller.pipeline import FlowSpec
    from controller.simulate import CT_NEW, CT_TRK, walk

    flows = [FlowSpec.make(0, 100, {}, (("resubmit", 5), ("output", 3)))]
    assert [o.port for o in walk(flows, Frame(1, BCAST)).outputs] == [3]
    ct = [FlowSpec.make(0, 100, {}, (("ct", True, 7, 6),)), FlowSpec.make(6, 100, {}, (("output", 2),))]
    w = walk(
        ct,
        Frame(
            1,
            WEB,
            **{"ipv4_src": "10.0.0.1", "ipv4_dst": "10.0.0.2", "ip_proto": 17, "udp_src": 1, "udp_dst": 2},
        ),
    )
    assert w.ct_states == [CT_TRK | CT_NEW] and [o.port for o in w.outputs] == [2]


def test_mirror_copies_are_copies_and_the_frame_is_delivered_once():
    """jumpbox is the source of an ERSPAN session and of a local session
    whose destination (sniffer) disallows normal traffic: both copies are
    copies, the web server is the only delivery."""
    state = ControllerState(load_lab(LABS / "erspan.yaml"))
    ex = run(
        state,
        "esx1",
        "jumpbox-eth0",
        **_tcp("00:50:56:03:00:10", "00:50:56:03:00:20", "10.2.2.10", "10.2.2.20", 40000, 80),
    )
    assert ex.delivered == ["web-eth0"]
    assert sorted(ex.copies) == ["erspan-mirror to 10.2.1.110", "sniffer-eth0"]

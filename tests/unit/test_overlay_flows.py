"""NSX overlay, ARP suppression and distributed router flows: where does a
frame go, and how is it rewritten? (no root, no switch)

The lab is ``labs/nsx-overlay.yaml``: web (VNI 5001) on esx1..esx4, app
(VNI 5002) on esx1/esx2, VTEP subnet A = esx1, esx2 and B = esx3, esx4.
"""

import copy
from pathlib import Path

import yaml

from controller.flows import compile_bridge
from controller.nsx import build_tables
from controller.simulate import Frame, trace
from vlab.bindings import TUNNEL_OFPORT, GuestNic, Placement, switch_bindings
from vlab.lab.load import parse_lab

LAB_DATA = yaml.safe_load((Path(__file__).resolve().parents[2] / "labs" / "nsx-overlay.yaml").read_text())
BCAST = "ff:ff:ff:ff:ff:ff"
VMAC = "02:50:56:56:44:52"
MAC = {f"vm{i}": f"00:50:56:a1:00:0{i}" for i in range(1, 7)}
IP = {
    "vm1": "10.1.1.11",
    "vm2": "10.1.1.12",
    "vm3": "10.1.2.13",
    "vm4": "10.1.2.14",
    "vm5": "10.1.1.15",
    "vm6": "10.1.1.16",
}
VTEP = {"esx1": "172.16.200.11", "esx2": "172.16.200.12", "esx3": "172.16.201.13", "esx4": "172.16.201.14"}
PORT = {"vm1": 200, "vm2": 201, "vm3": 202, "vm4": 203, "vm5": 204, "vm6": 205}
WEB, APP = 5001, 5002


def setup(data=None, placement=None, known=True, snooped=None):
    """(lab, tables, {host: flows}); with ``known`` every guest's IP is
    reported by VMware Tools; ``snooped`` adds what snooping learned."""
    lab = parse_lab(copy.deepcopy(data or LAB_DATA))
    bindings = switch_bindings(lab, placement)
    guests = {f"{vm}-eth0": GuestNic(ipv4=frozenset({ip})) for vm, ip in IP.items()} if known else {}
    tables = build_tables(lab, bindings, guests, snooped)
    flows = {b.host: compile_bridge(b, tables, lab) for b in bindings}
    return lab, tables, flows


def encapsulated_to(outputs):
    return sorted(o.frame.tun_ipv4_dst for o in outputs if o.port == TUNNEL_OFPORT)


def test_unicast_to_a_remote_vm_is_encapsulated_to_its_vtep_only():
    _, _, flows = setup()
    out = trace(flows["esx1"], Frame(PORT["vm1"], MAC["vm2"], MAC["vm1"]))
    assert [(o.port, o.frame.tun_ipv4_dst, o.frame.tunnel_id) for o in out] == [
        (TUNNEL_OFPORT, VTEP["esx2"], WEB)
    ]


def test_unicast_to_a_local_vm_stays_on_the_host():
    _, _, flows = setup(placement={"vm2-eth0": Placement("esx1", 201)})
    out = trace(flows["esx1"], Frame(PORT["vm1"], MAC["vm2"], MAC["vm1"]))
    assert [o.port for o in out] == [PORT["vm2"]]


def test_broadcast_is_replicated_to_same_subnet_vteps_and_one_utep_per_other_subnet():
    _, _, flows = setup(known=False)
    out = trace(
        flows["esx1"], Frame(PORT["vm1"], BCAST, MAC["vm1"], eth_type=0x0806, arp_op=1, arp_tpa="10.1.1.99")
    )
    # esx2 directly, esx3 as the UTEP of 172.16.201.0/24; never esx4; not vm3 (other VNI).
    assert encapsulated_to(out) == [VTEP["esx2"], VTEP["esx3"]]
    assert all(o.port == TUNNEL_OFPORT for o in out)


def test_utep_replicates_a_frame_from_another_subnet_to_its_own_subnet():
    _, _, flows = setup()
    from_a = Frame(TUNNEL_OFPORT, BCAST, MAC["vm1"], tunnel_id=WEB, tun_ipv4_src=VTEP["esx1"])
    out = trace(flows["esx3"], from_a)
    assert [o.port for o in out if o.port != TUNNEL_OFPORT] == [PORT["vm5"]]
    assert encapsulated_to(out) == [VTEP["esx4"]]
    # A copy from its own subnet is only delivered locally (no loop).
    from_b = Frame(TUNNEL_OFPORT, BCAST, MAC["vm6"], tunnel_id=WEB, tun_ipv4_src=VTEP["esx4"])
    assert [o.port for o in trace(flows["esx3"], from_b)] == [PORT["vm5"]]
    # esx4 is not the UTEP: it never re-sends.
    assert [o.port for o in trace(flows["esx4"], from_a)] == [PORT["vm6"]]


def test_a_frame_from_the_tunnel_never_goes_back_into_it_as_unicast():
    _, _, flows = setup()
    # A stale frame for a VM that is not here reaches no VM: delivery is by
    # destination MAC (no flooding of unknown unicast to guests).
    stale = Frame(TUNNEL_OFPORT, MAC["vm2"], MAC["vm5"], tunnel_id=WEB, tun_ipv4_src=VTEP["esx3"])
    assert [o.port for o in trace(flows["esx1"], stale)] == []
    mine = Frame(TUNNEL_OFPORT, MAC["vm1"], MAC["vm2"], tunnel_id=WEB, tun_ipv4_src=VTEP["esx2"])
    assert [o.port for o in trace(flows["esx1"], mine)] == [PORT["vm1"]]
    other_vni = Frame(TUNNEL_OFPORT, MAC["vm1"], MAC["vm4"], tunnel_id=APP, tun_ipv4_src=VTEP["esx2"])
    assert [o.port for o in trace(flows["esx1"], other_vni)] == []  # vm1 is not on app


def test_vms_on_other_logical_switches_are_isolated():
    _, _, flows = setup()
    out = trace(flows["esx1"], Frame(PORT["vm1"], MAC["vm3"], MAC["vm1"]))
    assert PORT["vm3"] not in [o.port for o in out]


def test_forged_source_mac_is_dropped():
    _, _, flows = setup()
    assert trace(flows["esx1"], Frame(PORT["vm1"], MAC["vm2"], "00:50:56:de:ad:01")) == []


def with_security(**security):
    data = copy.deepcopy(LAB_DATA)
    data["nsx"]["logical_switches"][0]["security"] = security
    return data


def changed(data, vm, mac, placement=None):
    """(tables, flows) once ``vm``'s guest loaded ``mac`` into its NIC."""
    lab = parse_lab(copy.deepcopy(data))
    bindings = switch_bindings(lab, placement)
    guests = {f"{v}-eth0": GuestNic(ipv4=frozenset({ip})) for v, ip in IP.items()}
    guests[f"{vm}-eth0"] = GuestNic(effective_mac=mac, ipv4=frozenset({IP[vm]}))
    bindings = [b.with_guests(guests) for b in bindings]
    tables = build_tables(lab, bindings, guests)
    return tables, {b.host: compile_bridge(b, tables, lab) for b in bindings}


NEW = "00:50:56:a1:0f:01"


def test_logical_switch_default_policy_rejects_a_mac_change_like_a_distributed_port_group():
    tables, flows = changed(LAB_DATA, "vm1", NEW)
    assert tables.mac_table[(WEB, MAC["vm1"])] == "esx1" and (WEB, NEW) not in tables.mac_table
    # Nothing is delivered to vm1 (inbound dropped), and it may send only from its .vmx MAC.
    for dst in (MAC["vm1"], NEW, BCAST):
        from_vm2 = Frame(TUNNEL_OFPORT, dst, MAC["vm2"], tunnel_id=WEB, tun_ipv4_src=VTEP["esx2"])
        assert PORT["vm1"] not in [o.port for o in trace(flows["esx1"], from_vm2)]
    assert trace(flows["esx1"], Frame(PORT["vm1"], MAC["vm2"], NEW)) == []
    assert encapsulated_to(trace(flows["esx1"], Frame(PORT["vm1"], MAC["vm2"], MAC["vm1"]))) == [VTEP["esx2"]]
    # A VM on the same host and logical switch: its frame to vm1 is dropped
    # there, not replicated to the other VTEPs as unknown unicast.
    _, flows = changed(LAB_DATA, "vm1", NEW, placement={"vm2-eth0": Placement("esx1", 201)})
    assert trace(flows["esx1"], Frame(PORT["vm2"], MAC["vm1"], MAC["vm2"])) == []


def test_logical_switch_with_mac_changes_accept_follows_the_guest_and_forges_the_old_mac():
    tables, flows = changed(with_security(mac_changes="accept", forged_transmits="reject"), "vm1", NEW)
    assert tables.mac_table[(WEB, NEW)] == "esx1" and (WEB, MAC["vm1"]) not in tables.mac_table
    assert encapsulated_to(trace(flows["esx1"], Frame(PORT["vm1"], MAC["vm2"], NEW))) == [VTEP["esx2"]]
    assert trace(flows["esx1"], Frame(PORT["vm1"], MAC["vm2"], MAC["vm1"])) == []
    # vm2's host sends to the new MAC by the MAC table; esx1 delivers it.
    assert encapsulated_to(trace(flows["esx2"], Frame(PORT["vm2"], NEW, MAC["vm2"]))) == [VTEP["esx1"]]
    to_new = Frame(TUNNEL_OFPORT, NEW, MAC["vm2"], tunnel_id=WEB, tun_ipv4_src=VTEP["esx2"])
    assert [o.port for o in trace(flows["esx1"], to_new)] == [PORT["vm1"]]


def test_logical_switch_with_forged_transmits_accept_lets_any_source_in():
    _, flows = changed(with_security(forged_transmits="accept"), "vm1", MAC["vm1"])
    assert encapsulated_to(trace(flows["esx1"], Frame(PORT["vm1"], MAC["vm2"], NEW))) == [VTEP["esx2"]]


def test_arp_request_for_a_known_ip_is_answered_on_the_source_host():
    _, _, flows = setup()
    req = Frame(
        PORT["vm1"],
        BCAST,
        MAC["vm1"],
        eth_type=0x0806,
        arp_op=1,
        arp_sha=MAC["vm1"],
        arp_spa=IP["vm1"],
        arp_tha="00:00:00:00:00:00",
        arp_tpa=IP["vm2"],
    )
    out = trace(flows["esx1"], req)
    assert len(out) == 1 and out[0].port == PORT["vm1"]
    reply = out[0].frame
    assert (reply.arp_op, reply.eth_src, reply.eth_dst) == (2, MAC["vm2"], MAC["vm1"])
    assert (reply.arp_sha, reply.arp_spa, reply.arp_tha, reply.arp_tpa) == (
        MAC["vm2"],
        IP["vm2"],
        MAC["vm1"],
        IP["vm1"],
    )


def test_arp_for_an_unknown_ip_or_with_suppression_off_is_replicated():
    _, _, flows = setup()
    req = Frame(PORT["vm1"], BCAST, MAC["vm1"], eth_type=0x0806, arp_op=1, arp_tpa="10.1.1.99")
    assert encapsulated_to(trace(flows["esx1"], req)) == [VTEP["esx2"], VTEP["esx3"]]
    data = copy.deepcopy(LAB_DATA)
    data["nsx"]["logical_switches"][0]["arp_suppression"] = False
    _, _, flows = setup(data)
    req = Frame(PORT["vm1"], BCAST, MAC["vm1"], eth_type=0x0806, arp_op=1, arp_tpa=IP["vm2"])
    assert encapsulated_to(trace(flows["esx1"], req)) == [VTEP["esx2"], VTEP["esx3"]]


def test_the_router_answers_arp_for_its_gateway_ip_everywhere():
    data = copy.deepcopy(LAB_DATA)
    data["nsx"]["logical_switches"][0]["arp_suppression"] = False
    _, _, flows = setup(data)
    for host, vm in (("esx1", "vm1"), ("esx3", "vm5")):
        req = Frame(
            PORT[vm],
            BCAST,
            MAC[vm],
            eth_type=0x0806,
            arp_op=1,
            arp_sha=MAC[vm],
            arp_spa=IP[vm],
            arp_tpa="10.1.1.1",
        )
        out = trace(flows[host], req)
        assert [(o.port, o.frame.arp_op, o.frame.arp_sha) for o in out] == [(PORT[vm], 2, VMAC)]


def test_routed_same_host_traffic_never_leaves_the_host():
    _, _, flows = setup()
    pkt = Frame(PORT["vm1"], VMAC, MAC["vm1"], ipv4_dst=IP["vm3"], ttl=64)
    out = trace(flows["esx1"], pkt)
    assert [(o.port, o.frame.eth_src, o.frame.eth_dst, o.frame.ttl) for o in out] == [
        (PORT["vm3"], VMAC, MAC["vm3"], 63)
    ]


def test_routed_cross_host_traffic_goes_vtep_to_vtep_in_the_destination_vni():
    _, _, flows = setup()
    out = trace(flows["esx1"], Frame(PORT["vm1"], VMAC, MAC["vm1"], ipv4_dst=IP["vm4"]))
    assert [(o.port, o.frame.tunnel_id, o.frame.tun_ipv4_dst, o.frame.eth_dst) for o in out] == [
        (TUNNEL_OFPORT, APP, VTEP["esx2"], MAC["vm4"])
    ]
    # esx3 has no app port, yet routes web -> app straight to vm4's VTEP.
    out = trace(flows["esx3"], Frame(PORT["vm5"], VMAC, MAC["vm5"], ipv4_dst=IP["vm4"]))
    assert [(o.port, o.frame.tunnel_id, o.frame.tun_ipv4_dst) for o in out] == [
        (TUNNEL_OFPORT, APP, VTEP["esx2"])
    ]


def test_router_drops_unknown_destinations_and_ttl_expiry():
    _, _, flows = setup()
    assert trace(flows["esx1"], Frame(PORT["vm1"], VMAC, MAC["vm1"], ipv4_dst="10.1.2.99")) == []
    assert trace(flows["esx1"], Frame(PORT["vm1"], VMAC, MAC["vm1"], ipv4_dst=IP["vm3"], ttl=1)) == []


def test_vmotion_moves_the_mac_table_entry_and_vtep_membership():
    _, tables, flows = setup(placement={"vm2-eth0": Placement("esx4", 201)})
    out = trace(flows["esx1"], Frame(PORT["vm1"], MAC["vm2"], MAC["vm1"]))
    assert [o.frame.tun_ipv4_dst for o in out] == [VTEP["esx4"]]
    web = tables.to_json()["web"]
    assert [e["host"] for e in web["vtep_table"]] == ["esx1", "esx3", "esx4"]
    assert {e["mac"]: e["host"] for e in web["mac_table"]}[MAC["vm2"]] == "esx4"


def test_tables_json_lists_the_arp_table_from_reported_ips():
    _, tables, _ = setup()
    app = tables.to_json()["app"]
    assert app["arp_table"] == [
        {"ip": IP["vm3"], "mac": MAC["vm3"], "sources": ["vmtools"]},
        {"ip": IP["vm4"], "mac": MAC["vm4"], "sources": ["vmtools"]},
    ]
    assert [(e["host"], e["utep"]) for e in app["vtep_table"]] == [("esx1", True), ("esx2", False)]


def test_vlan_backed_ports_and_the_vtep_keep_vswitch_semantics():
    lab, _, flows = setup()
    # Encapsulated traffic leaves from the VTEP vmk (port 100): tagged with the
    # transport VLAN, out of its pinned uplink only.
    out = trace(flows["esx1"], Frame(100, "00:50:56:5e:e6:97", "00:50:56:52:76:ea"))
    assert len(out) == 1 and out[0].port in (1, 2) and out[0].frame.vlan == 200

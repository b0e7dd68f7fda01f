"""NSX IP discovery: which frames reach the controller, what they teach the
ARP table, and how the switch then behaves (no root, no switch).

Same lab and names as ``test_overlay_flows``: web (VNI 5001) on esx1..esx4."""

import copy

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP as IPv4
from scapy.layers.inet import UDP
from scapy.layers.l2 import ARP, Ether

from controller.ipdiscovery import Snooped, snoop
from controller.simulate import Frame, trace
from controller.state import ControllerState
from tests.unit.test_overlay_flows import BCAST, IP, LAB_DATA, MAC, PORT, VTEP, WEB, encapsulated_to, setup
from vlab.bindings import TUNNEL_OFPORT
from vlab.lab.load import parse_lab


def web_discovers(*methods):
    data = copy.deepcopy(LAB_DATA)
    data["nsx"]["logical_switches"][0]["ip_discovery"] = list(methods)
    return data


def arp_request(vm, target, spa=None):
    return Frame(
        PORT[vm],
        BCAST,
        MAC[vm],
        eth_type=0x0806,
        arp_op=1,
        arp_sha=MAC[vm],
        arp_spa=spa or IP[vm],
        arp_tha="00:00:00:00:00:00",
        arp_tpa=target,
    )


def dhcp_ack_frame(in_port, **fields):
    return Frame(in_port, BCAST, MAC["vm2"], ip_proto=17, udp_src=67, udp_dst=68, **fields)


def to_controller(outputs):
    return [o for o in outputs if o.port == "controller"]


def test_arp_from_an_address_the_table_knows_is_not_copied_to_the_controller():
    _, _, flows = setup()  # VMware Tools reported every IP
    out = trace(flows["esx1"], arp_request("vm1", "10.1.1.99"))
    assert to_controller(out) == []
    assert encapsulated_to(out) == [VTEP["esx2"], VTEP["esx3"]]


def test_arp_from_an_unknown_sender_is_copied_and_still_replicated():
    _, _, flows = setup(web_discovers("arp_snooping"), known=False)
    out = trace(flows["esx1"], arp_request("vm1", IP["vm2"]))
    assert len(to_controller(out)) == 1
    assert encapsulated_to(out) == [VTEP["esx2"], VTEP["esx3"]]


def test_a_vnic_holding_its_arp_binding_is_not_copied_any_more():
    snooped = {"vm1-eth0": {"arp_snooping": frozenset({IP["vm1"]})}}
    _, tables, flows = setup(web_discovers("arp_snooping"), known=False, snooped=snooped)
    assert tables.arp_table[(WEB, IP["vm1"])] == MAC["vm1"]
    for spa in (IP["vm1"], "10.1.1.77"):  # its own, and a second address
        assert to_controller(trace(flows["esx1"], arp_request("vm1", IP["vm2"], spa))) == []


def test_a_snooped_binding_lets_the_source_host_answer_arp():
    snooped = {"vm2-eth0": {"arp_snooping": frozenset({IP["vm2"]})}}
    _, _, flows = setup(web_discovers("arp_snooping"), known=False, snooped=snooped)
    out = trace(flows["esx1"], arp_request("vm1", IP["vm2"]))
    answered = [o for o in out if o.port == PORT["vm1"]]
    assert len(answered) == 1 and answered[0].frame.arp_sha == MAC["vm2"]
    assert encapsulated_to(out) == []


def test_without_arp_snooping_nothing_is_copied_and_nothing_is_answered():
    _, _, flows = setup(web_discovers("vmtools"), known=False)
    out = trace(flows["esx1"], arp_request("vm1", IP["vm2"]))
    assert to_controller(out) == []
    assert encapsulated_to(out) == [VTEP["esx2"], VTEP["esx3"]]


def test_dhcp_acks_are_copied_from_local_servers_and_from_the_tunnel():
    _, _, flows = setup(web_discovers("dhcp_snooping"), known=False)
    local = trace(flows["esx2"], dhcp_ack_frame(PORT["vm2"]))
    assert len(to_controller(local)) == 1
    assert encapsulated_to(local) == [VTEP["esx1"], VTEP["esx3"]]
    remote = trace(flows["esx1"], dhcp_ack_frame(TUNNEL_OFPORT, tunnel_id=WEB, tun_ipv4_src=VTEP["esx2"]))
    assert len(to_controller(remote)) == 1
    assert [o.port for o in remote if o.port != "controller"] == [PORT["vm1"]]
    _, _, flows = setup(web_discovers("arp_snooping"), known=False)
    assert to_controller(trace(flows["esx2"], dhcp_ack_frame(PORT["vm2"]))) == []


# -- parsing the copies ----------------------------------------------------------
VM1 = "00:50:56:a1:00:01"


def test_snoop_reads_arp_senders_and_refuses_probes_and_forged_senders():
    req = Ether(src=VM1, dst=BCAST) / ARP(op=1, hwsrc=VM1, psrc="10.1.1.11", pdst="10.1.1.12")
    assert snoop(bytes(req)) == Snooped("arp_snooping", VM1, "10.1.1.11")
    probe = Ether(src=VM1, dst=BCAST) / ARP(op=1, hwsrc=VM1, psrc="0.0.0.0", pdst="10.1.1.11")
    assert snoop(bytes(probe)) is None
    forged = Ether(src=VM1, dst=BCAST) / ARP(op=2, hwsrc="00:50:56:a1:00:09", psrc="10.1.1.19")
    assert snoop(bytes(forged)) is None


def dhcp(message_type, yiaddr="10.1.1.50", chaddr=VM1):
    return bytes(
        Ether(src="00:50:56:a1:00:02", dst=BCAST)
        / IPv4(src="10.1.1.12", dst="255.255.255.255")
        / UDP(sport=67, dport=68)
        / BOOTP(op=2, yiaddr=yiaddr, chaddr=bytes.fromhex(chaddr.replace(":", "")))
        / DHCP(options=[("message-type", message_type), "end"])
    )


def test_snoop_reads_dhcp_acks_only():
    assert snoop(dhcp("ack")) == Snooped("dhcp_snooping", VM1, "10.1.1.50")
    assert snoop(dhcp("offer")) is None
    assert snoop(dhcp("ack", yiaddr="0.0.0.0")) is None


def test_snoop_survives_garbage():
    good = bytes(Ether(src=VM1, dst=BCAST) / ARP(op=1, hwsrc=VM1, psrc="10.1.1.11"))
    for frame in (b"", b"\x00" * 5, good[:20], good[:30], dhcp("ack")[:250], b"\xff" * 1500):
        assert snoop(frame) is None, frame


# -- what the controller believes -----------------------------------------------
def controller(*methods):
    state = ControllerState(parse_lab(web_discovers(*methods)))
    dpid = next(
        d for d in state.dpids if state.host_of(d) == "esx1" and state.binding(d).tunnel_port() is not None
    )
    return state, dpid


def test_arp_is_believed_only_from_the_vnic_with_that_mac_and_first_binding_wins():
    state, dpid = controller("arp_snooping")
    assert state.learn(dpid, PORT["vm3"], Snooped("arp_snooping", VM1, "10.1.1.11")) is None
    assert state.learn(dpid, PORT["vm1"], Snooped("arp_snooping", VM1, "10.1.1.11")) == "vm1-eth0"
    assert state.learn(dpid, PORT["vm1"], Snooped("arp_snooping", VM1, "10.1.1.66")) is None
    table = state.nsx_tables().to_json()["web"]["arp_table"]
    assert table == [{"ip": "10.1.1.11", "mac": VM1, "sources": ["arp_snooping"]}]


def test_a_dhcp_ack_binds_wherever_the_client_is_and_a_new_lease_replaces_it():
    state, dpid = controller("dhcp_snooping")
    ack = lambda mac, ip: Snooped("dhcp_snooping", mac, ip)  # noqa: E731
    assert state.learn(dpid, 1, ack(MAC["vm5"], "10.1.1.50"), WEB) == "vm5-eth0"
    assert state.learn(dpid, 1, ack(MAC["vm5"], "10.1.1.51"), WEB) == "vm5-eth0"
    assert state.learn(dpid, 1, ack("00:50:56:ff:00:99", "10.1.1.52"), WEB) is None
    # Forged on another segment (app) for a web VM, or with no VNI: nothing.
    assert state.learn(dpid, 1, ack(MAC["vm5"], "10.1.1.12"), 5002) is None
    assert state.learn(dpid, 1, ack(MAC["vm5"], "10.1.1.12")) is None
    table = state.nsx_tables().to_json()["web"]["arp_table"]
    assert table == [{"ip": "10.1.1.51", "mac": MAC["vm5"], "sources": ["dhcp_snooping"]}]


def test_a_method_the_logical_switch_does_not_use_teaches_nothing():
    state, dpid = controller("vmtools")
    assert state.learn(dpid, PORT["vm1"], Snooped("arp_snooping", VM1, "10.1.1.11")) is None
    assert state.learn(dpid, 1, Snooped("dhcp_snooping", VM1, "10.1.1.11"), WEB) is None

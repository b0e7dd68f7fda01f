"""Port mirroring flows (controller.mirror) through the table simulator:
where the copies go, what they look like, and that forwarding is otherwise
unchanged (no root, no switch). The lab is ``labs/erspan.yaml``: jumpbox
mirrored both ways by ERSPAN (session 1) and to the local sniffer VM (normal
traffic disallowed), web's sent frames by GRE (session 2, 128 bytes)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from controller import mirror, ofdriver
from controller.flows import compile_bridge
from controller.nsx import build_tables
from controller.pipeline import FlowSpec, Priority, Table
from controller.simulate import Frame, trace
from vlab.bindings import Placement, mirror_tunnel, switch_bindings
from vlab.lab.load import parse_lab

DATA = yaml.safe_load((Path(__file__).resolve().parents[2] / "labs" / "erspan.yaml").read_text())
JUMPBOX, WEB, SNIFFER = 200, 201, 202
JUMPBOX_MAC, WEB_MAC = "00:50:56:03:00:10", "00:50:56:03:00:20"
ERSPAN, GRE = mirror_tunnel("erspan-mirror").ofport, mirror_tunnel("gre-mirror").ofport
MONITOR = "10.2.1.110"
BCAST = "ff:ff:ff:ff:ff:ff"


def compiled(data=DATA, placement=None) -> dict[str, list[FlowSpec]]:
    lab = parse_lab(copy.deepcopy(data))
    bindings = switch_bindings(lab, placement)
    tables = build_tables(lab, list(bindings), {}, {})
    return {b.host: compile_bridge(b, tables, lab) for b in bindings}


def variant(edit) -> dict:
    data = copy.deepcopy(DATA)
    edit(data["distributed_switches"][0])
    return data


def without_mirrors(dvs):
    dvs["mirrors"] = []


def local_allows_normal_traffic(dvs):
    dvs["mirrors"][2]["normal_traffic"] = "allowed"


def disabled(dvs):
    for m in dvs["mirrors"]:
        m["enabled"] = False


def summary(outputs) -> list[tuple]:
    """(port, VLAN, tunnel destination, tunnel key, max_len) per output;
    tunnel fields only for the mirror ports."""
    return sorted(
        (
            o.port,
            o.frame.vlan,
            o.frame.tun_ipv4_dst if o.port in (ERSPAN, GRE) else None,
            o.frame.tunnel_id if o.port in (ERSPAN, GRE) else None,
            o.max_len,
        )
        for o in outputs
    )


@pytest.fixture(scope="module")
def esx1():
    return compiled()["esx1"]


@pytest.fixture(scope="module")
def plain():
    return compiled(variant(without_mirrors))["esx1"]


def erspan_copy(vlan=20):
    """An ERSPAN copy of a VM-Network (VLAN 20) port: it leaves the bridge
    with the port group's tag on, for the uplinks' tc program to move into
    the ERSPAN header (vlab.operations.erspan_vlan)."""
    return (ERSPAN, vlan, MONITOR, 1, None)


GRE_COPY = (GRE, None, MONITOR, 2, 128)


def test_jumpbox_sending_is_copied_by_erspan_and_to_the_sniffer(esx1, plain):
    frame = Frame(JUMPBOX, WEB_MAC, eth_src=JUMPBOX_MAC)
    assert summary(trace(plain, frame)) == [(WEB, None, None, None, None)]
    # web is a GRE source for what it sends only: receiving adds no GRE copy.
    assert summary(trace(esx1, frame)) == sorted(
        [(WEB, None, None, None, None), erspan_copy(), (SNIFFER, None, None, None, None)]
    )


def test_jumpbox_receiving_is_copied_untagged_where_the_pipeline_has_the_tag(esx1):
    # From the uplink the frame is tagged (VLAN 20) inside the pipeline; the
    # local and GRE copies are the frame as jumpbox receives it, the ERSPAN
    # one has the tag put back for its header.
    frame = Frame(1, JUMPBOX_MAC, eth_src="00:50:56:99:00:01", vlan=20)
    assert summary(trace(esx1, frame)) == sorted(
        [(JUMPBOX, None, None, None, None), erspan_copy(), (SNIFFER, None, None, None, None)]
    )


def test_web_sending_is_copied_by_gre_cut_to_the_snap_length(esx1):
    frame = Frame(WEB, JUMPBOX_MAC, eth_src=WEB_MAC)
    assert summary(trace(esx1, frame)) == sorted(
        [(JUMPBOX, None, None, None, None), GRE_COPY, erspan_copy(), (SNIFFER, None, None, None, None)]
    )


def test_receive_only_sniffer_gets_copies_and_nothing_else(esx1):
    # web's broadcast reaches jumpbox (so the sniffer gets jumpbox's copy) but
    # not the sniffer itself.
    frame = Frame(WEB, BCAST, eth_src=WEB_MAC)
    out = summary(trace(esx1, frame))
    assert [o for o in out if o[0] == SNIFFER] == [(SNIFFER, None, None, None, None)]
    # Without a session delivering to it, the sniffer would get the broadcast
    # once; with normal traffic allowed it gets both the broadcast and the copy.
    allowed = compiled(variant(local_allows_normal_traffic))["esx1"]
    assert [o for o in summary(trace(allowed, frame)) if o[0] == SNIFFER] == [
        (SNIFFER, None, None, None, None)
    ] * 2


def test_receive_only_sniffer_sends_nothing(esx1):
    for dst in (BCAST, WEB_MAC, JUMPBOX_MAC, "00:50:56:99:00:01"):
        assert trace(esx1, Frame(SNIFFER, dst, eth_src="00:50:56:03:00:30")) == [], dst
    drop = [f for f in esx1 if f.cookie == mirror.COOKIE]
    assert [(f.table, f.priority, dict(f.match), f.actions) for f in drop] == [
        (Table.INGRESS, Priority.MIRROR_DESTINATION_ONLY, {"in_port": SNIFFER}, ())
    ]


FRAMES = [
    Frame(p, dst, eth_src=src, vlan=vlan)
    for p, src, vlan in (
        (JUMPBOX, JUMPBOX_MAC, None),
        (WEB, WEB_MAC, None),
        (1, "00:50:56:99:00:01", 20),
        (2, "00:50:56:99:00:02", 20),
        (100, None, None),
    )
    for dst in (BCAST, JUMPBOX_MAC, WEB_MAC, "00:50:56:99:00:03", "01:00:5e:00:00:01")
]


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: f"{f.in_port}->{f.eth_dst}")
def test_forwarding_is_otherwise_unchanged(esx1, plain, frame):
    if frame.eth_src is None:  # vmk0: its own MAC
        lab = parse_lab(copy.deepcopy(DATA))
        vmk = next(p for p in switch_bindings(lab)[0].ports if p.kind == "vmk")
        frame = Frame(frame.in_port, frame.eth_dst, eth_src=vmk.mac, vlan=frame.vlan)
    mirrored = [o for o in summary(trace(esx1, frame)) if o[0] not in (ERSPAN, GRE, SNIFFER)]
    normal = [o for o in summary(trace(plain, frame)) if o[0] != SNIFFER]
    assert mirrored == normal


def test_disabled_sessions_change_no_flow(plain):
    assert compiled(variant(disabled))["esx1"] == plain


def test_mirroring_follows_the_vm_after_vmotion():
    moved = compiled(placement={"jumpbox-eth0": Placement("esx2", JUMPBOX)})
    # esx2 now mirrors jumpbox by ERSPAN; the local session's sniffer is on
    # esx1, so (as on vSphere) the local copies stop.
    out = summary(trace(moved["esx2"], Frame(JUMPBOX, WEB_MAC, eth_src=JUMPBOX_MAC)))
    uplink = [o for o in out if o[0] != ERSPAN]
    assert len(uplink) == 1 and uplink[0][:2] in ((1, 20), (2, 20)), out  # to web, tagged
    assert erspan_copy() in out and len(out) == 2
    back = summary(trace(moved["esx2"], Frame(1, JUMPBOX_MAC, eth_src=WEB_MAC, vlan=20)))
    assert back == sorted([(JUMPBOX, None, None, None, None), erspan_copy()])
    # esx1 no longer copies jumpbox, but still web's GRE session.
    out1 = summary(trace(moved["esx1"], Frame(WEB, JUMPBOX_MAC, eth_src=WEB_MAC)))
    assert [o[0] for o in out1 if o[0] in (ERSPAN, SNIFFER)] == [] and GRE_COPY in out1


def test_copies_go_before_ct_and_resubmit_and_replay_the_vlan_changes():
    lab = parse_lab(copy.deepcopy(DATA))
    b = switch_bindings(lab)[0]
    flows = [
        # a DFW-style ingress: the VM's frame tagged, then tracked
        FlowSpec.make(
            Table.INGRESS,
            300,
            {"in_port": JUMPBOX},
            (("push_vlan", 0x8100), ("set_field", "vlan_vid", 0x1014), ("ct", False, 1, Table.DFW_FROM_VM)),
        ),
        # delivery after a verdict
        FlowSpec.make(
            Table.DFW_TO_VM_CT, 2000, {"reg0": JUMPBOX}, (("ct", True, 1, None), ("output", JUMPBOX))
        ),
        # an output behind a resubmit: the copy goes first, with the pop
        FlowSpec.make(
            Table.FORWARD, 300, {"in_port": 1}, (("resubmit", 7), ("pop_vlan",), ("output", JUMPBOX))
        ),
    ]
    out = mirror.add_copies(flows, b, lab)
    first, delivered, behind = out[0].actions, out[1].actions, out[2].actions
    assert [a[0] for a in first] == ["clone", "clone", "push_vlan", "set_field", "ct"]
    assert first[0][1][-1] == ("output", ERSPAN) and first[1][1] == (("output", SNIFFER),)
    assert [a[0] for a in delivered] == ["clone", "clone", "ct", "output"]
    assert [a[0] for a in behind] == ["clone", "clone", "resubmit", "pop_vlan", "output"]
    assert behind[0][1][0] == ("pop_vlan",) and behind[1][1] == (("pop_vlan",), ("output", SNIFFER))


def test_with_the_distributed_firewall_copies_precede_every_ct_and_resubmit():
    data = copy.deepcopy(DATA)
    data["distributed_firewall"] = {"default_action": "allow"}
    flows = compiled(data)["esx1"]
    copied = [f for f in flows if any(a[0] == "clone" for a in f.actions)]
    assert copied
    for f in copied:
        kinds = [a[0] for a in f.actions]
        barrier = next((i for i, k in enumerate(kinds) if k in ("ct", "resubmit")), len(kinds))
        assert all(i < barrier for i, k in enumerate(kinds) if k == "clone"), f


def test_clone_and_truncating_output_serialize_as_ovs_expects():
    from os_ken.ofproto import ofproto_v1_3 as ofp
    from os_ken.ofproto import ofproto_v1_3_parser as parser

    action = ofdriver._action(
        ofp, parser, ("clone", (("set_field", "tun_ipv4_dst", MONITOR), ("output_trunc", GRE, 128)))
    )
    buf = bytearray()
    action.serialize(buf, 0)
    # experimenter action, Nicira, subtype NXAST_CLONE (42), 6 pad bytes
    assert buf[:2] == b"\xff\xff" and int.from_bytes(buf[2:4], "big") == len(buf)
    assert buf[4:8] == bytes.fromhex("00002320") and int.from_bytes(buf[8:10], "big") == 42
    assert buf[10:16] == bytes(6) and len(buf) % 8 == 0
    # the nested truncating output: NXAST_OUTPUT_TRUNC (39), port, max_len
    assert buf[-16:-6] == bytes.fromhex("ffff0010000023200027")
    assert int.from_bytes(buf[-6:-4], "big") == GRE and int.from_bytes(buf[-4:], "big") == 128


def test_monitor_decoder_reads_erspan_and_gre_headers():
    """experiments.erspan_capture.decapsulate against frames scapy builds."""
    from scapy.layers.inet import IP
    from scapy.layers.l2 import GRE, Dot1Q, Ether

    from experiments.erspan_capture import decapsulate

    inner = bytes(Ether(src=JUMPBOX_MAC, dst=WEB_MAC) / IP() / (b"x" * 10))
    erspan_header = bytes.fromhex("10000001") + bytes(4)  # type II, VLAN 0, session 1
    f1 = bytes(
        Ether()
        / Dot1Q(vlan=10)
        / IP(src="10.2.0.11", dst=MONITOR)
        / GRE(proto=0x88BE, seqnum_present=1, sequence_number=7)
        / (erspan_header + inner)
    )
    f2 = bytes(
        Ether() / IP(src="10.2.0.12", dst=MONITOR) / GRE(proto=0x6558, key_present=1, key=2) / inner[:40]
    )
    d1, d2 = decapsulate(f1), decapsulate(f2)
    assert (d1["kind"], d1["session"], d1["version"], d1["vlan"], d1["inner"]) == ("erspan", 1, 1, 10, inner)
    assert (d2["kind"], d2["session"], d2["vlan"], d2["outer_src"], d2["inner"]) == (
        "gre",
        2,
        None,
        "10.2.0.12",
        inner[:40],
    )
    assert decapsulate(bytes(Ether() / IP(proto=17) / b"not gre")) is None


VMK0, VMNIC1 = 100, 2  # esx1's vmk0 (Management, VLAN 10); vmnic1 = dvUplink2


def with_session(session: dict):
    def edit(dvs):
        dvs["mirrors"] = [session]

    return compiled(variant(edit))["esx1"]


def test_a_vmk_source_is_copied_as_it_sends_and_receives():
    """vSphere mirrors a VMkernel adapter's distributed port like a vNIC's:
    what it sends (before the switch tags it) and what it receives (after
    the tag is taken off)."""
    flows = with_session(
        {
            "name": "vmk",
            "type": "local",
            "sources": [{"host": "esx1", "vmk": "vmk0"}],
            "destination_vnics": [{"vm": "sniffer"}],
        }
    )
    sent = Frame(VMK0, "00:50:56:99:00:01", eth_src=_vmk0_mac())
    assert (SNIFFER, None, None, None, None) in summary(trace(flows, sent))
    received = Frame(1, _vmk0_mac(), eth_src="00:50:56:99:00:01", vlan=10)
    assert summary(trace(flows, received)) == sorted(
        [(VMK0, None, None, None, None), (SNIFFER, None, None, None, None)]
    )


def _vmk0_mac() -> str:
    lab = parse_lab(copy.deepcopy(DATA))
    b = next(b for b in switch_bindings(lab) if b.host == "esx1")
    return next(p.mac for p in b.ports if p.name == "vmk0")


def _rspan_from_web(direction: str, **extra) -> dict:
    """An RSPAN session mirroring web in ``direction`` to dvUplink2 (vmnic1) in VLAN 999."""
    return {
        "name": "rspan",
        "type": "rspan",
        "sources": [{"vm": "web", "direction": direction}],
        "destination_uplinks": ["dvUplink2"],
        "encapsulation_vlan": 999,
        **extra,
    }


@pytest.mark.parametrize("preserve, inner", [(False, None), (True, 20)])
def test_rspan_copies_leave_by_the_destination_uplink_in_the_rspan_vlan(preserve, inner):
    """Remote Mirroring Source: the copy leaves by dvUplink2 (vmnic1 here)
    tagged with the encapsulation VLAN; with "preserve original VLAN" the
    port group's tag (20) stays inside it."""
    flows = with_session(_rspan_from_web("ingress", preserve_original_vlan=preserve))
    outs = trace(flows, Frame(WEB, "00:50:56:99:00:01", eth_src=WEB_MAC))
    copies = [(o.port, o.frame.vlan, o.frame.vlan_inner) for o in outs if o.frame.vlan == 999]
    assert copies == [(VMNIC1, 999, inner)]
    # The frame itself still leaves once, in VLAN 20, by web's own uplink.
    assert [(o.frame.vlan, o.frame.vlan_inner) for o in outs if o.frame.vlan != 999] == [(20, None)]


def test_rspan_copy_of_a_frame_that_came_in_by_the_destination_uplink_goes_back_out_of_it():
    """web receives from dvUplink2 (vmnic1), the session's destination: the
    copy still leaves by vmnic1 (OpenFlow would drop an output to the
    packet's in_port, so the copy forgets it)."""
    flows = with_session(_rspan_from_web("egress"))
    outs = trace(flows, Frame(VMNIC1, WEB_MAC, eth_src="00:50:56:99:00:01", vlan=20))
    assert sorted((o.port, o.frame.vlan) for o in outs) == [(VMNIC1, 999), (WEB, None)]


def test_a_snap_length_cuts_an_erspan_copy_after_the_tag_it_carries_to_the_uplink():
    """The uplink's tc program takes the port group's tag out of an ERSPAN
    copy (into the header), so the bridge cuts 4 bytes later: the monitor
    gets the mirrored packet length. GRE copies carry no tag."""
    flows = with_session(
        {
            "name": "e",
            "type": "erspan",
            "sources": [{"vm": "jumpbox", "direction": "ingress"}],
            "destination_ip": MONITOR,
            "snap_length": 128,
        }
    )
    outs = trace(flows, Frame(JUMPBOX, WEB_MAC, eth_src=JUMPBOX_MAC))
    assert [(o.frame.vlan, o.max_len) for o in outs if o.port == ERSPAN] == [(20, 132)]


def test_erspan_type_iii_copies_leave_by_the_port_of_their_direction():
    """ERSPAN type III's header says whether the copy is of a frame the
    source sent (D=0) or received (D=1): the two leave by the two type III
    tunnel ports."""
    flows = with_session(
        {
            "name": "e3",
            "type": "erspan",
            "encapsulation": "erspan3",
            "sources": [{"vm": "jumpbox"}],
            "destination_ip": MONITOR,
        }
    )
    ingress, egress = mirror_tunnel("erspan3-in").ofport, mirror_tunnel("erspan3-out").ofport
    sent = trace(flows, Frame(JUMPBOX, WEB_MAC, eth_src=JUMPBOX_MAC))
    assert sorted(o.port for o in sent) == sorted([WEB, ingress])
    received = trace(flows, Frame(WEB, JUMPBOX_MAC, eth_src=WEB_MAC))
    assert sorted(o.port for o in received) == sorted([JUMPBOX, egress])
    assert {o.frame.tun_ipv4_dst for o in sent + received if o.port in (ingress, egress)} == {MONITOR}

"""Port mirroring sessions beyond a vNIC source and ERSPAN type II, on real
OVS (tests/integration/labs/mirror-sources.yaml): a VMkernel adapter as a
source (Distributed Port Mirroring to a capture VM), a Remote Mirroring
Source (RSPAN) session to an analyser on the physical switch's RSPAN VLAN,
and ERSPAN type III with its direction bit. Every count is of the pings the
test itself sent, finished before the captures stop."""

from pathlib import Path

import pytest

from experiments.common import lab_session, read_pcap
from experiments.erspan_capture import decapsulated

LAB = Path(__file__).resolve().parent / "labs" / "mirror-sources.yaml"
PINGS = 5
VMK0, GW_MGMT, GW_VM, A, B = "10.2.0.11", "10.2.0.1", "10.2.2.1", "10.2.2.10", "10.2.2.20"


@pytest.fixture(scope="module")
def lab():
    with lab_session(LAB) as net:
        yield net


def ping(net, node: str, dst: str) -> None:
    out = net.node(node).cmd(f"ping -n -q -c {PINGS} -i 0.2 -W 1 {dst}")
    assert f"{PINGS} received" in out, out


def echoes(frames, src: str, dst: str) -> dict[str, int]:
    """Echo requests from ``src`` to ``dst`` and the replies back."""
    from scapy.layers.inet import ICMP, IP

    out = {"requests": 0, "replies": 0}
    for f in frames:
        if IP not in f or ICMP not in f:
            continue
        if (f[IP].src, f[IP].dst, f[ICMP].type) == (src, dst, 8):
            out["requests"] += 1
        elif (f[IP].src, f[IP].dst, f[ICMP].type) == (dst, src, 0):
            out["replies"] += 1
    return out


def tags(frame) -> list[int]:
    from scapy.layers.l2 import Dot1Q

    out, layer = [], frame
    while Dot1Q in layer:
        layer = layer[Dot1Q]
        out.append(layer.vlan)
        layer = layer.payload
    return out


def test_a_vmk_is_mirrored_to_the_capture_vm_both_ways(lab, tmp_path):
    """vSphere: a VMkernel adapter's distributed port is a source like any
    other. The capture VM gets the gateway's pings to vmk0 (what the switch
    delivers to vmk0) and vmk0's replies (what vmk0 sends), untagged, as the
    vmk sees them."""
    cap = lab.control.tcpdump("wireshark", "eth0", tmp_path / "ws.pcap", "icmp", ["-Q", "in"])
    try:
        ping(lab, "gw", VMK0)
    finally:
        frames = read_pcap(cap.stop())
    assert echoes(frames, GW_MGMT, VMK0) == {"requests": PINGS, "replies": PINGS}
    assert {
        tuple(tags(f)) for f in frames if echoes([f], GW_MGMT, VMK0) != {"requests": 0, "replies": 0}
    } == {()}


def test_rspan_copies_cross_the_physical_switch_in_the_rspan_vlan(lab, tmp_path):
    """Remote Mirroring Source: a's frames leave esx1 by dvUplink2 (vmnic1)
    tagged 999 over their own VLAN 20 tag (preserve original VLAN), and the
    physical switch, which floods VLAN 999 (rspan_vlans), delivers them to
    the analyser's access port with the inner tag. b is not a source: none
    of its frames arrive."""
    ctl = lab.control
    wire = ctl.capture(tmp_path / "vmnic1.pcap", uplink=("esx1", "vmnic1"), direction="tx", bpf="vlan 999")
    analyser = ctl.tcpdump("analyser", "eth0", tmp_path / "analyser.pcap", "", ["-Q", "in"])
    try:
        ping(lab, "a", GW_VM)
        ping(lab, "b", GW_VM)
    finally:
        at_analyser = read_pcap(analyser.stop())
        on_wire = read_pcap(wire.stop())
    both = {"requests": PINGS, "replies": PINGS}
    assert echoes(on_wire, A, GW_VM) == both
    assert {tuple(tags(f)) for f in on_wire if "ICMP" in f} == {(999, 20)}
    assert echoes(at_analyser, A, GW_VM) == both
    assert {tuple(tags(f)) for f in at_analyser if "ICMP" in f} == {(20,)}
    assert echoes(at_analyser, B, GW_VM) == {"requests": 0, "replies": 0}


def test_erspan_type_iii_copies_say_their_direction_and_vlan(lab, tmp_path):
    """ERSPAN type III (GRE protocol 0x22EB, version 2), session 3, from
    esx1's vmk0: b's echo requests are copies of what b sent (D bit 0,
    ingress), the replies of what b received (D bit 1, egress). The header's
    original-VLAN field is 0: OVS cannot write it (vlab check warns)."""
    from scapy.layers.l2 import Ether

    cap = lab.control.tcpdump("monitor", "eth0", tmp_path / "monitor.pcap", "ip proto 47", ["-Q", "in"])
    try:
        ping(lab, "b", GW_VM)
    finally:
        copies = [d for d in decapsulated(cap.stop()) if d["kind"] == "erspan"]
    assert {(d["version"], d["session"], d["outer_src"], d["header_vlan"]) for d in copies} == {
        (2, 3, VMK0, 20)
    }
    assert {tuple(tags(Ether(d["inner"]))) for d in copies} == {()}
    by_direction = {
        way: echoes([Ether(d["inner"]) for d in copies if d["direction"] == way], B, GW_VM)
        for way in ("ingress", "egress")
    }
    assert by_direction == {
        "ingress": {"requests": PINGS, "replies": 0},
        "egress": {"requests": 0, "replies": PINGS},
    }

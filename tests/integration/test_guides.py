"""The teaching guides walked as a student walks them (``tests.guides``):
every command block of an exercise typed at the lab CLI in order, against
the guide's lab, and what the guide's "What to look for" promises checked
in what the student sees. A guide whose commands stop working, or whose
promises stop holding, fails here.

Between blocks the student lets the background pings of the last one end
(the guides say to wait; within a block they say ``NODE wait`` where one
job must end before the next), so every capture counts only the traffic its
own exercise started. A guide's servers keep running (``Walk(servers=)``).
Where a guide says to give the testbed a moment (a guest's MAC change
reaching hostd), the walk waits for exactly that (``block(..., after=)``)."""

from __future__ import annotations

from pathlib import Path

from experiments.common import lab_session
from experiments.nsx_packet_walk import OVERLAY_LAB, VLAN_LAB
from experiments.reverse_teaming import PROMISC_LAB, SPAN_LAB
from experiments.vmk_egress import CASES as VMK_LABS
from experiments.vswitch_nuggets import LAB as NUGGETS_LAB
from tests.guides import Student, blocks
from tests.transcripts import printed_frames
from vlab.waiting import wait_for

SEED002 = "seed-002-reverse-teaming"
SEED004 = "seed-004-nsx-packet-walk"
SEED000 = "seed-000-vmk-egress"
SEED001 = "seed-001-vswitch-nuggets"
SEED003 = "seed-003-stretched-dci"
VM11, VM12 = "00:50:56:9d:43:42", "00:50:56:9d:fd:b1"


class Walk:
    """A student working through the blocks of one lab, waiting for a block's
    background commands to end before the next block."""

    def __init__(self, net, capfd, tmp=None, servers=()):
        self.net, self.student, self.background = net, Student(net, capfd), set()
        self.tmp = tmp  # where the guide's /tmp/ files go (the test's own directory)
        self.servers = set(servers)  # nodes whose background job is a server the guide keeps running

    def block(self, lines, learn=None, after=None) -> list[str]:
        """What the student sees after each line; ``learn(line, output)``
        gives the placeholders an output fills in for the lines after it;
        ``after[i]()`` runs once line ``i`` has (the moment the guide lets
        pass before the next line, waited for as a condition)."""
        for node in sorted(self.background - self.servers):
            self.net.node(node).cmd("wait")  # the last block's pings have ended
        self.background &= self.servers
        seen, fill = [], {}
        for line in lines:
            for placeholder, value in fill.items():
                line = line.replace(placeholder, str(value))
            if self.tmp is not None:
                line = line.replace("/tmp/", f"{self.tmp}/")
            if line.rstrip().endswith("&"):
                self.background.add(line.split()[0])
            seen.append(self.student.type(line))
            if learn is not None:
                fill.update(learn(line, seen[-1]))
            if after and len(seen) - 1 in after:
                after[len(seen) - 1]()
        return seen

    def close(self):
        for node in sorted(self.background):
            # A block that failed half-way may leave a capture running.
            self.net.node(node).cmd("kill $(jobs -p) 2>/dev/null; wait")
        self.student.close()


def _frames(out: str) -> list[tuple[int | None, bytes]]:
    """(VLAN tag, frame) of every frame a pktcap-uw printed."""
    lines = out.splitlines()
    return [
        (int(lines[i].split("VLAN tag ")[1].split(",")[0]) if "VLAN tag" in lines[i] else None, frame)
        for i, _n, _c, _p, frame in printed_frames(lines)
    ]


def _macs(frame: bytes) -> tuple[str, str]:
    return tuple(":".join(f"{b:02x}" for b in frame[o : o + 6]) for o in (6, 0))  # (src, dst)


def _world_id(out: str, vm: str) -> int:
    return next(int(x.split()[0]) for x in out.splitlines()[2:] if x.split()[1:2] == [vm])


def _icmp(frame: bytes) -> tuple[str, int]:
    """(source IP, ICMP type) of an untagged or tagged IPv4 ICMP frame."""
    ip = frame[18:] if frame[12:14] == b"\x81\x00" else frame[14:]
    return ".".join(str(b) for b in ip[12:16]), ip[20]


def test_seed002_guide(capfd):
    walk = {b.exercise: b.lines for b in blocks(SEED002)}
    assert sorted(walk) == [1, 2, 3, 4, 5, 6], "the guide's exercises changed: update this walk"
    with lab_session(SPAN_LAB) as net:
        w = Walk(net, capfd)
        try:
            # 1. vm12 on port 33554632 (port 200) pinned to vmnic2; vm11 on esx2's 33554633, vmnic3.
            def world_ids(line: str, out: str) -> dict:
                if not line.endswith("esxcli network vm list"):
                    return {}
                return {
                    f"WORLD_ID_OF_{vm.upper()}": _world_id(out, vm) for vm in ("vm11", "vm12") if vm in out
                }

            stats, _, port12, _, port11 = w.block(walk[1], world_ids)
            assert any(x.split()[0] == "33554632" and x.endswith("vm12.eth0") for x in stats.splitlines())
            assert "Team Uplink: vmnic2" in port12 and "Port ID: 33554632" in port12, port12
            assert "Team Uplink: vmnic3" in port11 and "Port ID: 33554633" in port11, port11
            # 2. three echo requests vm11 -> vm12 at each uplink, VLAN 100, 98 bytes.
            _, at2, at3 = w.block(walk[2])
            for out in (at2, at3):
                frames = _frames(out)
                assert len(frames) == 3 and out.count("Captured at EtherswitchDispath point") == 3, out
                assert all(v == 100 and _macs(f) == (VM11, VM12) for v, f in frames), out
                assert all("VLAN tag 100, length 98." in x for x in out.splitlines() if "Captured at" in x)
            # 3. PortOutput: each request twice in a row, tagged; VnicRx: once, untagged; no DUP!.
            _, po, rx, ping = w.block(walk[3])
            po_frames, rx_frames = _frames(po), _frames(rx)
            assert len(po_frames) == 6 and all(v == 100 for v, _ in po_frames), po
            assert [f for _, f in po_frames[0::2]] == [f for _, f in po_frames[1::2]], po
            assert len(rx_frames) == 3 and all(v is None for v, _ in rx_frames), rx
            assert "5 packets transmitted, 5 received" in ping and "DUP!" not in ping, ping
        finally:
            w.close()
    with lab_session(PROMISC_LAB) as net:
        w = Walk(net, capfd)
        try:
            # 4. spy sees a1 <-> a2 (same host): requests and replies.
            out = w.block(walk[4])
            stats, spy = out[0], out[-1]
            ports = {x.split()[-1]: int(x.split()[0]) & 0xFFFFFF for x in stats.splitlines()[1:] if x.strip()}
            assert (ports["spy.eth0"], ports["a1.eth0"], ports["a2.eth0"]) == (200, 201, 202), stats
            kinds = {_icmp(f) for _, f in _frames(spy)}
            assert ("192.168.100.1", 8) in kinds and ("192.168.100.2", 0) in kinds, spy
            # 5. b1 -> a1: spy sees only a1's replies (the requests come in on a1's vmnic3).
            (_, spy) = w.block(walk[5])
            kinds = {_icmp(f) for _, f in _frames(spy)}
            assert kinds == {("192.168.100.1", 0)}, spy
            # 6. b1 -> a2 (spy's uplink): requests and replies; b1 -> b2: nothing.
            _, to_a2, _, _, to_b2 = w.block(walk[6])
            kinds = {_icmp(f) for _, f in _frames(to_a2)}
            assert kinds == {("192.168.100.3", 8), ("192.168.100.2", 0)}, to_a2
            assert _frames(to_b2) == [], to_b2
        finally:
            w.close()


# -- seed 004 ----------------------------------------------------------------------
VM1, VM2, VM4 = "00:50:56:a1:00:01", "00:50:56:a1:00:02", "00:50:56:a1:00:04"
VMAC = "02:50:56:56:44:52"  # the distributed router's
RESULTS_LABS = OVERLAY_LAB.parents[1] / "results" / "nsx-packet-walk" / "labs"


def _pcap(path):
    """(kind, fields) of each ARP or IPv4 frame in a pcap the student wrote:
    ("arp", op, who-has/is-at address, source MAC, VLAN), ("icmp", type, ttl,
    source MAC, destination MAC, VLAN, source IP, destination IP), ("vxlan",
    vni, outer src IP, outer dst IP, outer src MAC, outer dst MAC, VLAN, inner
    src MAC, inner dst MAC, inner src IP); ("other", summary) for the rest."""
    from scapy.layers.inet import ICMP, IP, UDP
    from scapy.layers.l2 import ARP, Dot1Q, Ether
    from scapy.layers.vxlan import VXLAN
    from scapy.utils import rdpcap

    out = []
    for f in rdpcap(str(path)):
        vlan = f[Dot1Q].vlan if f.haslayer(Dot1Q) else None
        if f.haslayer(VXLAN):
            inner = f[VXLAN].payload
            out.append(
                (
                    "vxlan",
                    f[VXLAN].vni,
                    f[IP].src,
                    f[IP].dst,
                    f[Ether].src,
                    f[Ether].dst,
                    vlan,
                    inner.src,
                    inner.dst,
                    inner[IP].src if inner.haslayer(IP) else None,
                )
            )
        elif f.haslayer(ARP):
            a = f[ARP]
            out.append(("arp", a.op, a.pdst if a.op == 1 else a.psrc, f.src, vlan))
        elif f.haslayer(ICMP) and not f.haslayer(UDP):
            out.append(("icmp", f[ICMP].type, f[IP].ttl, f.src, f.dst, vlan, f[IP].src, f[IP].dst))
        else:
            out.append(("other", f.summary()))  # so a check of "only these" sees it
    return out


def _grouped(guide: str) -> dict[int, list[tuple[str, ...]]]:
    out: dict[int, list[tuple[str, ...]]] = {}
    for b in blocks(guide):
        out.setdefault(b.exercise, []).append(b.lines)
    return out


def _count(out: str) -> int:
    """What ``... | grep -c`` printed last."""
    return int(out.strip().splitlines()[-1])


def test_seed004_guide(capfd, tmp_path):
    walk = _grouped(SEED004)
    assert {n: len(b) for n, b in walk.items()} == {1: 2, 2: 1, 3: 2, 4: 1, 5: 1}, "update this walk"

    def world_ids(line: str, out: str) -> dict:
        if not line.endswith("esxcli network vm list"):
            return {}
        return {"WORLD_ID_OF_VM1": _world_id(out, "vm1")}

    with lab_session(VLAN_LAB) as net:
        w = Walk(net, capfd, tmp_path)
        try:
            # 1. The walk at esx1's vmnic0, both directions, in the seed's order.
            out = w.block(walk[1][0], world_ids)
            assert "Team Uplink: vmnic0" in out[1], out[1]
            assert "1 received" in out[6], out[6]
            assert "Dumped 5 packet to file" in out[7], out[7]
            frames = _pcap(tmp_path / "e1.pcap")
            assert len(frames) == 5, frames
            (a1, a2, req, a3, rep) = frames
            rtr10 = a2[3]
            assert a1 == ("arp", 1, "10.1.1.1", VM1, 10), a1
            assert a2 == ("arp", 2, "10.1.1.1", rtr10, 10) and rtr10 not in (VM1, VM4), a2
            assert req == ("icmp", 8, 64, VM1, rtr10, 10, "10.1.1.11", "10.1.2.14"), req
            assert a3[:3] == ("arp", 1, "10.1.2.14") and a3[4] == 20 and a3[3] not in (VM1, VM4), a3
            assert rep == ("icmp", 0, 63, rtr10, VM1, 10, "10.1.2.14", "10.1.1.11"), rep
            assert "ttl 63" in out[9] and "ttl 64" in out[9], out[9]
            at_vm4 = _pcap(tmp_path / "e1-vm4.pcap")
            assert ("arp", 1, "10.1.2.14", a3[3], None) in at_vm4, at_vm4  # VnicRx: untagged
            assert ("icmp", 8, 63, a3[3], VM4, None, "10.1.1.11", "10.1.2.14") in at_vm4, at_vm4
            # 1b. A routed packet between two VMs of esx1 enters the physical network twice.
            out = w.block(walk[1][1])
            assert "20 received" in out[1], out[1]
            assert _count(out[3]) == 40, out[3]
        finally:
            w.close()
    with lab_session(OVERLAY_LAB) as net:
        w = Walk(net, capfd, tmp_path)
        try:
            # 2. The controller's tables as text; VTEP to VTEP on VLAN 200, VNI 5001.
            tables, top, *_ = w.block(walk[2][0])
            assert "# show control-cluster logical-switches vtep-table 5001" in tables, tables
            vtep_macs = {
                x.split()[1]: x.split()[3] for x in tables.splitlines() if x.startswith("5001  172.")
            }
            assert set(vtep_macs) == {"172.16.200.11", "172.16.200.12", "172.16.201.13", "172.16.201.14"}
            assert any(
                x.split()[:2] == ["5001", VM2] and x.split()[2] == "172.16.200.12"
                for x in tables.splitlines()
            )
            assert any(x.split()[:3] == ["5001", "10.1.1.12", VM2] for x in tables.splitlines()), tables
            vmk3 = next(x.split() for x in top.splitlines() if " vmk3 " in f" {x} ")
            assert vmk3[2] == "vmnic0", top
            frames = _pcap(tmp_path / "e2.pcap")
            mac11, mac12 = vtep_macs["172.16.200.11"], vtep_macs["172.16.200.12"]
            assert (
                frames
                == [
                    (
                        "vxlan",
                        5001,
                        "172.16.200.11",
                        "172.16.200.12",
                        mac11,
                        mac12,
                        200,
                        VM1,
                        VM2,
                        "10.1.1.11",
                    )
                ]
                * 3
            ), frames
            # 3. ARP suppression: vm1 gets vm2's MAC, vm2 sees no ARP, no ARP is encapsulated.
            out = w.block(walk[3][0])
            assert VM2 in out[4], out[4]
            assert _pcap(tmp_path / "e3.pcap") == []
            wire = _pcap(tmp_path / "e3-wire.pcap")
            assert [f[0] for f in wire] == ["vxlan"] and wire[0][9] == "10.1.1.11", wire
        finally:
            w.close()
    with lab_session(RESULTS_LABS / "nsx-overlay-no-arp-suppression.yaml") as net:
        w = Walk(net, capfd, tmp_path)
        try:
            # 3b. Without suppression: 4 copies of the request, at 3 capture points 2 + 1 + 1.
            out = w.block(walk[3][1])
            assert [_count(x) for x in out[-3:]] == [2, 1, 1], out[-3:]
        finally:
            w.close()
    with lab_session(OVERLAY_LAB) as net:
        w = Walk(net, capfd, tmp_path)
        try:
            # 4. The distributed router: same host stays on esx1; vm4 as VNI 5002 with the vMAC.
            out = w.block(walk[4][0])
            assert "3 received" in out[1] and "ttl=63" in out[1], out[1]
            assert "3 received" in out[2] and "ttl=63" in out[2], out[2]
            frames = _pcap(tmp_path / "e4.pcap")
            assert not any("10.1.2.13" in map(str, f) for f in frames), frames
            tunnelled = [f for f in frames if f[0] == "vxlan"]
            requests = [f for f in tunnelled if f[1] == 5002]
            replies = [f for f in tunnelled if f[1] == 5001]
            assert len(requests) == 3 and len(replies) == 3 and len(tunnelled) == 6, frames
            assert all(
                f[2:4] == ("172.16.200.11", "172.16.200.12") and f[7:9] == (VMAC, VM4) for f in requests
            )
            assert all(
                f[2:4] == ("172.16.200.12", "172.16.200.11") and f[7:9] == (VMAC, VM1) for f in replies
            )
            assert all(f[0] == "arp" for f in frames if f[0] != "vxlan"), frames  # only the underlay's ARP
        finally:
            w.close()
    with lab_session(RESULTS_LABS / "nsx-overlay-mtu1500.yaml") as net:
        w = Walk(net, capfd, tmp_path)
        try:
            # 5. A 1500-byte transport: ping and 1422-byte payloads pass, 1423 do not, bulk TCP stalls.
            _, small, fits, too_big, bulk, _ = w.block(walk[5][0])
            assert " 0% packet loss" in small and " 0% packet loss" in fits, (small, fits)
            assert "3 packets transmitted, 0 received" in too_big, too_big
            assert "iperf Done." not in bulk and "0.00 Bytes" in bulk, bulk
        finally:
            w.close()


# -- seed 000 ----------------------------------------------------------------------
def _read(out: str) -> dict:
    """The JSON line an nbd read printed."""
    import json

    return json.loads(next(x for x in out.splitlines() if x.startswith("{")))


def _segments(out: str) -> list[str]:
    """tcpdump's lines of frames from the NBD server's port."""
    return [x for x in out.splitlines() if "172.17.4.102.902 >" in x]


def _esxtop_last(out: str) -> dict[str, dict[str, float]]:
    """USED-BY -> column -> value of the last screen esxtop printed."""
    lines = out.splitlines()
    head = max(i for i, x in enumerate(lines) if x.split()[:2] == ["PORT-ID", "USED-BY"])
    columns = lines[head].split()
    rows = {}
    for x in lines[head + 1 :]:
        words = x.split()
        if len(words) != len(columns):
            break
        rows[words[1]] = {c: float(v) for c, v in zip(columns, words) if c.endswith("/s")}
    return rows


def test_seed000_guide(capfd, tmp_path):
    walk = {b.exercise: b.lines for b in blocks(SEED000)}
    assert sorted(walk) == [1, 2, 3, 4, 5, 6], "the guide's exercises changed: update this walk"
    with lab_session(VMK_LABS["A"]) as net:
        w = Walk(net, capfd, tmp_path, servers={"esx1"})
        try:
            # 1. One vmk; the backup subnet is routed through 172.17.4.1.
            interfaces, ipv4, _, route = w.block(walk[1])
            assert "Name: vmk0" in interfaces and "vmk4" not in interfaces, interfaces
            assert "defaultTcpipStack" in interfaces and "172.17.4.102" in ipv4, ipv4
            assert "via 172.17.4.1 dev vmk0" in route, route
            # 2. The disk data leaves by vmnic0 on VLAN 4, none by vmnic2; ~10 Mbit/s (1 GbE scaled).
            out = w.block(walk[2])
            assert "Dumped 5 packet" in out[2], out[2]
            assert len(_segments(out[3])) == 5 and all("vlan 4," in x for x in _segments(out[3])), out[3]
            assert "Dumped 0 packet" in out[4], out[4]
            a = _read(out[5])
            assert a["intact"] and a["end"] == "eof" and a["mbps"] < 12, a  # 1 GbE = 10 Mbit/s here
        finally:
            w.close()
    with lab_session(VMK_LABS["B"]) as net:
        w = Walk(net, capfd, tmp_path, servers={"esx1"})
        try:
            # 3. A connected route on vmk4: chosen by destination, the source address kept.
            interfaces, _, routes, route = w.block(walk[3])
            assert "Name: vmk4" in interfaces and "172.17.28.0" in routes, routes
            assert "dev vmk4" in route and "172.17.4.102" in route, route
            vmk4_mac = interfaces.split("Name: vmk4")[1].split("MAC Address: ")[1].split()[0]
            # 4. The replies leave by vmnic3 on VLAN 28, vmk4's MAC to rubrik1's, switched; ~10x A.
            out = w.block(walk[4])
            assert "Dumped 5 packet" in out[2] and "Dumped 0 packet" in out[4], (out[2], out[4])
            rubrik1_mac = out[5].split("link/ether ")[1].split()[0]
            segments = _segments(out[3])
            assert len(segments) == 5, out[3]
            assert all(
                x.split()[1:4] == [vmk4_mac, ">", f"{rubrik1_mac},"] and "vlan 28," in x for x in segments
            )
            b = _read(out[6])
            assert b["intact"] and b["end"] == "eof" and b["mbps"] > 5 * a["mbps"], (a, b)  # the 10 GbE path
            # 5. The ACKs come back through the router on vmnic0: one per two segments, with quickack one each
            out = w.block(walk[5])
            acks = [x for x in out[2].splitlines() if "> 172.17.4.102.902:" in x]
            assert len(acks) == 5 and all("vlan 4," in x and "Flags [.]" in x for x in acks), out[2]
            assert all(x.split()[1] != rubrik1_mac for x in acks), acks  # from the router's MAC
            delayed, quick = _esxtop_last(out[3]), _esxtop_last(out[7])
            for top in (delayed, quick):
                assert top["vmk4"]["PKTTX/s"] > 100 and top["vmk0"]["PKTRX/s"] > 0, top
            # Delayed ACKs: one per two full-size segments (0.5); quickack: one each (1.0).
            assert delayed["vmk0"]["PKTRX/s"] / delayed["vmk4"]["PKTTX/s"] < 0.75, delayed
            assert quick["vmk0"]["PKTRX/s"] / quick["vmk4"]["PKTTX/s"] > 0.75, quick
        finally:
            w.close()
    with lab_session(VMK_LABS["src"]) as net:
        w = Walk(net, capfd, tmp_path, servers={"esx1"})
        try:
            # 6. Source-based egress: back on vmk0 and vmnic0, at the 1 GbE rate.
            rules, route, _, _, at0, at3, result = w.block(walk[6])
            assert "from 172.17.4.102" in rules and "via 172.17.4.1 dev vmk0" in route, (rules, route)
            assert "Dumped 5 packet" in at0 and "Dumped 0 packet" in at3, (at0, at3)
            src = _read(result)
            assert src["intact"] and src["mbps"] < 12, src
        finally:
            w.close()


# -- seed 001 ----------------------------------------------------------------------
def _dumped(out: str) -> dict[str, int]:
    """File name -> frames, from every "Dumped N packet to file F" the output holds."""
    import re

    return {Path(m[2]).name: int(m[1]) for m in re.finditer(r"Dumped (\d+) packet to file (\S+),", out)}


def _gaps(out: str) -> dict[str, list[float]]:
    """The awk's gaps: file name (or "" for one file) -> gaps in seconds."""
    gaps: dict[str, list[float]] = {}
    for x in out.splitlines():
        words = x.split()
        if "gap" in words:
            i = words.index("gap")
            gaps.setdefault(Path(words[0]).name if i else "", []).append(float(words[i + 1]))
    return gaps


def test_seed001_guide(capfd, tmp_path):
    walk = {b.exercise: b.lines for b in blocks(SEED001)}
    assert sorted(walk) == [1, 2, 3, 4, 5, 6], "the guide's exercises changed: update this walk"
    with lab_session(NUGGETS_LAB) as net:
        ctl = net.control
        w = Walk(net, capfd, tmp_path, servers=set())

        def noticed(port: str, **want):
            """The wait the guide asks for: hostd has reported the guest's change."""
            return lambda: ctl.wait_guest(port, lambda g: all(g.get(k) == v for k, v in want.items()))

        try:
            # 1. No MAC learning: all 20 frames to an unknown MAC leave by strict's vmnic0, nowhere else.
            out = w.block(walk[1])
            top = {
                x.split()[1]: x.split()[2]
                for x in out[0].splitlines()
                if x.split()[1:2] in (["strict"], ["open"])
            }
            assert top == {"strict": "vmnic0", "open": "vmnic1"}, out[0]
            assert _dumped(out[5]) == {"unk-open.pcap": 0, "unk-vmnic0.pcap": 20, "unk-vmnic1.pcap": 0}, out[
                5
            ]
            # 2. MAC changes: reject delivers nothing to strict's new MAC, accept all to open's;
            #    forged transmits: strict's 20 dropped, open's 20 out by vmnic1.
            out = w.block(
                walk[2],
                after={
                    0: noticed("strict-eth0", effective_mac="00:50:56:77:77:77"),
                    4: noticed("strict-eth0", effective_mac="00:50:56:01:00:11"),
                    5: noticed("open-eth0", effective_mac="00:50:56:77:77:77"),
                    9: noticed("open-eth0", effective_mac="00:50:56:01:00:12"),
                },
            )
            assert _dumped(out[3]) == {"mac-strict.pcap": 0}, out[3]
            assert _dumped(out[8]) == {"mac-open.pcap": 20}, out[8]
            assert _dumped(out[15]) == {
                "forged-drops.pcap": 20,
                "forged-strict.pcap": 0,
                "forged-open.pcap": 20,
            }, out[15]
            # 3. The 32:1 overlap: m2's vNIC gets 239.1.1.1's stream, its kernel drops it; m3 nothing.
            out = w.block(walk[3])
            caps = _dumped(out[5])
            assert caps["mc-m2.pcap"] > 0 and caps["mc-m3.pcap"] == 0, out[5]
            lines = {
                Path(x.split()[1]).name: int(x.split()[0])
                for x in out[8].splitlines()
                if x.strip().endswith(".txt")
            }
            assert lines["m1.txt"] > 0 and lines["m2.txt"] == 0, out[8]
            # 4. Promiscuous mode: 0 of strict's requests at spy before, 20 after.
            out = w.block(walk[4], after={3: noticed("spy-eth0", promiscuous=True)})
            assert _dumped(out[2]) == {"spy-off.pcap": 0} and _dumped(out[6]) == {"spy-on.pcap": 20}, out
            # 5. After vMotion the quiet VM with notify switches loses about the stun; without, until aging.
            out = w.block(walk[5])
            gaps = _gaps(out[-1])
            assert max(gaps.get("q1.txt", [0.0])) < 1.0, out[-1]  # the 100 ms stun, and the RARP
            # MAC aging 15 s, less the moments between quiet2's ping and its move (and OVS's 1 s aging steps).
            assert 5.0 < max(gaps["q2.txt"]) < 16.0, out[-1]
            # 6. The spoofed query from 0.0.0.0 to 224.0.0.1; the group is back within its 2 s max response.
            out = w.block(walk[6])
            assert max(_gaps(out[-2]).get("", [0.0])) < 2.0 + 1.0, out[-2]  # max response + stun and slack
            assert "0.0.0.0 > 224.0.0.1" in out[-1], out[-1]
        finally:
            w.close()


# -- seed 003 ----------------------------------------------------------------------
REPO = NUGGETS_LAB.parents[1]
VMSC_LABS = REPO / "results" / "vmsc-asymmetry" / "labs"
REPLY = 2048  # the guide's hold --reply


def _listening(net, node: str, port: int):
    """The moment the guide lets pass after starting a server: it listens."""
    return lambda: wait_for(
        lambda: f":{port} " in net.node(node).cmd("ss -ltnH"), 10, f"{node} listening on {port}"
    )


def _first_ok(path: Path):
    """The guide moves vm1 once the held connection has made a request."""
    return lambda: wait_for(
        lambda: path.exists() and "ok" in path.read_text().split(), 10, "the first held request"
    )


def _rx_bytes(out: str) -> int:
    lines = out.splitlines()
    return int(lines[lines.index(next(x for x in lines if x.strip().startswith("RX:"))) + 1].split()[0])


def _hold_walk(w: Walk, lines, hold: Path, serve: bool) -> tuple[list[str], list[str], int]:
    """A hold-vMotion block: (its outputs, the held connection's results, DCI RX bytes during it)."""
    at = 1 if serve else 0  # the hold line
    hold.unlink(missing_ok=True)  # the last lab's, which its shell may truncate only after the line returns
    after = {at: _first_ok(hold)}
    if serve:
        after[0] = _listening(w.net, "vm1", 8080)
    out = w.block(lines, after=after)
    results = out[at + 4].split()[-12:]
    return out, results, _rx_bytes(out[at + 5]) - _rx_bytes(out[at + 2])


def test_seed003_guide(capfd, tmp_path):
    walk = _grouped(SEED003)
    assert {n: len(b) for n, b in walk.items()} == {1: 1, 2: 1, 3: 2, 4: 2}, "update this walk"
    hold = tmp_path / "hold.txt"
    with lab_session(REPO / "labs" / "vmsc.yaml") as net:
        w = Walk(net, capfd, tmp_path, servers={"vm1", "vm2"})
        try:
            # 1. vm1 answers through fw1; vm2's SYN-ACK leaves by fw2, which drops it as invalid.
            out = w.block(
                walk[1][0], after={0: _listening(net, "vm1", 8080), 1: _listening(net, "vm2", 8080)}
            )
            assert out[2].split() == ["ok"] and out[3].split() == ["TimeoutError"], out[2:4]
            invalid = next(x for x in out[4].splitlines() if 'comment "invalid"' in x)
            assert int(invalid.split("packets ")[1].split()[0]) > 0, out[4]
            assert any(
                "SYN_SENT" in x and "dst=10.10.10.12" in x and "[UNREPLIED]" in x for x in out[5].splitlines()
            )
            # 2. Local egress and perimeter firewalls: the held connection breaks at the move, a new one too.
            out, results, _ = _hold_walk(w, walk[2][0], hold, serve=False)
            assert results[0] == "ok" and results[-1] == "TimeoutError", results
            assert out[6].split() == ["TimeoutError"], out[6]
        finally:
            w.close()
    dci = {}
    for design, lines in (("perimeter-trombone", walk[3][0]), ("dfw-local", walk[3][1])):
        with lab_session(VMSC_LABS / f"{design}.yaml") as net:
            w = Walk(net, capfd, tmp_path, servers={"vm1"})
            try:
                # 3. Both keep every request and take new connections; only the trombone's replies cross.
                out, results, dci[design] = _hold_walk(w, lines, hold, serve=True)
                assert results == ["ok"] * 12, (design, results)
                assert out[-1].split() == ["ok"], (design, out[-1])
            finally:
                w.close()
    # Requests after the move: 12 at 0.5 s from the first ok, the move taking under 3 s even on a
    # busy machine, so at least 12 - 7 = 5 of them.
    moved = 5
    assert dci["perimeter-trombone"] > moved * REPLY, dci  # each reply crosses back to DC1
    assert dci["dfw-local"] < REPLY, dci  # none does
    for lab, lines, dfw in (
        (REPO / "labs" / "microseg.yaml", walk[4][0], False),
        (REPO / "results" / "microsegmentation" / "labs" / "with-dfw.yaml", walk[4][1], True),
    ):
        with lab_session(lab) as net:
            w = Walk(net, capfd, tmp_path, servers={"web", "db"})
            try:
                # 4. Without the DFW the attacker finds web:80 open; with it everything is filtered.
                out = w.block(lines, after={0: _listening(net, "web", 80), 1: _listening(net, "db", 3306)})
                ports = {x.split("/")[0]: x.split()[1] for x in out[2].splitlines() if "/tcp" in x}
                if not dfw:
                    assert ports == {"22": "closed", "80": "open", "443": "closed", "3306": "closed"}, out[2]
                else:
                    assert set(ports.values()) == {"filtered"} and len(ports) == 4, out[2]
                    assert [x.split()[-1] for x in out[3:6]] == ["ok", "ok", "TimeoutError"], out[3:6]
            finally:
                w.close()

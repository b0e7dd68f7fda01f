"""The teaching guides walked as a student walks them (``tests.guides``):
every command block of an exercise typed at the lab CLI in order, against
the guide's lab, and what the guide's "What to look for" promises checked
in what the student sees. A guide whose commands stop working, or whose
promises stop holding, fails here.

Between blocks the student lets the background pings of the last one end
(the guides say to wait, or to run one ping at a time), so every capture
counts only the traffic its own exercise started."""

from __future__ import annotations

from experiments.common import lab_session
from experiments.reverse_teaming import PROMISC_LAB, SPAN_LAB
from tests.guides import Student, blocks
from tests.transcripts import printed_frames

SEED002 = "seed-002-reverse-teaming"
VM11, VM12 = "00:50:56:9d:43:42", "00:50:56:9d:fd:b1"


class Walk:
    """A student working through the blocks of one lab, waiting for a block's
    background commands to end before the next block."""

    def __init__(self, net, capfd):
        self.net, self.student, self.background = net, Student(net, capfd), set()

    def block(self, lines, learn=None) -> list[str]:
        """What the student sees after each line; ``learn(line, output)``
        gives the placeholders an output fills in for the lines after it."""
        for node in sorted(self.background):
            self.net.node(node).cmd("wait")  # the last block's pings have ended
        self.background.clear()
        seen, fill = [], {}
        for line in lines:
            for placeholder, value in fill.items():
                line = line.replace(placeholder, str(value))
            if line.rstrip().endswith("&"):
                node = line.split()[0]
                self.net.node(node).cmd("wait")  # one ping at a time
                self.background.add(node)
            seen.append(self.student.type(line))
            if learn is not None:
                fill.update(learn(line, seen[-1]))
        return seen

    def close(self):
        for node in sorted(self.background):
            self.net.node(node).cmd("wait")
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
            _, to_a2, _, to_b2 = w.block(walk[6])
            kinds = {_icmp(f) for _, f in _frames(to_a2)}
            assert kinds == {("192.168.100.3", 8), ("192.168.100.2", 0)}, to_a2
            assert _frames(to_b2) == [], to_b2
        finally:
            w.close()

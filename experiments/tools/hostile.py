"""A hostile guest: send a seeded stream of malformed and misleading Ethernet
frames from inside a VM (scapy), the way a compromised or broken guest OS
would, to show that the vSwitch pipeline, the physical network and the
controller's packet-in path (NSX IP discovery) survive it.

    python -m experiments.tools.hostile --iface eth0 --seed 7 --count 1000 \\
        --src MAC --ip IP [--peer MAC,IP ...]

Each frame is one of eight kinds, drawn by ``random.Random(seed)`` with equal
weights:

* ``truncated``      an Ethernet, IPv4, UDP or ARP header cut at a random offset
* ``bad_length``     IPv4 total length, IHL or UDP length that lie
* ``odd_ethertype``  random, 0x0000, 0xffff, nested 802.1Q/802.1ad tags, LLC lengths
* ``arp``            wrong hwlen/plen, op 0/99, sender MAC not the source MAC,
                     sender 0.0.0.0, broadcast/multicast IPs, gratuitous ARP
                     claiming a peer's IP
* ``igmp``           bad checksum, unknown types, v3 reports with absurd counts
* ``dhcp``           UDP 67 -> 68 "ACK"s: garbage options, bad message types,
                     a peer's chaddr
* ``vxlan``          UDP 4789 without the I flag, reserved bits set, a cut
                     header, a garbage inner frame
* ``random``         random bytes, 1..1600 long

Exactly half of the frames (chosen by the same generator) carry the VM's own
source MAC, so they pass a vSwitch's forged-transmit check and reach the
pipeline; the rest use a peer's MAC, a random, multicast or zero MAC.
``--peer`` names the other VMs whose MACs and IPs the frames may claim
(default: made-up neighbours of ``--src``/``--ip``).

``hostile_frames(seed, count, src_mac, src_ip)`` is pure: the same arguments
give the same list of frames, byte for byte. The sender prints one JSON line:
frames per kind, how many the kernel refused (a frame longer than the MTU;
frames shorter than an Ethernet header are zero-padded to 60 bytes by scapy,
counted as ``padded``) and a SHA-256 over the generated frames.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import ipaddress
import json
import random
import sys
from dataclasses import dataclass
from typing import Callable, Sequence

from scapy.contrib.igmp import IGMP
from scapy.contrib.igmpv3 import IGMPv3, IGMPv3gr, IGMPv3mq, IGMPv3mr
from scapy.layers.dhcp import BOOTP
from scapy.layers.inet import IP, UDP, IPOption_Router_Alert
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.packet import Raw

KINDS = ("truncated", "bad_length", "odd_ethertype", "arp", "igmp", "dhcp", "vxlan", "random")
BROADCAST = "ff:ff:ff:ff:ff:ff"
DHCP_COOKIE = b"\x63\x82\x53\x63"
ETH_HLEN = 14
VXLAN_PORT = 4789


@dataclass(frozen=True)
class Peer:
    """Another VM whose addresses a hostile frame may claim."""

    mac: str
    ip: str


@dataclass(frozen=True)
class Frame:
    kind: str
    own_src: bool  # carries the sending VM's own source MAC
    data: bytes


class _Ctx:
    """The generator's state: one ``random.Random`` and the addresses it may use."""

    def __init__(self, seed: int, src_mac: str, src_ip: str, peers: Sequence[Peer]):
        self.rng = random.Random(seed)
        self.mac, self.ip = src_mac.lower(), src_ip
        net = ipaddress.IPv4Interface(f"{src_ip}/24").network
        if not peers:  # made-up neighbours: same /24, MAC's last byte changed
            last = int(self.mac[-2:], 16)
            peers = [
                Peer(
                    f"{self.mac[:-2]}{(last + i) % 256:02x}",
                    str(net[(int(ipaddress.IPv4Address(src_ip)) + i) % 254 + 1]),
                )
                for i in (1, 2, 3)
            ]
        self.peers = list(peers)
        self.net = net

    # -- addresses ---------------------------------------------------------
    def rand_mac(self, multicast: bool = False) -> str:
        b = bytearray(self.rng.randbytes(6))
        b[0] = (b[0] | 1) if multicast else (b[0] & 0xFE)
        return ":".join(f"{x:02x}" for x in b)

    def other_src(self) -> str:
        """A source MAC that is not the VM's own."""
        r = self.rng.random()
        if r < 0.4:
            return self.rng.choice(self.peers).mac
        if r < 0.8:
            return self.rand_mac()
        return self.rng.choice([BROADCAST, "00:00:00:00:00:00", self.rand_mac(multicast=True)])

    def dst(self) -> str:
        return self.rng.choice(
            [
                BROADCAST,
                BROADCAST,
                self.rng.choice(self.peers).mac,
                self.rand_mac(),
                self.rand_mac(multicast=True),
                "01:00:5e:00:00:01",
                "01:80:c2:00:00:00",
                "00:00:00:00:00:00",
            ]
        )

    def peer_ip(self) -> str:
        return self.rng.choice(self.peers).ip

    def near_ip(self) -> str:
        """An address in the VM's own /24."""
        return str(self.net[self.rng.randrange(1, 255)])

    def any_ip(self) -> str:
        return self.rng.choice(
            [
                self.peer_ip(),
                self.near_ip(),
                "0.0.0.0",
                "255.255.255.255",
                "224.0.0.1",
                f"239.{self.rng.randrange(256)}.0.1",
                str(ipaddress.IPv4Address(self.rng.getrandbits(32))),
                "127.0.0.1",
                self.ip,
            ]
        )

    def payload(self, lo: int = 0, hi: int = 64) -> bytes:
        return self.rng.randbytes(self.rng.randint(lo, hi))


def _udp(c: _Ctx, src: str, dport: int | None = None) -> bytes:
    return bytes(
        Ether(src=src, dst=c.dst())
        / IP(src=c.ip, dst=c.any_ip(), ttl=64)
        / UDP(sport=c.rng.randrange(1, 65536), dport=dport or c.rng.randrange(1, 65536))
        / Raw(c.payload(8, 64))
    )


# -- one builder per kind: (context, source MAC) -> frame ----------------------
def truncated(c: _Ctx, src: str) -> bytes:
    layer = c.rng.choice(["ethernet", "ipv4", "udp", "arp"])
    if layer == "arp":
        full = bytes(Ether(src=src, dst=BROADCAST) / ARP(op=1, hwsrc=src, psrc=c.ip, pdst=c.peer_ip()))
        return full[: c.rng.randrange(ETH_HLEN, ETH_HLEN + 28)]
    full = _udp(c, src)
    lo, hi = {
        "ethernet": (1, ETH_HLEN),
        "ipv4": (ETH_HLEN, ETH_HLEN + 20),
        "udp": (ETH_HLEN + 20, ETH_HLEN + 28),
    }[layer]
    return full[: c.rng.randrange(lo, hi)]


def bad_length(c: _Ctx, src: str) -> bytes:
    body = c.payload(0, 200)
    real_ip, real_udp = 28 + len(body), 8 + len(body)
    lie = c.rng.choice(["ip_len", "ihl", "udp_len", "all"])
    ip_kw, udp_kw = {}, {}
    if lie in ("ip_len", "all"):
        ip_kw["len"] = c.rng.choice(
            [
                0,
                c.rng.randrange(1, 20),
                real_ip + c.rng.randrange(1, 1500),
                65535,
                max(20, real_ip - c.rng.randrange(1, 9)),
            ]
        )
    if lie in ("ihl", "all"):
        ip_kw["ihl"] = c.rng.choice([0, 1, 4, 6, 15, c.rng.randrange(16)])
    if lie in ("udp_len", "all"):
        udp_kw["len"] = c.rng.choice([0, c.rng.randrange(1, 8), real_udp + c.rng.randrange(1, 1500), 65535])
    return bytes(
        Ether(src=src, dst=c.dst())
        / IP(src=c.ip, dst=c.any_ip(), **ip_kw)
        / UDP(sport=c.rng.randrange(1, 65536), dport=c.rng.randrange(1, 65536), **udp_kw)
        / Raw(body)
    )


def odd_ethertype(c: _Ctx, src: str) -> bytes:
    case = c.rng.choice(["random", "zero", "ffff", "nested_vlan", "llc"])
    dst = c.dst()
    if case in ("random", "zero", "ffff"):
        etype = {"random": c.rng.randrange(0x0600, 0x10000), "zero": 0x0000, "ffff": 0xFFFF}[case]
        return bytes(Ether(src=src, dst=dst, type=etype) / Raw(c.payload(0, 100)))
    if case == "nested_vlan":
        frame = Ether(src=src, dst=dst, type=c.rng.choice([0x8100, 0x88A8, 0x9100]))
        for _ in range(c.rng.randint(2, 5)):
            tag = c.rng.choice([Dot1Q, Dot1AD])
            frame = frame / tag(
                vlan=c.rng.choice([0, 1, 10, 20, 100, 4095, c.rng.randrange(4096)]),
                prio=c.rng.randrange(8),
                dei=c.rng.randrange(2),
            )
        inner = c.rng.choice(["ip", "arp", "cut", "raw"])
        if inner == "ip":
            frame = frame / IP(src=c.ip, dst=c.peer_ip()) / UDP(sport=9, dport=9) / Raw(c.payload())
        elif inner == "arp":
            frame = frame / ARP(op=2, hwsrc=src, psrc=c.peer_ip(), hwdst=BROADCAST, pdst=c.peer_ip())
        data = bytes(frame if inner != "raw" else frame / Raw(c.payload()))
        return data[: c.rng.randrange(ETH_HLEN + 2, len(data) + 1)] if inner == "cut" else data
    # IEEE 802.3 length field (< 0x600), usually not the real length, + LLC/SNAP
    llc = c.rng.choice(
        [
            bytes([0xAA, 0xAA, 0x03]) + c.rng.randbytes(5),  # SNAP
            bytes([0x42, 0x42, 0x03]) + c.rng.randbytes(35),  # STP-like
            c.rng.randbytes(3),
        ]
    )
    body = llc + c.payload(0, 80)
    length = c.rng.choice([0, len(body), c.rng.randrange(0x600), 1500, 0x5FF])
    return bytes(Ether(src=src, dst=dst, type=length) / Raw(body))


def arp(c: _Ctx, src: str) -> bytes:
    case = c.rng.choice(["lengths", "op", "sender_mac", "zero_sender", "bcast_mcast", "gratuitous"])
    hwsrc, op = src, c.rng.choice([1, 2])
    psrc, pdst, dst = c.ip, c.peer_ip(), BROADCAST
    if case == "op":
        op = c.rng.choice([0, 99, 3, 4, 255, 65535])
    elif case == "sender_mac":
        hwsrc = c.rng.choice(
            [
                c.rand_mac(),
                c.rng.choice(c.peers).mac,
                BROADCAST,
                "00:00:00:00:00:00",
                c.rand_mac(multicast=True),
            ]
        )
        if hwsrc.lower() == src.lower():
            hwsrc = c.rand_mac()
    elif case == "zero_sender":
        psrc = "0.0.0.0"
    elif case == "bcast_mcast":
        psrc = c.rng.choice(["255.255.255.255", "224.0.0.1", "239.1.1.1", c.near_ip()])
        pdst = c.rng.choice(["255.255.255.255", "224.0.0.251", str(c.net.broadcast_address)])
    elif case == "gratuitous":
        # "I am <peer>": a peer's IP as sender and target, to everyone or to the peer
        psrc = pdst = c.peer_ip()
        dst = c.rng.choice([BROADCAST, c.rng.choice(c.peers).mac])
    data = bytearray(
        bytes(
            Ether(src=src, dst=dst)
            / ARP(
                op=op, hwsrc=hwsrc, psrc=psrc, hwdst=c.rng.choice(["00:00:00:00:00:00", BROADCAST]), pdst=pdst
            )
        )
    )
    if case == "lengths":  # hwlen / plen lie about the addresses that follow
        data[ETH_HLEN + 4] = c.rng.choice([0, 1, 5, 7, 16, 255])
        data[ETH_HLEN + 5] = c.rng.choice([0, 3, 4, 6, 16, 255])
        if c.rng.random() < 0.5:
            data[ETH_HLEN : ETH_HLEN + 2] = c.rng.choice([b"\x00\x00", b"\x00\x06", b"\xff\xff"])
    return bytes(data) + c.payload(0, 16)


def igmp(c: _Ctx, src: str) -> bytes:
    group = c.rng.choice(
        [
            "224.0.0.1",
            "224.0.0.22",
            "239.1.1.1",
            "239.129.1.1",
            f"239.{c.rng.randrange(256)}.{c.rng.randrange(256)}.1",
            "0.0.0.0",
            "10.0.0.1",
        ]
    )
    ip = IP(
        src=c.rng.choice([c.ip, "0.0.0.0", c.peer_ip()]),
        dst=c.rng.choice(["224.0.0.1", "224.0.0.22", "224.0.0.2", group]),
        ttl=1,
        proto=2,
        options=[IPOption_Router_Alert()],
    )
    mac = c.rng.choice(["01:00:5e:00:00:01", "01:00:5e:00:00:16", BROADCAST, c.dst()])
    case = c.rng.choice(["checksum", "type", "v3_counts"])
    if case == "checksum":
        msg = IGMP(
            type=c.rng.choice([0x11, 0x16, 0x17, 0x12]),
            mrcode=c.rng.randrange(256),
            gaddr=group,
            chksum=c.rng.randrange(65536),
        )
    elif case == "type":
        msg = IGMP(
            type=c.rng.choice([0x00, 0x13, 0x14, 0x18, 0x1E, 0x1F, 0x30, 0xFF, c.rng.randrange(256)]),
            mrcode=c.rng.randrange(256),
            gaddr=group,
        )
    else:
        records = [
            IGMPv3gr(
                rtype=c.rng.choice([1, 2, 3, 4, 5, 6, 0, 7, 255]),
                auxdlen=c.rng.choice([0, 0, 255]),
                numsrc=c.rng.choice([0, 1, 255, 65535]),
                maddr=group,
                srcaddrs=[c.any_ip() for _ in range(c.rng.randrange(3))],
            )
            for _ in range(c.rng.randrange(3))
        ]
        if c.rng.random() < 0.7:
            msg = IGMPv3(type=0x22) / IGMPv3mr(numgrp=c.rng.choice([0, 255, 1000, 65535]), records=records)
        else:
            msg = IGMPv3(type=0x11, mrcode=c.rng.randrange(256)) / IGMPv3mq(
                gaddr=group, numsrc=c.rng.choice([0, 65535]), srcaddrs=[c.any_ip()]
            )
        if c.rng.random() < 0.5:
            msg.chksum = c.rng.randrange(65536)
    return bytes(Ether(src=src, dst=mac) / ip / msg)


def _dhcp_options(c: _Ctx) -> bytes:
    """The DHCP option area after the magic cookie: a lie in some TLV."""
    case = c.rng.choice(["random", "overrun", "no_end", "bad_type", "zero_len", "ack"])
    if case == "random":
        return c.payload(0, 120)
    if case == "overrun":  # an option longer than what follows
        return bytes([53, 1, 5, c.rng.randrange(1, 255), 200]) + c.payload(0, 20)
    if case == "no_end":
        return bytes([53, 1, 5, 54, 4]) + c.rng.randbytes(4) + bytes([51, 4]) + c.rng.randbytes(4)
    if case == "bad_type":
        return bytes([53, 1, c.rng.choice([0, 9, 99, 255])]) + bytes([255])
    if case == "zero_len":
        return bytes([53, 0, 53, 3, 5, 5, 5, 1, 0, 255])
    return bytes([53, 1, 5, 54, 4]) + c.rng.randbytes(4) + bytes([51, 4, 0, 0, 14, 16, 255])


def dhcp(c: _Ctx, src: str) -> bytes:
    peer = c.rng.choice(c.peers)
    chaddr_mac = c.rng.choice([peer.mac, peer.mac, c.mac, c.rand_mac(), BROADCAST])
    chaddr = bytes.fromhex(chaddr_mac.replace(":", "")) + c.rng.choice([bytes(10), c.rng.randbytes(10)])
    yiaddr = c.rng.choice([c.near_ip(), peer.ip, c.any_ip()])
    cookie = DHCP_COOKIE if c.rng.random() < 0.8 else c.rng.randbytes(4)
    bootp = BOOTP(
        op=c.rng.choice([2, 2, 1, 0, 255]),
        hlen=c.rng.choice([6, 6, 0, 16, 255]),
        xid=c.rng.getrandbits(32),
        yiaddr=yiaddr,
        siaddr=c.ip,
        chaddr=chaddr,
        options=cookie + _dhcp_options(c),
    )
    return bytes(
        Ether(src=src, dst=c.rng.choice([BROADCAST, peer.mac]))
        / IP(src=c.ip, dst=c.rng.choice(["255.255.255.255", yiaddr]))
        / UDP(sport=67, dport=68)
        / bootp
    )


def vxlan(c: _Ctx, src: str) -> bytes:
    case = c.rng.choice(["no_i_flag", "reserved", "truncated", "inner_garbage"])
    flags, res1, res2 = 0x08, 0, 0
    vni = c.rng.choice([0, 5001, 5002, c.rng.randrange(1 << 24), (1 << 24) - 1])
    if case == "no_i_flag":
        flags = c.rng.choice([0x00, 0x80, 0x04, 0xF7])
    elif case == "reserved":
        flags, res1, res2 = 0x08 | c.rng.randrange(256), c.rng.randrange(1, 1 << 24), c.rng.randrange(256)
    header = bytes([flags]) + res1.to_bytes(3, "big") + vni.to_bytes(3, "big") + bytes([res2])
    if case == "truncated":
        header, inner = header[: c.rng.randrange(8)], b""
    elif case == "inner_garbage":
        inner = c.rng.choice(
            [
                c.payload(0, 100),
                bytes(
                    Ether(src=c.rand_mac(), dst=BROADCAST)
                    / ARP(op=2, hwsrc=c.rng.choice(c.peers).mac, psrc=c.peer_ip(), pdst=c.peer_ip())
                )[: c.rng.randrange(1, 42)],
            ]
        )
    else:
        inner = bytes(
            Ether(src=c.rng.choice(c.peers).mac, dst=BROADCAST)
            / ARP(op=1, hwsrc=c.rng.choice(c.peers).mac, psrc=c.peer_ip(), pdst=c.peer_ip())
        )
    return bytes(
        Ether(src=src, dst=c.dst())
        / IP(src=c.ip, dst=c.any_ip())
        / UDP(sport=c.rng.randrange(49152, 65536), dport=VXLAN_PORT)
        / Raw(header + inner)
    )


def random_bytes(c: _Ctx, src: str) -> bytes:
    data = bytearray(c.rng.randbytes(c.rng.randint(1, 1600)))
    if len(data) >= 12:
        data[6:12] = bytes.fromhex(src.replace(":", ""))
    return bytes(data)


BUILDERS: dict[str, Callable[[_Ctx, str], bytes]] = {
    "truncated": truncated,
    "bad_length": bad_length,
    "odd_ethertype": odd_ethertype,
    "arp": arp,
    "igmp": igmp,
    "dhcp": dhcp,
    "vxlan": vxlan,
    "random": random_bytes,
}


def generate(seed: int, count: int, src_mac: str, src_ip: str, peers: Sequence[Peer] = ()) -> list[Frame]:
    """The frames with their kind and whether they carry the VM's own MAC."""
    c = _Ctx(seed, src_mac, src_ip, peers)
    own = [i < (count + 1) // 2 for i in range(count)]
    c.rng.shuffle(own)
    frames = []
    for mine in own:
        kind = c.rng.choice(KINDS)
        src = c.mac if mine else c.other_src()
        frames.append(Frame(kind, mine, BUILDERS[kind](c, src)))
    return frames


def hostile_frames(
    seed: int, count: int, src_mac: str, src_ip: str, peers: Sequence[Peer] = ()
) -> list[bytes]:
    """``count`` hostile frames; identical for identical arguments."""
    return [f.data for f in generate(seed, count, src_mac, src_ip, peers)]


def digest(frames: Sequence[bytes]) -> str:
    h = hashlib.sha256()
    for f in frames:
        h.update(len(f).to_bytes(4, "big") + f)
    return h.hexdigest()


def send(iface: str, frames: Sequence[Frame]) -> dict:
    """Send every frame with scapy's ``sendp`` on one socket; a frame the
    kernel refuses (longer than the MTU) is counted, not fatal."""
    from scapy.config import conf
    from scapy.sendrecv import sendp

    sent = {k: 0 for k in KINDS}
    refused = {k: 0 for k in KINDS}
    errors: dict[str, int] = {}
    padded = 0
    sock = conf.L2socket(iface=iface)
    try:
        for f in frames:
            try:
                sendp(Raw(f.data), socket=sock, verbose=False)
            except OSError as exc:
                refused[f.kind] += 1
                name = errno.errorcode.get(exc.errno, str(exc.errno))
                errors[name] = errors.get(name, 0) + 1
                continue
            sent[f.kind] += 1
            padded += len(f.data) < ETH_HLEN
    finally:
        sock.close()
    return {"sent": sent, "refused": refused, "errors": errors, "padded": padded}


def _peer(text: str) -> Peer:
    mac, _, ip = text.partition(",")
    ipaddress.IPv4Address(ip)
    return Peer(mac.lower(), ip)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.tools.hostile")
    p.add_argument("--iface", default="eth0")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--src", required=True, help="the VM's own MAC")
    p.add_argument("--ip", required=True, help="the VM's own IPv4 address")
    p.add_argument(
        "--peer",
        type=_peer,
        action="append",
        default=[],
        metavar="MAC,IP",
        help="another VM whose addresses frames may claim (repeatable)",
    )
    a = p.parse_args(argv)
    frames = generate(a.seed, a.count, a.src, a.ip, a.peer)
    summary = {
        "seed": a.seed,
        "count": a.count,
        "iface": a.iface,
        "own_src": sum(f.own_src for f in frames),
        "kinds": {k: sum(f.kind == k for f in frames) for k in KINDS},
        "sha256": digest([f.data for f in frames]),
        **send(a.iface, frames),
    }
    print(json.dumps(summary, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

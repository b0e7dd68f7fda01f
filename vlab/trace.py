"""``vlab trace``: why did my frame not arrive?

A frame is given as fields (``--dst vm2 --tcp 80``) or taken from a pcap,
entering one vSwitch port of one ESXi host. Without a running lab the
frame walks the bridge the controller would compile from the lab file
(``controller.explain``: every stage, and each drop's reason in ESXi/NSX
terms). On a running lab (``--run`` / ``--live``) the controller's current
view is rebuilt from the run's control files (placement, guests' NIC state,
uplinks down, DFW sessions, captures, snooped addresses), and the frame is
also traced by the host's own OVS (``ovs-appctl ofproto/trace``), whose
tables, cookies and priorities are read back as stage, concern and band
names; when OVS and the simulator disagree on where the frame goes, the
trace says so instead of choosing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Optional

from controller.pipeline import CONCERN_NAMES, STAGES, band_label, concern_of
from controller.simulate import CT_EST, CT_INV, CT_NEW, CT_REL, CT_RPL, CT_TRK, TCP_ACK, TCP_SYN, Frame
from vlab import naming
from vlab.bindings import GuestNic, SwitchBinding
from vlab.lab.resolve import vteps
from vlab.protocols import (
    ARP_REQUEST,
    ETH_ARP,
    ETH_IPV4,
    ETH_LOCAL_EXPERIMENTAL,
    IPPROTO_ICMP,
    IPPROTO_TCP,
    IPPROTO_UDP,
)

BROADCAST = "ff:ff:ff:ff:ff:ff"
OUTSIDE_MAC = "00:50:56:ff:ff:fe"  # a frame from the physical network, by default
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


class TraceError(ValueError):
    """A frame or port the trace cannot take (exit code 2)."""


# -- the frame ----------------------------------------------------------------
def _endpoints(lab) -> dict[str, tuple[str, Optional[str]]]:
    """Every name a user may give for an endpoint -> (MAC, IPv4 or None):
    VM names (their first vNIC), vNIC port names, VMkernel adapters as
    HOST/vmkN and their port names."""
    from vlab.bindings import vmk_mac

    out: dict[str, tuple[str, Optional[str]]] = {}
    for vm in lab.vms:
        for i, nic in enumerate(vm.vnics):
            entry = (nic.mac.lower(), str(nic.ip.ip) if nic.ip else None)
            out[naming.vnic_port(vm.name, nic.name)] = entry
            if i == 0:
                out[vm.name] = entry
    for host in lab.esxi_hosts:
        for vmk in host.vmkernel:
            entry = ((vmk.mac or vmk_mac(host.name, vmk.name)).lower(), str(vmk.ip.ip))
            out[f"{host.name}/{vmk.name}"] = entry
    return out


def _mac_of(lab, name: str, what: str) -> tuple[str, Optional[str]]:
    if name.lower() in ("broadcast", "bcast"):
        return BROADCAST, None
    if _MAC.match(name):
        return name.lower(), None
    endpoints = _endpoints(lab)
    if name not in endpoints:
        raise TraceError(
            f"{what} {name!r} is not a MAC, 'broadcast', a VM, a vNIC port or HOST/vmkN of the lab"
        )
    return endpoints[name]


def build_frame(
    lab,
    binding: SwitchBinding,
    port: str,
    *,
    dst: str = "broadcast",
    src: Optional[str] = None,
    vlan: Optional[int] = None,
    arp: Optional[str] = None,
    ip_src: Optional[str] = None,
    ip_dst: Optional[str] = None,
    tcp: Optional[int] = None,
    udp: Optional[int] = None,
    icmp: bool = False,
    sport: int = 40000,
    syn_ack: bool = False,
    ttl: int = 64,
    vni: Optional[int] = None,
    tun_src: Optional[str] = None,
) -> Frame:
    """The frame a user describes, entering ``binding`` at ``port``. The
    source MAC and IP default to the port's own (a vNIC's or vmk's). A frame
    entering by the VXLAN tunnel port is the inner frame, as decapsulation
    leaves it: with its VNI and the sending VTEP's address (default: the
    first other VTEP of the lab)."""
    p = next((q for q in binding.ports if q.name == port), None)
    if p is None:
        raise TraceError(f"{binding.host} has no port {port!r} on {binding.bridge}")
    tunnel = _tunnel_metadata(lab, binding, p, vni, tun_src)
    own_mac, own_ip = OUTSIDE_MAC, None
    if p.mac is not None:
        own_mac = p.mac.lower()
        known = _endpoints(lab)
        own_ip = known.get(port, (None, None))[1] or known.get(f"{binding.host}/{port}", (None, None))[1]
    _in_range(vlan, 0, 4094, "--vlan")
    _in_range(tcp, 0, 65535, "--tcp")
    _in_range(udp, 0, 65535, "--udp")
    _in_range(sport, 0, 65535, "--sport")
    _in_range(ttl, 0, 255, "--ttl")
    eth_src = _mac_of(lab, src, "--src")[0] if src else own_mac
    eth_dst, dst_ip = _mac_of(lab, "broadcast" if arp and dst == "broadcast" else dst, "--dst")
    # With no L3 asked for, a plain Ethernet frame of the IEEE local
    # experimental ethertype: no firewall or router stage takes it for IP.
    fields: dict = {
        "eth_src": eth_src,
        "eth_dst": eth_dst,
        "vlan": vlan,
        "ttl": ttl,
        "eth_type": ETH_LOCAL_EXPERIMENTAL,
    }
    src_ip = ip_src or own_ip
    if arp is not None:
        if src_ip is None:
            raise TraceError("--arp needs --ip-src (the port has no IP of its own)")
        fields.update(
            eth_type=ETH_ARP,
            arp_op=ARP_REQUEST,
            arp_sha=eth_src,
            arp_spa=_ip(src_ip, "--ip-src"),
            arp_tha="00:00:00:00:00:00",
            arp_tpa=_ip(arp, "--arp"),
        )
        return Frame(p.ofport, **fields, **tunnel)
    if sum(x is not None and x is not False for x in (tcp, udp, icmp or None)) > 1:
        raise TraceError("give one of --tcp, --udp, --icmp")
    target = ip_dst or dst_ip
    if tcp is not None or udp is not None or icmp or ip_dst:
        if target is None or src_ip is None:
            raise TraceError(
                "an IP frame needs --ip-dst (or a --dst with an IP) and --ip-src (or a port with an IP)"
            )
        fields.update(eth_type=ETH_IPV4, ipv4_src=_ip(src_ip, "--ip-src"), ipv4_dst=_ip(target, "--ip-dst"))
        if tcp is not None:
            fields.update(
                ip_proto=IPPROTO_TCP,
                tcp_src=sport,
                tcp_dst=tcp,
                tcp_flags=TCP_SYN | TCP_ACK if syn_ack else TCP_SYN,
            )
        elif udp is not None:
            fields.update(ip_proto=IPPROTO_UDP, udp_src=sport, udp_dst=udp)
        else:
            fields.update(ip_proto=IPPROTO_ICMP)
    return Frame(p.ofport, **fields, **tunnel)


def _tunnel_metadata(lab, binding: SwitchBinding, p, vni: Optional[int], tun_src: Optional[str]) -> dict:
    """``tunnel_id`` and ``tun_ipv4_src`` of a frame from the tunnel port."""
    if p.kind != "tunnel":
        if vni is not None or tun_src is not None:
            raise TraceError(f"--vni and --tun-src are for frames from the tunnel port, not {p.name}")
        return {}
    segments = ", ".join(f"{ls.name} {ls.vni}" for ls in lab.nsx.logical_switches)
    if vni is None:
        raise TraceError(
            f"a frame from {p.name} carries a VNI: give --vni (the lab's logical switches: {segments})"
        )
    _in_range(vni, 1, (1 << 24) - 1, "--vni")
    if tun_src is None:
        others = [v for h, v in vteps(lab).items() if h != binding.host]
        if not others:
            raise TraceError("no other VTEP in the lab to send from: give --tun-src")
        tun_src = str(others[0].ip.ip)
    return {"tunnel_id": vni, "tun_ipv4_src": _ip(tun_src, "--tun-src")}


def _in_range(value: Optional[int], low: int, high: int, what: str) -> None:
    if value is not None and not low <= value <= high:
        raise TraceError(f"{what} {value} is not within {low}-{high}")


def _ip(text: str, what: str) -> str:
    try:
        return str(IPv4Address(text))
    except ValueError:
        raise TraceError(f"{what} {text!r} is not an IPv4 address") from None


def frame_from_pcap(path: Path, index: int, in_port: int) -> Frame:
    """Frame ``index`` (1-based) of a pcap, entering at ``in_port``."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.l2 import ARP, Dot1Q, Ether
    from scapy.utils import rdpcap

    try:
        packets = rdpcap(str(path))
    except Exception as exc:  # scapy raises its own exceptions for a file that is no pcap
        raise TraceError(f"--pcap {path}: not a readable pcap ({exc})") from None
    if not 1 <= index <= len(packets):
        raise TraceError(f"--pcap {path}: no frame {index} (it has {len(packets)})")
    pkt = packets[index - 1]
    if Ether not in pkt:
        raise TraceError(f"--pcap {path}: frame {index} is not Ethernet")
    f: dict = {
        "eth_src": pkt[Ether].src.lower(),
        "eth_dst": pkt[Ether].dst.lower(),
        "vlan": pkt[Dot1Q].vlan if Dot1Q in pkt else None,
    }
    if ARP in pkt:
        a = pkt[ARP]
        f.update(
            eth_type=ETH_ARP,
            arp_op=a.op,
            arp_sha=a.hwsrc.lower(),
            arp_spa=a.psrc,
            arp_tha=a.hwdst.lower(),
            arp_tpa=a.pdst,
        )
    elif IP in pkt:
        ip = pkt[IP]
        f.update(eth_type=ETH_IPV4, ipv4_src=ip.src, ipv4_dst=ip.dst, ttl=ip.ttl, ip_proto=ip.proto)
        if TCP in pkt:
            f.update(tcp_src=pkt[TCP].sport, tcp_dst=pkt[TCP].dport, tcp_flags=int(pkt[TCP].flags))
        elif UDP in pkt:
            f.update(udp_src=pkt[UDP].sport, udp_dst=pkt[UDP].dport)
        elif ICMP not in pkt:
            pass
    else:
        f["eth_type"] = pkt[Dot1Q].type if Dot1Q in pkt else pkt[Ether].type
    return Frame(in_port, **f)


def ofproto_flow(frame: Frame) -> str:
    """``frame`` as an ``ofproto/trace`` flow (ovs-fields names)."""
    parts = [f"in_port={frame.in_port}"]
    if frame.tun_ipv4_src is not None:
        # A frame from the tunnel port: the metadata decapsulation sets.
        parts += [f"tun_id={frame.tunnel_id:#x}", f"tun_src={frame.tun_ipv4_src}"]
    parts += [f"dl_src={frame.eth_src}", f"dl_dst={frame.eth_dst}"]
    if frame.vlan is not None:
        parts.append(f"dl_vlan={frame.vlan}")
    parts.append(f"dl_type={frame.eth_type:#06x}")
    if frame.eth_type == ETH_ARP:
        parts += [
            f"arp_op={frame.arp_op}",
            f"arp_spa={frame.arp_spa}",
            f"arp_tpa={frame.arp_tpa}",
            f"arp_sha={frame.arp_sha}",
            f"arp_tha={frame.arp_tha or '00:00:00:00:00:00'}",
        ]
    elif frame.ipv4_dst is not None:
        parts += [f"nw_src={frame.ipv4_src}", f"nw_dst={frame.ipv4_dst}", f"nw_ttl={frame.ttl}"]
        if frame.ip_proto is not None:
            parts.append(f"nw_proto={frame.ip_proto}")
        # A pcap's IP packet may lack its L4 header (a fragment, a cut frame).
        if frame.ip_proto == IPPROTO_TCP and frame.tcp_dst is not None:
            parts += [
                f"tp_src={frame.tcp_src}",
                f"tp_dst={frame.tcp_dst}",
                f"tcp_flags={frame.tcp_flags:#05x}",
            ]
        elif frame.ip_proto == IPPROTO_UDP and frame.udp_dst is not None:
            parts += [f"tp_src={frame.udp_src}", f"tp_dst={frame.udp_dst}"]
    return ",".join(parts)


# -- OVS's own trace, read back by the pipeline declaration --------------------
@dataclass(frozen=True)
class OvsStep:
    """One table lookup in ``ofproto/trace`` output, named."""

    table: int
    stage: str
    band: str
    concern: str
    priority: Optional[int]  # None: no match
    pass_: int  # 0, then one per recirculation (ct(table=))


@dataclass
class OvsTrace:
    steps: list[OvsStep] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)  # OpenFlow ports
    datapath_actions: list[str] = field(default_factory=list)  # one per pass


_TABLE_LINE = re.compile(r"^\s*(\d+)\. (.*)$")
_MATCHED = re.compile(r"priority (\d+)(?:, cookie (0x[0-9a-f]+))?")
_OUTPUT = re.compile(r"\boutput(?::|\(port=)(\d+)")


def parse_ofproto_trace(text: str) -> OvsTrace:
    """Steps and OpenFlow outputs of an ``ovs-appctl ofproto/trace`` run.

    Only the traced frame's own passes are read: a second ``bridge(...)``
    section within a pass is the outer packet of a native tunnel (VXLAN,
    ERSPAN, GRE), translated again from the vmk it leaves by, and is
    skipped: its lines are indented deeper than its header, and the frame's
    own actions resume at the header's indentation (an ERSPAN copy in a
    ``clone`` is followed by the frame's forwarding) or after a blank line.
    ``clone(...)`` lines are skipped (their actions follow, expanded);
    ``IN_PORT`` is an output to the frame's own in_port."""
    trace = OvsTrace()
    passno, in_port, nested, bridges = 0, None, None, 0
    lines = text.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if not stripped:
            nested = None
            continue
        if nested is not None:
            if indent > nested or stripped.startswith("---"):
                continue
            nested = None
        if stripped.startswith("bridge("):
            bridges += 1
            nested = indent if bridges > 1 else None
            continue
        if line.startswith("recirc("):
            passno, bridges = passno + 1, 0
            continue
        if line.startswith("Flow:") and in_port is None:
            found = re.search(r"\bin_port=(\d+)", line)
            in_port = int(found.group(1)) if found else None
            continue
        if line.startswith("Datapath actions:"):
            trace.datapath_actions.append(line.split(":", 1)[1].strip())
            continue
        m = _TABLE_LINE.match(line)
        if m:
            table, rest = int(m.group(1)), m.group(2)
            stage = STAGES.get(table)
            name = stage.name if stage else f"table {table}"
            if rest.startswith("No match"):
                trace.steps.append(OvsStep(table, name, "miss", "-", None, passno))
                continue
            hit = _MATCHED.search(rest)
            prio = int(hit.group(1)) if hit else None
            ck = int(hit.group(2), 16) if hit and hit.group(2) else 0
            concern = CONCERN_NAMES.get(concern_of(ck), "?")
            trace.steps.append(OvsStep(table, name, band_label(table, prio), concern, prio, passno))
            continue
        if stripped.startswith(("->", ">>", "Final flow:", "Megaflow:", "bridge(", "clone(", "---")):
            continue
        skipped = i + 1 < len(lines) and "skipping output to input port" in lines[i + 1]
        if skipped:
            continue
        trace.outputs += [int(port) for port in _OUTPUT.findall(stripped)]
        if stripped == "IN_PORT" and in_port is not None:
            trace.outputs.append(in_port)
    return trace


# -- the controller's view of a running lab -------------------------------------
def live_state(ctl):
    """A ``ControllerState`` rebuilt from a running lab's control files:
    what the controller compiled its flows from (as far as the files tell;
    teaming changed by failovers without failback is not in them)."""
    from controller.failover import link_changed
    from controller.state import ControllerState
    from vlab import control

    state = ControllerState(ctl.lab)
    applied = ctl.applied() or {}
    state.take_desired(ctl.desired())
    state.set_guests({port: GuestNic.from_json(g) for port, g in applied.get("guests", {}).items()})
    state.load_snooped(control.read_json(ctl.dir / control.SNOOPED))
    for host, uplinks in applied.get("uplinks_down", {}).items():
        for dpid in state.dpids:
            b = state.binding(dpid)
            for uplink in uplinks:
                if b.host == host and any(p.name == uplink for p in b.uplink_ports()):
                    link_changed(state, dpid, uplink, False)
    return state


def ct_next(state: int) -> str:
    """A simulator ct_state as ofproto/trace's ``--ct-next`` flags."""
    names = [
        (CT_TRK, "trk"),
        (CT_NEW, "new"),
        (CT_EST, "est"),
        (CT_REL, "rel"),
        (CT_RPL, "rpl"),
        (CT_INV, "inv"),
    ]
    return ",".join(name for bit, name in names if state & bit)


def compare_with_ovs(ctl, binding: SwitchBinding, frame: Frame, ex, held_to_mtu: bool = False):
    """OVS's own trace of ``frame`` on the running bridge, read back by stage
    name, and a disagreement with the model's explanation ``ex`` (None when
    both send it to the same ports). The connection states the model's
    conntrack gave each ``ct`` fork are passed as ``--ct-next``, so both
    trace the same states. Copies (mirror, capture, packet-in) are left
    out of the comparison on both sides; with ``held_to_mtu`` the outputs
    are not compared (OVS's trace does not see the MTU)."""
    from controller.explain import is_copy, mirror_only_ports
    from vlab.ovs import OvsError

    argv = ["ofproto/trace", binding.bridge, ofproto_flow(frame)]
    for state in ex.ct_states:
        argv += ["--ct-next", ct_next(state)]
    try:
        text = ctl.ovs(binding.host).appctl(*argv)
    except OvsError as exc:
        raise TraceError(f"ofproto/trace failed: {exc}") from None
    ovs = parse_ofproto_trace(text)
    ports = {p.ofport: p for p in binding.ports}
    mirror_only = mirror_only_ports(binding, ctl.lab)
    outputs = sorted(
        {
            ports[n].name if n in ports else f"port {n}"
            for n in ovs.outputs
            if not is_copy(ports.get(n), n, mirror_only)
        }
    )
    model = sorted({d.split(" to ")[0] for d in ex.delivered})
    disagree = None
    if not held_to_mtu and outputs != model:
        disagree = (
            f"OVS sends it to {', '.join(outputs) or 'nothing'}; the lab's model to "
            f"{', '.join(model) or 'nothing'} (the controller's view may differ from "
            f"the control files)"
        )
    return {
        "steps": [vars(s) for s in ovs.steps],
        "outputs": outputs,
        "datapath_actions": ovs.datapath_actions,
    }, disagree

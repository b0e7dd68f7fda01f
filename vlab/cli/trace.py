"""``vlab trace``: a frame through a host's vSwitch pipeline, with the
reason for every drop (``controller.explain``), from a lab file (rootless)
or on a running lab against OVS's own ``ofproto/trace`` (``vlab.trace``)."""

from __future__ import annotations

import json
from pathlib import Path

from controller.explain import explain, on_host
from controller.state import ControllerState
from vlab.lab.load import load_lab
from vlab.trace import TraceError, build_frame, compare_with_ovs, frame_from_pcap, live_state

from .common import EXIT_FAILED, EXIT_OK, UsageError, need_root, running_lab


def cmd_trace(args) -> int:
    """Why a frame goes where it goes: the simulator's walk with reasons, and
    on a running lab OVS's own ofproto/trace read back by stage name."""
    live = args.live or args.run
    if live:
        need_root()
        ctl = running_lab(args)
        state = live_state(ctl)
    else:
        if not args.lab:
            raise UsageError("give a lab file, or --live / --run for a running lab")
        state = ControllerState(load_lab(args.lab))
    try:
        binding, flows = on_host(state, args.host, args.port)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    if args.to is not None and not any(p.name == args.to for p in binding.ports):
        raise UsageError(f"--to {args.to!r}: {binding.bridge} on {args.host} has no such port")
    try:
        if args.pcap:
            frame = frame_from_pcap(Path(args.pcap), args.frame, binding.port(args.port).ofport)
        else:
            frame = build_frame(
                state.lab,
                binding,
                args.port,
                dst=args.dst,
                src=args.src,
                vlan=args.vlan,
                arp=args.arp,
                ip_src=args.ip_src,
                ip_dst=args.ip_dst,
                tcp=args.tcp,
                udp=args.udp,
                icmp=args.icmp,
                sport=args.sport,
                syn_ack=args.syn_ack,
                ttl=args.ttl,
                vni=args.vni,
                tun_src=args.tun_src,
            )
    except TraceError as exc:
        raise UsageError(str(exc)) from None
    ex = explain(binding, flows, state.lab, frame, to=args.to, size=args.size)
    out = ex.to_json()
    ovs = disagree = None
    if live:
        ovs, disagree = compare_with_ovs(ctl, binding, frame, ex, held_to_mtu=args.size is not None)
        out["ovs"] = ovs
        if disagree:
            out["disagreement"] = disagree
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(ex.render())
        if ovs is not None:
            print("OVS ofproto/trace:")
            for s in ovs["steps"]:
                again = "  (recirculated)" if s["pass_"] else ""
                print(
                    f"  {'  ' * min(s['pass_'], 1)}{s['table']} {s['stage']:<17} {s['band']:<24} "
                    f"{s['concern']}{again}"
                )
            print(f"  datapath actions: {' | '.join(ovs['datapath_actions'])}")
            if disagree:
                print(f"disagreement: {disagree}")
    return EXIT_FAILED if disagree else EXIT_OK


def register(sub) -> None:
    p = sub.add_parser(
        "trace",
        help="trace a frame through a host's vSwitch pipeline and "
        "say why it is dropped (rootless from a lab file, or "
        "--live on a running lab with OVS's ofproto/trace)",
    )
    p.add_argument("lab", nargs="?", metavar="LAB", help="lab file (not with --live/--run)")
    p.add_argument("--host", required=True, help="the ESXi host (e.g. esx1)")
    p.add_argument(
        "--port",
        required=True,
        help="the vSwitch port the frame enters by: a vNIC port (vm1-eth0), an uplink (vmnic0) or a vmk",
    )
    p.add_argument(
        "--dst",
        default="broadcast",
        help="destination: a MAC, 'broadcast', a VM, a vNIC port or HOST/vmkN (default broadcast)",
    )
    p.add_argument("--src", help="source MAC (default: the port's own)")
    p.add_argument("--vlan", type=int, help="802.1Q VLAN ID of the frame (default untagged)")
    p.add_argument("--arp", metavar="IP", help="an ARP request for IP")
    p.add_argument("--ip-src", help="source IPv4 (default: the port's own)")
    p.add_argument("--ip-dst", help="destination IPv4 (default: --dst's)")
    proto = p.add_mutually_exclusive_group()
    proto.add_argument("--tcp", type=int, metavar="PORT", help="a TCP segment to PORT")
    proto.add_argument("--udp", type=int, metavar="PORT", help="a UDP datagram to PORT")
    proto.add_argument("--icmp", action="store_true", help="an ICMP echo")
    p.add_argument("--sport", type=int, default=40000, help="source port (default 40000)")
    p.add_argument("--syn-ack", action="store_true", help="TCP: a SYN+ACK instead of a SYN")
    p.add_argument("--ttl", type=int, default=64)
    p.add_argument("--vni", type=int, help="a frame from the VXLAN tunnel port: its VNI")
    p.add_argument("--tun-src", metavar="IP", help="... and the VTEP it came from (default: another VTEP)")
    p.add_argument("--size", type=int, metavar="BYTES", help="IP packet length, held against the MTU")
    p.add_argument("--pcap", help="take the frame from this pcap instead of the options")
    p.add_argument("--frame", type=int, default=1, metavar="N", help="frame N of --pcap (1-based)")
    p.add_argument("--to", metavar="PORT", help="the port you expected it at: always explained")
    p.add_argument("--live", action="store_true", help="the running lab (the only one)")
    p.add_argument("--run", help="the running lab with this run id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_trace)

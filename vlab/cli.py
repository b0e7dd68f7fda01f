"""The ``vlab`` command.

    vlab check LAB...          validate lab files (no root needed)
    vlab run [EXPERIMENT...] [--repeat N] [-q]
                               run experiments (all by default), write results/, figures
                               and results/REPORT.md; --repeat adds mean and 95% CI
    vlab plot [EXPERIMENT...]  redraw figures and results/REPORT.md from the stored JSON
    vlab lab up LAB            bring a lab up and open the CLI with ESXi commands
                               (esxtop, pktcap-uw, esxcli, vmotion, uplink, nsx)
    vlab lab validate LAB      check the running lab: flows, uplinks, reachability
                               (the lab's `expect` section, else its design)
    vlab clean [--all]         remove what crashed runs left behind (ours only)

On a running lab (``--run ID``; the only running lab by default):
    vlab uplink down|up HOST VMNIC         pull or plug an uplink's cable
    vlab vmotion VM HOST [--stun-ms N]     move a running VM to another host
    vlab pktcap (--switchport PORT [--capture PortOutput|VnicRx] | --uplink HOST/VMNIC
                [--dir rx|tx]) -o FILE [-c COUNT] [--seconds S]
    vlab esxtop HOST [--interval S] [--count N]   esxtop's network screen
    vlab inspect --json                         the running lab as JSON, for other tools
    vlab nsx tables                             the NSX controller's VTEP, MAC, ARP tables

Exit codes: 0 success, 1 a verdict or check failed, 2 bad input (lab file,
arguments, not root).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .lab.load import LabError, load_lab

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _need_root() -> None:
    if os.geteuid() != 0:
        print("vlab: this command creates namespaces and OVS instances: run it as root", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def cmd_check(args) -> int:
    from .lab.validate import lab_warnings

    for path in args.labs:
        lab = load_lab(path)  # LabError is reported by main()
        for where, text in lab_warnings(lab):
            print(f"{path}: {where}: warning: {text}", file=sys.stderr)
        print(
            f"{path}: ok ({len(lab.esxi_hosts)} ESXi hosts, {len(lab.vms)} VMs, "
            f"{len(lab.physical_switches)} physical switches, {len(lab.hosts)} other hosts)"
        )
    return EXIT_OK


def cmd_run(args) -> int:
    _need_root()
    import experiments

    names = args.experiments or list(experiments.REGISTRY)
    modules = [experiments.get(n) for n in names]  # unknown names fail before any start
    if args.repeat < 1:
        raise UsageError(f"--repeat must be at least 1 (got {args.repeat})")
    from experiments import repeat
    from experiments.common import RESULTS, write_result

    failed = []
    t_all = time.monotonic()
    os.environ["VLAB_QUIET"] = "1" if args.quiet else ""
    for name, module in zip(names, modules):
        runs = []
        for i in range(args.repeat):
            t0 = time.monotonic()
            _say(args, f"[{name}] running" + (f" ({i + 1}/{args.repeat})" if args.repeat > 1 else ""))
            result = module.run({})
            result.setdefault("environment", {})["wall_s"] = round(time.monotonic() - t0, 1)
            path = write_result(name, result)
            runs.append(result)
            verdicts = result.get("verdicts", {})
            for claim, ok in verdicts.items():
                _say(args, f"[{name}] {'PASS' if ok else 'FAIL'} {claim}")
            if not all(verdicts.values()) and name not in failed:
                failed.append(name)
        figures = module.plot(result, RESULTS / name)
        _say(
            args,
            f"[{name}] wrote {path} and {', '.join(str(f) for f in figures)} ({time.monotonic() - t0:.0f}s)",
        )
        if args.repeat > 1:
            summary = repeat.write(RESULTS, module, runs)
            figures = repeat.plot(repeat.summarize(module, runs), RESULTS / name)
            _say(args, f"[{name}] wrote {summary} and {', '.join(str(f) for f in figures)}")
    if not args.experiments and args.repeat == 1:
        # A full run: its wall time is one of the bench's numbers.
        from experiments.common import environment

        env = environment()
        (RESULTS / "run.json").write_text(
            json.dumps(
                {
                    "wall_s": round(time.monotonic() - t_all, 1),
                    "experiments": names,
                    "git": env["git"],
                    "date": env["date"],
                },
                indent=2,
            )
            + "\n"
        )
    from experiments import report

    _say(args, f"wrote {report.write(RESULTS)}")
    if failed:
        print(f"vlab run: verdicts failed in: {', '.join(failed)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_bench(args) -> int:
    _need_root()
    from experiments import bench
    from experiments.common import write_result

    os.environ["VLAB_QUIET"] = "1" if args.quiet else ""
    if args.flakes is not None:
        return _bench_flakes(args)
    params = {}
    if args.quick:
        params = {
            "hosts": (1, 4),
            "failover_trials": 5,
            "vmotion_moves": 4,
            "iperf_s": 2.0,
            "controller_kills": 3,
        }
    result = bench.run(params)
    path = write_result(bench.NAME, result)
    figures = bench.plot(result, bench.OUT)
    _say(
        args,
        f"[bench] wrote {path} and {', '.join(str(f) for f in figures)} "
        f"({result['environment']['wall_s']:.0f}s)",
    )
    for claim, ok in result["verdicts"].items():
        print(f"[bench] {'MET' if ok else 'NOT MET'} {claim}")
    return EXIT_OK


def _bench_flakes(args) -> int:
    import shlex

    from experiments import flakes

    if args.flakes < 1 or args.load_cpus < 0:
        raise UsageError(
            f"--flakes needs N >= 1 and --load-cpus K >= 0 (got {args.flakes}, {args.load_cpus})"
        )
    result = flakes.run(args.flakes, args.load_cpus, tuple(shlex.split(args.pytest_args)))
    counts = result["failing_tests_per_run"]
    print(
        f"[flakes] failing tests per run under {result['load']}: "
        f"{', '.join(map(str, counts))} -> {flakes.OUT / 'flakes.json'}"
    )
    return EXIT_OK if result["verdicts"]["no_failing_test_in_any_run"] else EXIT_FAILED


def cmd_plot(args) -> int:
    import experiments
    from experiments import bench
    from experiments.common import RESULTS, read_result

    # The bench is not an experiment (no claims, not in `vlab run`), but its
    # figures are redrawn from its JSON the same way.
    names = args.experiments or [
        n for n in [*experiments.REGISTRY, bench.NAME] if (RESULTS / n / "result.json").exists()
    ]
    for name in names:
        module = bench if name == bench.NAME else experiments.get(name)
        for path in module.plot(read_result(name), RESULTS / name):
            print(path)
    from experiments import report

    print(report.write(RESULTS))
    return EXIT_OK


def cmd_up(args) -> int:
    _need_root()
    from mininet.log import setLogLevel

    from experiments.common import lab_session
    from vlab.shell.labcli import EsxiCLI

    if args.timeout <= 0:
        raise UsageError(f"--timeout must be positive (got {args.timeout:g})")
    with lab_session(args.lab, timeout=args.timeout) as net:
        print(
            f"lab {net.lab.name} is up (run {net.run.id}, {net.timings['bringup_s']:.1f}s); "
            "nodes: " + " ".join(n.name for n in net.net.hosts)
        )
        print(
            "ESXi commands: esxtop, pktcap-uw, esxcli, vmotion, uplink, nsx; "
            "`help` lists all, `exit` tears the lab down"
        )
        setLogLevel("output")  # Mininet's CLI prints at this level
        EsxiCLI(net)
    return EXIT_OK


def cmd_clean(args) -> int:
    _need_root()
    from .runtime import clean_dead_runs

    cleaned = clean_dead_runs(include_live=args.all)
    print(f"removed {len(cleaned)} run(s)" + (f": {' '.join(cleaned)}" if cleaned else ""))
    return EXIT_OK


def _running_lab(args):
    """LabControl of ``--run``, or of the only running lab."""
    from vlab.operations import LabControl

    from .runtime import Run, existing_runs, owner_alive

    if args.run:
        run = Run(args.run)
        if not run.dir.is_dir():
            raise UsageError(f"no run {args.run!r} under {run.dir.parent}")
    else:
        live = [r for r in existing_runs() if owner_alive(r)]
        if len(live) != 1:
            raise UsageError(
                f"{len(live)} labs are running ({' '.join(r.id for r in live)}); name one with --run"
            )
        run = live[0]
    return LabControl(run.dir)


def cmd_uplink(args) -> int:
    _need_root()
    ctl = _running_lab(args)
    ctl.uplink(args.host, args.vmnic, up=args.state == "up")
    print(f"{args.host} {args.vmnic}: cable {'plugged' if args.state == 'up' else 'pulled'}")
    return EXIT_OK


def cmd_vmotion(args) -> int:
    _need_root()
    from vlab.shell import commands

    print(commands.vmotion(_running_lab(args), args))
    return EXIT_OK


def cmd_pktcap(args) -> int:
    _need_root()
    from vlab.shell import commands

    print(f"wrote {commands.pktcap(_running_lab(args), args)}")
    return EXIT_OK


def cmd_esxtop(args) -> int:
    _need_root()
    from vlab.shell import commands

    for screen in commands.esxtop_screens(_running_lab(args), args):
        if sys.stdout.isatty():
            print("\033[2J\033[H", end="")
        print(f"{time.strftime('%H:%M:%S')}  {args.host}  interval {args.interval:g} s")
        print(screen, flush=True)
    return EXIT_OK


def cmd_lab_validate(args) -> int:
    _need_root()
    from pathlib import Path

    from vlab.operations import LabControl

    from . import labcheck
    from .runtime import existing_runs, owner_alive

    lab = load_lab(args.lab)  # a broken file fails here, exit 2
    if args.run:
        ctl = _running_lab(args)
    else:
        wanted = Path(args.lab).resolve()
        runs = [
            r
            for r in existing_runs()
            if owner_alive(r)
            and (r.dir / "nodes.json").exists()
            and Path(LabControl(r.dir).lab_file) == wanted
        ]
        if len(runs) != 1:
            raise UsageError(
                f"{len(runs)} running labs use {args.lab}; bring it up with "
                "`vlab lab up` (or name the run with --run)"
            )
        ctl = LabControl(runs[0].dir)
    checks = labcheck.validate(ctl, lab.expect)
    for check in checks:
        print(check.line())
    failed = [c for c in checks if not c.ok]
    print(f"{len(checks) - len(failed)}/{len(checks)} checks passed")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_pipeline(args) -> int:
    """The OpenFlow pipeline every vSwitch bridge runs, as docs/pipeline.md shows it."""
    from controller.pipeline import markdown

    print(markdown(), end="")
    return EXIT_OK


def cmd_trace(args) -> int:
    """Why a frame goes where it goes: the simulator's walk with reasons, and
    on a running lab OVS's own ofproto/trace read back by stage name."""
    from pathlib import Path

    from controller.explain import explain, on_host
    from controller.state import ControllerState

    from .trace import TraceError, build_frame, compare_with_ovs, frame_from_pcap, live_state

    live = args.live or args.run
    if live:
        _need_root()
        ctl = _running_lab(args)
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


def cmd_inspect(args) -> int:
    _need_root()
    import json

    from vlab.shell.esxcli import inspect

    print(json.dumps(inspect(_running_lab(args)), indent=2 if args.json else None))
    return EXIT_OK


def cmd_nsx(args) -> int:
    _need_root()
    import json

    from vlab.shell.esxcli import nsx_tables

    print(json.dumps(nsx_tables(_running_lab(args)), indent=2))
    return EXIT_OK


class UsageError(Exception):
    """Bad arguments for a command on a running lab (exit code 2)."""


def _say(args, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text, flush=True)


def build_parser() -> argparse.ArgumentParser:
    from vlab.shell import commands

    parser = argparse.ArgumentParser(prog="vlab", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="validate lab files")
    p.add_argument("labs", nargs="+", metavar="LAB")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("run", help="run experiments (all by default)")
    p.add_argument("experiments", nargs="*", metavar="EXPERIMENT")
    p.add_argument("-q", "--quiet", action="store_true", help="print only failures")
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run each experiment N times; repeats.json and a mean/95%% CI figure",
    )
    p.set_defaults(func=cmd_run)
    p = sub.add_parser(
        "bench", help="benchmarks: scale, controller, failover, vMotion, shaping, throughput -> results/bench"
    )
    p.add_argument(
        "--quick", action="store_true", help="fewer hosts and trials (a smoke run; not for the README)"
    )
    p.add_argument(
        "--flakes",
        type=int,
        metavar="N",
        help="instead: run the test suite N times with CPUs kept busy and report "
        "the failing tests per run (results/bench/flakes.json)",
    )
    p.add_argument(
        "--load-cpus",
        type=int,
        default=1,
        metavar="K",
        help="CPUs the load generator keeps busy during --flakes (default 1)",
    )
    p.add_argument(
        "--pytest-args",
        default="",
        metavar="ARGS",
        help="extra pytest arguments for --flakes, e.g. '-k mirror'",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser("plot", help="redraw figures from stored results (experiments and `bench`)")
    p.add_argument("experiments", nargs="*", metavar="EXPERIMENT")
    p.set_defaults(func=cmd_plot)
    p = sub.add_parser("up", help="bring a lab up and open the CLI (same as `lab up`)")
    _add_up_args(p)
    p = sub.add_parser("lab", help="teaching labs: bring one up with the ESXi-flavoured CLI")
    labsub = p.add_subparsers(dest="lab_command", required=True)
    q = labsub.add_parser("up", help="bring a lab up and open the ESXi-flavoured Mininet CLI")
    _add_up_args(q)
    q = labsub.add_parser("validate", help="check a running lab against expected behaviour")
    q.add_argument("lab", metavar="LAB")
    q.add_argument("--run", help="run id (default: the running lab made from LAB)")
    q.set_defaults(func=cmd_lab_validate)
    p = sub.add_parser("clean", help="remove leftovers of crashed runs (ours only)")
    p.add_argument("--all", action="store_true", help="also runs whose owner is still alive")
    p.set_defaults(func=cmd_clean)
    p = sub.add_parser("uplink", help="pull or plug an uplink cable on a running lab")
    p.add_argument("state", choices=["down", "up"])
    p.add_argument("host")
    p.add_argument("vmnic")
    p.add_argument("--run", help="run id (default: the only running lab)")
    p.set_defaults(func=cmd_uplink)
    p = sub.add_parser("vmotion", help="move a running VM to another ESXi host")
    commands.add_vmotion_args(p)
    p.add_argument("--run", help="run id (default: the only running lab)")
    p.set_defaults(func=cmd_vmotion)
    p = sub.add_parser("pktcap", help="capture at a vSwitch port or uplink (like pktcap-uw)")
    commands.add_pktcap_args(p)
    p.add_argument("--run", help="run id (default: the only running lab)")
    p.set_defaults(func=cmd_pktcap)
    p = sub.add_parser("inspect", help="dump a running lab as JSON (nodes, ports, MACs, IPs, uplink pinning)")
    p.add_argument("--json", action="store_true", help="indented JSON (the output is JSON anyway)")
    p.add_argument("--run", help="run id (default: the only running lab)")
    p.set_defaults(func=cmd_inspect)
    p = sub.add_parser("nsx", help="NSX views of a running lab")
    p.add_argument("view", choices=["tables"], help="tables: VTEP, MAC and ARP tables (JSON)")
    p.add_argument("--run", help="run id (default: the only running lab)")
    p.set_defaults(func=cmd_nsx)
    p = sub.add_parser(
        "pipeline", help="the vSwitch OpenFlow pipeline: tables, stages, priority bands (Markdown)"
    )
    p.set_defaults(func=cmd_pipeline)
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
    p.add_argument("--size", type=int, metavar="BYTES", help="IP packet length, held against the MTU")
    p.add_argument("--pcap", help="take the frame from this pcap instead of the options")
    p.add_argument("--frame", type=int, default=1, metavar="N", help="frame N of --pcap (1-based)")
    p.add_argument("--to", metavar="PORT", help="the port you expected it at: always explained")
    p.add_argument("--live", action="store_true", help="the running lab (the only one)")
    p.add_argument("--run", help="the running lab with this run id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_trace)
    p = sub.add_parser("esxtop", help="per-port packet and bit rates of an ESXi host")
    commands.add_esxtop_args(p, default_count=0)
    p.add_argument("--run", help="run id (default: the only running lab)")
    p.set_defaults(func=cmd_esxtop)
    return parser


def _add_up_args(p) -> None:
    p.add_argument("lab", metavar="LAB")
    p.add_argument(
        "--timeout",
        type=float,
        default=90.0,
        metavar="S",
        help="give up bring-up after S seconds, removing everything (default 90)",
    )
    p.set_defaults(func=cmd_up)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LabError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    except _unknown_experiment() as exc:
        print(f"vlab: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except UsageError as exc:
        print(f"vlab {args.command}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except _operation_error() as exc:
        print(f"vlab {args.command}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except _runtime_failures() as exc:
        # The lab did not come up, or a measurement could not be trusted: one
        # line, and lab_session has already removed everything of this run.
        print(f"vlab {args.command}: {exc} (everything this run created was removed)", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("vlab: interrupted; everything this run created was removed", file=sys.stderr)
        return 130


def _unknown_experiment():
    from experiments import UnknownExperiment

    return UnknownExperiment


def _runtime_failures():
    from topologies.readiness import NotReady
    from vlab.operations import CaptureIncomplete

    return (NotReady, CaptureIncomplete)


def _operation_error():
    from vlab.operations import OperationError

    return OperationError


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main", "build_parser"]

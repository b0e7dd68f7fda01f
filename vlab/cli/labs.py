"""Lab commands: ``check`` (rootless), ``lab up`` / ``up`` (the teaching
CLI), ``lab validate`` (a running lab against its expectations), ``clean``
and ``pipeline``."""

from __future__ import annotations

import sys
from pathlib import Path

from controller.pipeline_doc import markdown
from experiments.common import lab_session
from vlab import validate_running
from vlab.lab.check import lab_warnings
from vlab.lab.load import load_lab
from vlab.operations import LabControl
from vlab.runtime import clean_dead_runs, existing_runs, owner_alive

from .common import EXIT_FAILED, EXIT_OK, UsageError, need_root, running_lab


def cmd_check(args) -> int:
    for path in args.labs:
        lab = load_lab(path)  # LabError is reported by main()
        for where, text in lab_warnings(lab):
            print(f"{path}: {where}: warning: {text}", file=sys.stderr)
        print(
            f"{path}: ok ({len(lab.esxi_hosts)} ESXi hosts, {len(lab.vms)} VMs, "
            f"{len(lab.physical_switches)} physical switches, {len(lab.hosts)} other hosts)"
        )
    return EXIT_OK


def cmd_up(args) -> int:
    need_root()
    # Mininet only here: the rest of vlab runs without it.
    from mininet.log import setLogLevel

    from vlab.shell.labcli import EsxiCLI

    if args.timeout <= 0:
        raise UsageError(f"--timeout must be positive (got {args.timeout:g})")
    with lab_session(args.lab, timeout=args.timeout) as net:
        print(
            f"lab {net.lab.name} is up (run {net.run.id}, {net.timings['bringup_s']:.1f}s); "
            "nodes: " + " ".join(n.name for n in net.net.hosts)
        )
        esx = net.lab.esxi_hosts[0].name
        print(
            f"ESXi's commands run on each host ({esx} esxcli network nic list, {esx} net-stats -l, "
            f"{esx} pktcap-uw ..., {esx} vmkping ...; `vlab shell {esx}` from another terminal); "
            "at this prompt also esxtop, vmotion, network, uplink, nsx. "
            "`help` lists all, `exit` tears the lab down"
        )
        setLogLevel("output")  # Mininet's CLI prints at this level
        EsxiCLI(net)
    return EXIT_OK


def cmd_clean(args) -> int:
    need_root()
    cleaned = clean_dead_runs(include_live=args.all)
    print(f"removed {len(cleaned)} run(s)" + (f": {' '.join(cleaned)}" if cleaned else ""))
    return EXIT_OK


def cmd_lab_validate(args) -> int:
    need_root()

    lab = load_lab(args.lab)  # a broken file fails here, exit 2
    if args.run:
        ctl = running_lab(args)
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
    checks = validate_running.validate(ctl, lab.expect)
    for check in checks:
        print(check.line())
    failed = [c for c in checks if not c.ok]
    print(f"{len(checks) - len(failed)}/{len(checks)} checks passed")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_pipeline(args) -> int:
    """The OpenFlow pipeline every vSwitch bridge runs, as docs/pipeline.md shows it."""
    print(markdown(), end="")
    return EXIT_OK


def register(sub) -> None:
    p = sub.add_parser("check", help="validate lab files")
    p.add_argument("labs", nargs="+", metavar="LAB")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("up", help="bring a lab up and open the CLI (same as `lab up`)")
    add_up_args(p)
    p = sub.add_parser("lab", help="teaching labs: bring one up with the ESXi-flavoured CLI")
    labsub = p.add_subparsers(dest="lab_command", required=True)
    q = labsub.add_parser("up", help="bring a lab up and open the ESXi-flavoured Mininet CLI")
    add_up_args(q)
    q = labsub.add_parser("validate", help="check a running lab against expected behaviour")
    q.add_argument("lab", metavar="LAB")
    q.add_argument("--run", help="run id (default: the running lab made from LAB)")
    q.set_defaults(func=cmd_lab_validate)
    p = sub.add_parser("clean", help="remove leftovers of crashed runs (ours only)")
    p.add_argument("--all", action="store_true", help="also runs whose owner is still alive")
    p.set_defaults(func=cmd_clean)
    p = sub.add_parser(
        "pipeline", help="the vSwitch OpenFlow pipeline: tables, stages, priority bands (Markdown)"
    )
    p.set_defaults(func=cmd_pipeline)


def add_up_args(p) -> None:
    p.add_argument("lab", metavar="LAB")
    p.add_argument(
        "--timeout",
        type=float,
        default=90.0,
        metavar="S",
        help="give up bring-up after S seconds, removing everything (default 90)",
    )
    p.set_defaults(func=cmd_up)

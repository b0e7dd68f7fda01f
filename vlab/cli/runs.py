"""Experiment commands: ``run`` (results, figures and REPORT.md; the one
place result.json is written), ``bench`` (and ``bench --flakes``) and
``plot`` (everything redrawn from the stored JSON, rootless)."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time

import experiments
from experiments import bench, common, flakes, repeat, report

from .common import EXIT_FAILED, EXIT_OK, UsageError, need_root, say


def cmd_run(args) -> int:
    need_root()
    names = args.experiments or list(experiments.REGISTRY)
    modules = [experiments.get(n) for n in names]  # unknown names fail before any start
    if args.repeat < 1:
        raise UsageError(f"--repeat must be at least 1 (got {args.repeat})")

    failed = []
    t_all = time.monotonic()
    os.environ["VLAB_QUIET"] = "1" if args.quiet else ""
    for name, module in zip(names, modules):
        runs = []
        for i in range(args.repeat):
            t0 = time.monotonic()
            say(args, f"[{name}] running" + (f" ({i + 1}/{args.repeat})" if args.repeat > 1 else ""))
            result = module.run({})
            result.setdefault("environment", {})["wall_s"] = round(time.monotonic() - t0, 1)
            path = common.write_result(name, result)
            runs.append(result)
            verdicts = result.get("verdicts", {})
            for claim, ok in verdicts.items():
                say(args, f"[{name}] {'PASS' if ok else 'FAIL'} {claim}")
            if not all(verdicts.values()) and name not in failed:
                failed.append(name)
        figures = module.plot(result, common.RESULTS / name)
        say(
            args,
            f"[{name}] wrote {path} and {', '.join(str(f) for f in figures)} ({time.monotonic() - t0:.0f}s)",
        )
        if args.repeat > 1:
            summary = repeat.write(common.RESULTS, module, runs)
            figures = repeat.plot(repeat.summarize(module, runs), common.RESULTS / name)
            say(args, f"[{name}] wrote {summary} and {', '.join(str(f) for f in figures)}")
    if not args.experiments and args.repeat == 1:
        # A full run: its wall time is one of the bench's numbers.
        env = common.environment()
        (common.RESULTS / "run.json").write_text(
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

    say(args, f"wrote {report.write(common.RESULTS)}")
    if failed:
        print(f"vlab run: verdicts failed in: {', '.join(failed)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_bench(args) -> int:
    need_root()
    os.environ["VLAB_QUIET"] = "1" if args.quiet else ""
    if args.flakes is not None:
        return bench_flakes(args)
    params = {}
    if args.quick:
        params = {
            "hosts": (1, 4),
            "failover_trials": 5,
            "vmotion_moves": 4,
            "iperf_s": 2.0,
            "controller_kills": 3,
            "config_changes": 4,
            "beacon_trials": 3,
            "lbt_trials": 1,
        }
    result = bench.run(params)
    path = common.write_result(bench.NAME, result)
    figures = bench.plot(result, bench.OUT)
    say(
        args,
        f"[bench] wrote {path} and {', '.join(str(f) for f in figures)} "
        f"({result['environment']['wall_s']:.0f}s)",
    )
    for claim, ok in result["verdicts"].items():
        print(f"[bench] {'MET' if ok else 'NOT MET'} {claim}")
    return EXIT_OK


def bench_flakes(args) -> int:
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
    # The bench is not an experiment (no claims, not in `vlab run`), but its
    # figures are redrawn from its JSON the same way.
    names = args.experiments or [
        n for n in [*experiments.REGISTRY, bench.NAME] if (common.RESULTS / n / "result.json").exists()
    ]
    for name in names:
        module = bench if name == bench.NAME else experiments.get(name)
        for path in module.plot(common.read_result(name), common.RESULTS / name):
            print(path)

    print(report.write(common.RESULTS))
    return EXIT_OK


def register(sub) -> None:
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

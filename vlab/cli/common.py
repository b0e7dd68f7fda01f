"""What every ``vlab`` subcommand shares: exit codes, the usage error, root,
progress lines, and finding the running lab a command acts on."""

from __future__ import annotations

import os
import sys

from vlab.operations import LabControl
from vlab.runtime import Run, existing_runs, owner_alive

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
RUN_HELP = "run id (default: the only running lab)"


class UsageError(Exception):
    """Bad arguments for a command (exit code 2)."""


def need_root() -> None:
    if os.geteuid() != 0:
        print("vlab: this command creates namespaces and OVS instances: run it as root", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def say(args, text: str) -> None:
    """A progress line, unless ``-q``."""
    if not getattr(args, "quiet", False):
        print(text, flush=True)


def running_lab(args) -> LabControl:
    """LabControl of ``--run``, or of the only running lab."""
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

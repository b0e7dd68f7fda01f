"""ESXi's shell commands on every ESXi host node's PATH.

Each command of ``naming.ESXI_COMMANDS`` is a wrapper script in the host's
``bin`` directory of the run (``naming.host_bin_dir``) that runs
``vlab.shell.host`` for this run and this host, with the testbed's own
Python. The node's Mininet shell gets the directory first on its PATH, so
``esx1 esxcli ...`` works from the lab CLI; ``vlab shell esx1`` opens a
shell with the same PATH. The scripts go with the run directory."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from vlab import naming

REPO = Path(__file__).resolve().parents[1]


def wrapper(run_dir: Path, host: str, command: str) -> str:
    """The script of one command (pure)."""
    argv = [sys.executable, "-m", "vlab.shell.host", str(run_dir), host, command]
    return (
        "#!/bin/sh\n"
        f"# {command} on ESXi host {host} of run {Path(run_dir).name} (vlab)\n"
        f'PYTHONPATH={shlex.quote(str(REPO))}${{PYTHONPATH:+:$PYTHONPATH}} exec {shlex.join(argv)} "$@"\n'
    )


def install(node, run_dir: Path, host: str) -> Path:
    """Write ``host``'s commands and put them first on its shell's PATH."""
    bindir = naming.host_bin_dir(run_dir, host)
    bindir.mkdir(parents=True, exist_ok=True)
    for command in naming.ESXI_COMMANDS:
        path = bindir / command
        path.write_text(wrapper(run_dir, host, command))
        path.chmod(0o755)
    node.cmd(f"export PATH={shlex.quote(str(bindir))}:$PATH")
    return bindir

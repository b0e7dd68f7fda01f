"""Running an ESXi command in a host's shell, as a user types it there: the
command's wrapper on the host's PATH, run in the host's namespace."""

from __future__ import annotations

import shlex
import subprocess

from vlab import naming


def run_in_host(ctl, host: str, line: str, timeout: float = 60) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``line`` run in ``host``."""
    argv = shlex.split(line)
    exe = naming.host_bin_dir(ctl.dir, host) / argv[0]
    p = subprocess.run(
        ["nsenter", "-t", str(ctl.pids[host]), "-n", str(exe), *argv[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return p.returncode, p.stdout, p.stderr

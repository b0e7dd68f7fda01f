"""The ESXi shell of one emulated host: every command of
``vlab.naming.ESXI_COMMANDS``, run as

    python -m vlab.shell.host RUN_DIR HOST COMMAND [ARGS...]

by the wrapper scripts on the host node's PATH (``topologies.host_shell``),
so ``esx1 esxcli network nic list`` in the lab CLI, ``vlab shell esx1`` and
scripts all run the same code. Each command is a thin front over the
operations and views ``vlab`` already has."""

from __future__ import annotations

import os
import signal
import sys

from vlab import naming
from vlab.operations import LabControl, OperationError

from . import esxcfg, esxcli_network, esxtop, netstats, netvdl2, pktcap_uw, vmkping


def tcpdump_uw(ctl, host: str, argv: list[str], out=None, err=None) -> int:
    """ESXi's tcpdump-uw: tcpdump in the host namespace, where the vmks are
    (``-i vmk0``), or reading what ``pktcap-uw -o`` wrote (``-enr FILE``)."""
    if argv in (["-h"], ["--help"]) and out is not None:
        print(
            "usage: tcpdump-uw [tcpdump's options]: tcpdump in the host (vmk interfaces, -r FILE)", file=out
        )
        return 0
    return ctl.popen(host, ["tcpdump", *argv]).wait()


COMMANDS = {
    "esxcli": esxcli_network.run,
    "net-stats": netstats.run,
    "net-vdl2": netvdl2.run,
    "pktcap-uw": pktcap_uw.run,
    "vmkping": vmkping.run,
    "esxtop": esxtop.run,
    **{name: esxcfg.command(name) for name in esxcfg.LISTINGS},
    "tcpdump-uw": tcpdump_uw,
}
assert tuple(COMMANDS) == naming.ESXI_COMMANDS, "naming.ESXI_COMMANDS lists the commands installed"


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 3 or argv[2] not in COMMANDS:
        print("usage: python -m vlab.shell.host RUN_DIR HOST COMMAND [ARGS...]", file=sys.stderr)
        return 2
    run_dir, host, command, *rest = argv
    # A closed terminal (SIGHUP) or a kill (SIGTERM) still ends a capture
    # through its finally blocks: its OVS port and desired.json entry go.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    if command == "pktcap-uw":
        # ESXi's way to end a background capture is to kill it, and its
        # file is then complete: a kill ends the session as Ctrl-C does.
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        ctl = LabControl(run_dir)
    except OperationError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 1
    try:
        return COMMANDS[command](ctl, host, rest)
    except OperationError as exc:  # the lab went away, the controller did not answer, ...
        print(f"{command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # ``pktcap-uw ... | head``: the reader left; stop quietly as a shell tool does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())

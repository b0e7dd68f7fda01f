"""The teaching CLI: Mininet's CLI plus ESXi- and NSX-flavoured commands.

    esxtop HOST [--interval S] [--count N]
    pktcap-uw --switchport PORT [--capture PortOutput|VnicRx] -o FILE [-c N] [--seconds S]
    pktcap-uw --uplink HOST/VMNIC [--dir rx|tx] -o FILE [-c N] [--seconds S]
    esxcli HOST network vm list
    esxcli HOST network ip interface list
    vmotion VM HOST [--stun-ms N] [--no-igmp-query] [--max-response S]
    uplink down|up HOST VMNIC
    nsx tables

Mininet's own commands (``vm1 ping vm2``, ``nodes``, ``net``, ...) keep
working. Each command is a thin wrapper over ``LabControl`` and the view
modules, so the same operations are scriptable from Python.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from mininet.cli import CLI

from vlab.operations import OperationError

from . import commands, esxcli


class _Parser(argparse.ArgumentParser):
    """argparse that reports instead of exiting the CLI."""

    def error(self, message):
        raise OperationError(f"{self.prog}: {message}")

    def exit(self, status=0, message=None):
        raise OperationError(message or "")


def _parser(prog: str) -> _Parser:
    return _Parser(prog=prog, add_help=False)


class EsxiCLI(CLI):
    """Mininet CLI for a running ``LabNetwork``."""

    prompt = "vlab> "

    def __init__(self, lab_network, **kwargs):
        self.lab_network = lab_network
        self.ctl = lab_network.control
        super().__init__(lab_network.net, **kwargs)

    def default(self, line):
        """``NODE CMD``: as in Mininet, except that ``python3`` means the
        testbed's own Python with its tools importable (scapy, experiments.tools)."""
        words = line.split(None, 2)
        if len(words) >= 2 and words[1] == "python3":
            repo = Path(__file__).resolve().parents[2]  # vlab/shell/labcli.py -> the repository
            line = " ".join([words[0], f"env PYTHONPATH={repo} {sys.executable}", *words[2:]])
        return super().default(line)

    def _run(self, fn, line: str) -> None:
        try:
            fn(shlex.split(line))
        except OperationError as exc:
            print(f"error: {exc}".rstrip())

    # -- esxtop ---------------------------------------------------------------
    def do_esxtop(self, line):
        """esxtop HOST [--interval S] [--count N]: per-port rates, like esxtop's 'n' screen."""

        def run(argv):
            p = _parser("esxtop")
            commands.add_esxtop_args(p, default_count=1)
            for screen in commands.esxtop_screens(self.ctl, p.parse_args(argv)):
                print(screen)

        self._run(run, line)

    # -- pktcap-uw ------------------------------------------------------------------
    def do_pktcap(self, line):
        """pktcap-uw (--switchport PORT [--capture PortOutput|VnicRx] | --uplink HOST/VMNIC
        [--dir rx|tx]) -o FILE [-c N] [--seconds S]"""
        if line.startswith("-uw"):
            line = line[3:]

        def run(argv):
            p = _parser("pktcap-uw")
            commands.add_pktcap_args(p)
            path = commands.pktcap(self.ctl, p.parse_args(argv))
            shown = subprocess.run(
                ["tcpdump", "-n", "-e", "-r", str(path)], capture_output=True, text=True
            ).stdout
            if shown.strip():
                print(shown.rstrip())
            print(f"Dumped {len(shown.splitlines())} packets to file {path}")

        self._run(run, line)

    # -- esxcli -----------------------------------------------------------------------
    def do_esxcli(self, line):
        """esxcli HOST network vm list | esxcli HOST network ip interface list"""

        def run(argv):
            if len(argv) >= 4 and argv[1:4] == ["network", "vm", "list"]:
                print(esxcli.format_rows(esxcli.vm_list(self.ctl, argv[0]), esxcli.VM_COLUMNS))
            elif len(argv) >= 5 and argv[1:5] == ["network", "ip", "interface", "list"]:
                print(esxcli.format_rows(esxcli.ip_interface_list(self.ctl, argv[0]), esxcli.VMK_COLUMNS))
            else:
                raise OperationError(
                    "usage: esxcli HOST network vm list | esxcli HOST network ip interface list"
                )

        self._run(run, line)

    # -- operations -----------------------------------------------------------------------
    def do_vmotion(self, line):
        """vmotion VM HOST [--stun-ms N] [--no-igmp-query] [--max-response S]"""

        def run(argv):
            p = _parser("vmotion")
            commands.add_vmotion_args(p)
            print(commands.vmotion(self.ctl, p.parse_args(argv)))

        self._run(run, line)

    def do_uplink(self, line):
        """uplink down|up HOST VMNIC: pull or plug the uplink's cable."""

        def run(argv):
            if len(argv) != 3 or argv[0] not in ("down", "up"):
                raise OperationError("usage: uplink down|up HOST VMNIC")
            self.ctl.uplink(argv[1], argv[2], up=argv[0] == "up")
            print(f"{argv[1]} {argv[2]}: cable {'plugged' if argv[0] == 'up' else 'pulled'}")

        self._run(run, line)

    def do_nsx(self, line):
        """nsx tables: the NSX controller's VTEP, MAC and ARP tables (JSON)."""

        def run(argv):
            if argv != ["tables"]:
                raise OperationError("usage: nsx tables")
            print(json.dumps(esxcli.nsx_tables(self.ctl), indent=2))

        self._run(run, line)

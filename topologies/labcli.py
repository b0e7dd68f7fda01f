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
import shlex
import subprocess
import sys
import time
from pathlib import Path

from mininet.cli import CLI

from . import esxcli, esxtop
from .operations import OperationError


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
            repo = Path(__file__).resolve().parents[1]
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
            p.add_argument("host")
            p.add_argument("--interval", type=float, default=2.0)
            p.add_argument("--count", type=int, default=1)
            a = p.parse_args(argv)
            self.ctl.esxi(a.host)
            before = esxtop.sample(self.ctl, a.host)
            for _ in range(a.count):
                time.sleep(a.interval)           # esxtop's refresh period
                after = esxtop.sample(self.ctl, a.host)
                print(esxtop.format_table(esxtop.rates(before, after)))
                before = after
        self._run(run, line)

    # -- pktcap-uw ------------------------------------------------------------------
    def do_pktcap(self, line):
        """pktcap-uw (--switchport PORT [--capture PortOutput|VnicRx] | --uplink HOST/VMNIC
        [--dir rx|tx]) -o FILE [-c N] [--seconds S]"""
        if line.startswith("-uw"):
            line = line[3:]

        def run(argv):
            p = _parser("pktcap-uw")
            p.add_argument("--switchport")
            p.add_argument("--capture", choices=["PortOutput", "VnicRx"], default="VnicRx")
            p.add_argument("--uplink")
            p.add_argument("--dir", choices=["rx", "tx"], default="rx")
            p.add_argument("-o", "--outfile", required=True)
            p.add_argument("-c", "--count", type=int, default=0)
            p.add_argument("--seconds", type=float, default=10.0)
            a = p.parse_args(argv)
            if bool(a.switchport) == bool(a.uplink):
                raise OperationError("give exactly one of --switchport and --uplink")
            uplink = tuple(a.uplink.split("/", 1)) if a.uplink else None
            cap = self.ctl.capture(a.outfile, port=a.switchport, point=a.capture, uplink=uplink,
                                   direction=a.dir,
                                   extra=["-c", str(a.count)] if a.count else None)
            try:
                cap.proc.wait(timeout=a.seconds)
            except subprocess.TimeoutExpired:
                pass
            path = cap.stop()
            shown = subprocess.run(["tcpdump", "-n", "-e", "-r", str(path)], capture_output=True,
                                   text=True).stdout
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
                print(esxcli.format_rows(esxcli.ip_interface_list(self.ctl, argv[0]),
                                         esxcli.VMK_COLUMNS))
            else:
                raise OperationError("usage: esxcli HOST network vm list | "
                                     "esxcli HOST network ip interface list")
        self._run(run, line)

    # -- operations -----------------------------------------------------------------------
    def do_vmotion(self, line):
        """vmotion VM HOST [--stun-ms N] [--no-igmp-query] [--max-response S]"""
        def run(argv):
            p = _parser("vmotion")
            p.add_argument("vm")
            p.add_argument("host")
            p.add_argument("--stun-ms", type=float, default=100.0)
            p.add_argument("--no-igmp-query", action="store_true")
            p.add_argument("--max-response", type=float, default=10.0)
            a = p.parse_args(argv)
            move = self.ctl.vmotion(a.vm, a.host, stun_s=a.stun_ms / 1000,
                                    igmp_query=not a.no_igmp_query, max_response_s=a.max_response)
            print(f"{a.vm}: {move['from']} -> {move['to']}, stunned "
                  f"{(move['resumed'] - move['stun_start']) * 1000:.0f} ms")
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
        """nsx tables: the NSX controller's VTEP, MAC and ARP tables."""
        print("nsx: this lab has no NSX overlay (logical switches arrive with issue 5)")

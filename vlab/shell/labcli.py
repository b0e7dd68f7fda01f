"""The teaching CLI: Mininet's CLI plus ESXi- and NSX-flavoured commands.

Every ESXi host node has ESXi's own commands on its PATH (``vlab.shell.host``),
so they run as Mininet runs any node command, with ESXi's syntax:

    esx1 esxcli network nic list         esx1 net-stats -l
    esx1 pktcap-uw --switchport 33554632 --dir 1 -c 3 --capture PortOutput
    esx1 vmkping -I vmk0 192.168.100.12  esx1 esxcfg-vswitch -l
    esx1 pktcap-uw --uplink vmnic0 --dir 2 -o /tmp/u.pcap &
                                         (back at the prompt once it listens;
                                          ``esx1 kill %1; wait`` ends it)

and, at the prompt itself:

    esxcli HOST network ...              (the same esxcli, host first)
    pktcap-uw --switchport PORT ...      (the host found from the port; an
                                          uplink or vmk as HOST/vmnicN, HOST/vmkN)
    esxtop HOST [--interval S] [--count N]
    vmotion VM HOST [--stun-ms N] [--no-igmp-query] [--max-response S]
    network VM NETWORK [--vnic eth0]     (vCenter's Edit Settings > Network)
    uplink down|up HOST VMNIC
    nsx tables [--json]

Mininet's own commands (``vm1 ping vm2``, ``nodes``, ``net``, ...) keep
working. Each command is a thin wrapper over ``LabControl`` and the view
modules, so the same operations are scriptable from Python.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from mininet.cli import CLI

from vlab.operations import OperationError
from vlab.operations.capture import listening_marker
from vlab.waiting import wait_for

from . import commands, esxcli_network, pktcap_uw
from .argv import raising_parser
from .host import COMMANDS as HOST_COMMANDS
from .nsxcli import tables_text
from .snapshot import nsx_tables

LISTEN_TIMEOUT_S = 15.0  # a tap listens within ~2 s on a busy machine


def _parser(prog: str):
    return raising_parser(prog, OperationError)


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
        super().default(line)
        if (
            len(words) >= 2
            and words[1] == "pktcap-uw"
            and line.rstrip().endswith("&")
            and words[0] in self.mn
        ):
            self._wait_listening(self.mn[words[0]])

    def _wait_listening(self, node) -> None:
        """``HOST pktcap-uw ... &`` returns to the prompt once the capture
        listens (on ESXi the student would watch for its session lines), so
        the traffic typed next is in it; ``HOST kill %1; wait`` ends it."""
        # Mininet's sendCmd has the shell print the PID of a line ending in &.
        pid = node.lastPid
        if pid is None:
            print("vlab: pktcap-uw's PID is unknown: not waiting for it to listen")
            return
        marker = listening_marker(self.ctl.dir, pid)
        try:
            wait_for(
                lambda: marker.exists() or not Path(f"/proc/{pid}").exists(),
                LISTEN_TIMEOUT_S,
                f"pktcap-uw (pid {pid}) listening",
            )
        except TimeoutError as exc:
            print(f"vlab: {exc}")
            return
        if not marker.exists():  # it ended at once: bad arguments, a port it does not know
            print(node.cmd(f"wait {pid}").rstrip())

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
        """pktcap-uw ARGS: ESXi's pktcap-uw (``help pktcap-uw``) on the host
        of the port it names; ``HOST pktcap-uw ARGS`` runs it on that host."""
        if line.startswith("-uw"):
            line = line[3:]
        try:
            host, argv = self._pktcap_host(shlex.split(line))
            rc = pktcap_uw.run(self.ctl, host, argv, out=sys.stdout, err=sys.stdout)
        except OperationError as exc:
            print(f"pktcap-uw: {exc}")
            return
        outfile = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("-o", "--outfile")), None)
        if rc == 0 and outfile:
            # The lab CLI's addition for a class: the file read back, as
            # `tcpdump-uw -enr FILE` would show it on the host.
            shown = subprocess.run(["tcpdump", "-n", "-e", "-r", outfile], capture_output=True, text=True)
            print(f"tcpdump-uw -enr {outfile}:\n{shown.stdout.rstrip()}".rstrip())

    def _pktcap_host(self, argv: list[str]) -> tuple[str, list[str]]:
        """The host a prompt-level pktcap-uw runs on: the one holding the
        ``--switchport``, or the ``HOST/`` of ``--uplink``/``--vmk``. The
        lab CLI's older ``--dir rx|tx`` means ESXi's 0 and 1."""
        legacy = {"rx": "0", "tx": "1"}
        argv = [legacy.get(a, a) if i and argv[i - 1] == "--dir" else a for i, a in enumerate(argv)]
        for i, a in enumerate(argv[:-1]):
            if a in ("--uplink", "--vmk"):
                host, sep, name = argv[i + 1].partition("/")
                if not sep:
                    raise OperationError(
                        f"which host? {a} {argv[i + 1]} as HOST/{argv[i + 1]}, or HOST pktcap-uw ..."
                    )
                return host, argv[: i + 1] + [name] + argv[i + 2 :]
            if a == "--switchport":
                b, _ = self.ctl.port(argv[i + 1])
                return b.host, argv
        if "-h" in argv or "--help" in argv or not argv:
            return self.ctl.lab.esxi_hosts[0].name, argv
        raise OperationError("give --switchport PORT, --uplink HOST/vmnicN or --vmk HOST/vmkN")

    # -- esxcli -----------------------------------------------------------------------
    def do_esxcli(self, line):
        """esxcli HOST network ...: ESXi's esxcli on HOST (``esxcli HOST`` lists its namespaces)."""
        argv = shlex.split(line)
        hosts = [h.name for h in self.ctl.lab.esxi_hosts]
        if not argv or argv[0] not in hosts:
            print(f"usage: esxcli HOST network ... (HOST one of {', '.join(hosts)}; or HOST esxcli ...)")
            return
        esxcli_network.run(self.ctl, argv[0], argv[1:], out=sys.stdout, err=sys.stdout)

    # -- help and exit --------------------------------------------------------------------
    def do_help(self, line):
        """help [COMMAND]: Mininet's help, and each ESXi command's usage."""
        if line.strip() in HOST_COMMANDS:
            # cmd.Cmd cannot look up names with a dash (pktcap-uw, net-stats).
            command = HOST_COMMANDS[line.strip()]
            command(self.ctl, self.ctl.lab.esxi_hosts[0].name, ["--help"], out=sys.stdout, err=sys.stdout)
            return
        super().do_help(line)
        if not line.strip():
            print(
                "ESXi commands on every ESXi host node (HOST CMD ...): "
                + ", ".join(HOST_COMMANDS)
                + "\nat this prompt: esxcli HOST ..., pktcap-uw ..., esxtop HOST, vmotion, network, "
                "uplink, nsx\n"
            )

    def do_exit(self, _line):
        """exit: leave the CLI; the lab is torn down."""
        print(f"tearing the lab down (run {self.ctl.run_id}) ...")
        return "exited by user command"

    # -- operations -----------------------------------------------------------------------
    def _operation(self, line: str, name: str, add_args, operation) -> None:
        """A ``vlab`` operation at the prompt: its own arguments (the ones
        ``vlab NAME`` takes), and what it prints."""

        def run(argv):
            p = _parser(name)
            add_args(p)
            print(operation(self.ctl, p.parse_args(argv)))

        self._run(run, line)

    def do_vmotion(self, line):
        """vmotion VM HOST [--stun-ms N] [--no-igmp-query] [--max-response S]"""
        self._operation(line, "vmotion", commands.add_vmotion_args, commands.vmotion)

    def do_network(self, line):
        """network VM NETWORK [--vnic eth0]: connect the vNIC to another port group or logical switch."""
        self._operation(line, "network", commands.add_network_args, commands.network)

    def do_uplink(self, line):
        """uplink down|up HOST VMNIC: pull or plug the uplink's cable."""

        def run(argv):
            if len(argv) != 3 or argv[0] not in ("down", "up"):
                raise OperationError("usage: uplink down|up HOST VMNIC")
            self.ctl.uplink(argv[1], argv[2], up=argv[0] == "up")
            print(f"{argv[1]} {argv[2]}: cable {'plugged' if argv[0] == 'up' else 'pulled'}")

        self._run(run, line)

    def do_nsx(self, line):
        """nsx tables [--json]: the NSX controller's VTEP, MAC and ARP tables,
        as its CLI lists them (``--json``: as ``vlab nsx tables`` prints them)."""

        def run(argv):
            if argv not in (["tables"], ["tables", "--json"]):
                raise OperationError("usage: nsx tables [--json]")
            tables = nsx_tables(self.ctl)
            print(json.dumps(tables, indent=2) if "--json" in argv else tables_text(tables))

        self._run(run, line)

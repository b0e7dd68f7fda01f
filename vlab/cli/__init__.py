"""The ``vlab`` command.

    vlab check LAB...          validate lab files (no root needed)
    vlab run [EXPERIMENT...] [--repeat N] [-q]
                               run experiments (all by default), write results/, figures
                               and results/REPORT.md; --repeat adds mean and 95% CI
    vlab plot [EXPERIMENT...]  redraw figures and results/REPORT.md from the stored JSON
    vlab lab up LAB            bring a lab up and open the CLI with ESXi commands
                               (on each host: esxcli, net-stats, pktcap-uw, vmkping,
                               esxtop, esxcfg-*, tcpdump-uw; at the prompt: esxtop,
                               vmotion, network, uplink, nsx)
    vlab lab validate LAB      check the running lab: flows, uplinks, reachability
                               (the lab's `expect` section, else its design)
    vlab clean [--all]         remove what crashed runs left behind (ours only)

On a running lab (``--run ID``; the only running lab by default):
    vlab uplink down|up HOST VMNIC         pull or plug an uplink's cable
    vlab vmotion VM HOST [--stun-ms N]     move a running VM to another host
    vlab network VM NETWORK [--vnic eth0]  connect a vNIC to another port group or logical switch
    vlab pktcap (--switchport PORT [--capture PortOutput|VnicRx] | --uplink HOST/VMNIC
                [--dir rx|tx]) -o FILE [-c COUNT] [--seconds S]
    vlab esxtop HOST [--interval S] [--count N]   esxtop's network screen
    vlab shell HOST [COMMAND]                   a shell on the ESXi host with its ESXi commands
    vlab inspect --json                         the running lab as JSON, for other tools
    vlab nsx tables                             the NSX controller's VTEP, MAC, ARP tables

Exit codes: 0 success, 1 a verdict or check failed, 2 bad input (lab file,
arguments, not root).
"""

from __future__ import annotations

import argparse
import sys

from experiments import UnknownExperiment
from topologies.readiness import NotReady
from vlab.lab.load import LabError
from vlab.operations import CaptureIncomplete, OperationError

from . import labs, running, runs, trace
from .common import EXIT_BAD_INPUT, EXIT_FAILED, UsageError

# Each module registers its subcommands, in the order `vlab --help` lists them.
COMMAND_MODULES = (labs, runs, running, trace)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlab", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LabError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    except UnknownExperiment as exc:
        print(f"vlab: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (UsageError, OperationError) as exc:
        print(f"vlab {args.command}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (NotReady, CaptureIncomplete, TimeoutError) as exc:
        # The lab did not come up, a measurement could not be trusted, or what
        # it waited for never happened: one line, and lab_session has already
        # removed everything of this run.
        print(f"vlab {args.command}: {exc} (everything this run created was removed)", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("vlab: interrupted; everything this run created was removed", file=sys.stderr)
        return 130


__all__ = ["main", "build_parser"]

"""Commands on a running lab (``--run ID``, or the only one): ``uplink``,
``vmotion``, ``pktcap``, ``esxtop``, ``inspect`` and ``nsx``, the same
operations the lab CLI offers (``vlab.shell``)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

from vlab import naming
from vlab.shell import commands
from vlab.shell.nsxcli import tables_text
from vlab.shell.snapshot import inspect, nsx_tables

from .common import EXIT_OK, RUN_HELP, need_root, running_lab


def cmd_uplink(args) -> int:
    need_root()
    ctl = running_lab(args)
    ctl.uplink(args.host, args.vmnic, up=args.state == "up")
    print(f"{args.host} {args.vmnic}: cable {'plugged' if args.state == 'up' else 'pulled'}")
    return EXIT_OK


def cmd_vmotion(args) -> int:
    need_root()
    print(commands.vmotion(running_lab(args), args))
    return EXIT_OK


def cmd_network(args) -> int:
    need_root()
    print(commands.network(running_lab(args), args))
    return EXIT_OK


def cmd_pktcap(args) -> int:
    need_root()
    print(f"wrote {commands.pktcap(running_lab(args), args)}")
    return EXIT_OK


def cmd_esxtop(args) -> int:
    need_root()
    for screen in commands.esxtop_screens(running_lab(args), args):
        if sys.stdout.isatty():
            print("\033[2J\033[H", end="")
        print(f"{time.strftime('%H:%M:%S')}  {args.host}  interval {args.interval:g} s")
        print(screen, flush=True)
    return EXIT_OK


def cmd_inspect(args) -> int:
    need_root()

    print(json.dumps(inspect(running_lab(args)), indent=2 if args.json else None))
    return EXIT_OK


def cmd_nsx(args) -> int:
    need_root()

    tables = nsx_tables(running_lab(args))
    print(tables_text(tables) if args.text else json.dumps(tables, indent=2))
    return EXIT_OK


def cmd_shell(args) -> int:
    """A shell in an ESXi host's namespace with ESXi's commands first on its
    PATH (as SSH to the host would give), or one command run there."""
    need_root()
    ctl = running_lab(args)
    ctl.esxi(args.host)
    env = {
        **ctl._env(),
        "PATH": f"{naming.host_bin_dir(ctl.dir, args.host)}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "PS1": f"[root@{args.host}:\\w] ",
    }
    # One quoted argument is a shell line (``vlab shell esx1 'net-stats -l | grep vm'``);
    # several are one command's words, quoted so they reach it unchanged.
    line = args.words[0] if len(args.words) == 1 else shlex.join(args.words)
    shell = ["sh", "-c", line] if args.words else ["bash", "--norc", "-i"]
    return subprocess.run(["nsenter", "-t", str(ctl.pids[args.host]), "-n", *shell], env=env).returncode


def register(sub) -> None:
    p = sub.add_parser("uplink", help="pull or plug an uplink cable on a running lab")
    p.add_argument("state", choices=["down", "up"])
    p.add_argument("host")
    p.add_argument("vmnic")
    p.add_argument("--run", help=RUN_HELP)
    p.set_defaults(func=cmd_uplink)
    p = sub.add_parser("vmotion", help="move a running VM to another ESXi host")
    commands.add_vmotion_args(p)
    p.add_argument("--run", help=RUN_HELP)
    p.set_defaults(func=cmd_vmotion)
    p = sub.add_parser(
        "network", help="connect a VM's vNIC to another port group or logical switch (vCenter: Edit Settings)"
    )
    commands.add_network_args(p)
    p.add_argument("--run", help=RUN_HELP)
    p.set_defaults(func=cmd_network)
    p = sub.add_parser("pktcap", help="capture at a vSwitch port or uplink (like pktcap-uw)")
    commands.add_pktcap_args(p)
    p.add_argument("--run", help=RUN_HELP)
    p.set_defaults(func=cmd_pktcap)
    p = sub.add_parser("inspect", help="dump a running lab as JSON (nodes, ports, MACs, IPs, uplink pinning)")
    p.add_argument("--json", action="store_true", help="indented JSON (the output is JSON anyway)")
    p.add_argument("--run", help=RUN_HELP)
    p.set_defaults(func=cmd_inspect)
    p = sub.add_parser("nsx", help="NSX views of a running lab")
    p.add_argument("view", choices=["tables"], help="tables: VTEP, MAC and ARP tables (JSON, for scripts)")
    p.add_argument("--text", action="store_true", help="as the NSX controller's CLI lists them")
    p.add_argument("--run", help=RUN_HELP)
    p.set_defaults(func=cmd_nsx)
    p = sub.add_parser(
        "shell",
        help="a shell on an ESXi host with its ESXi commands (esxcli, net-stats, pktcap-uw, vmkping, ...)",
    )
    p.add_argument("host")
    p.add_argument(
        "words", nargs=argparse.REMAINDER, metavar="COMMAND", help="run this one command instead of a shell"
    )
    p.add_argument("--run", help=RUN_HELP)
    p.set_defaults(func=cmd_shell)
    p = sub.add_parser("esxtop", help="per-port packet and bit rates of an ESXi host")
    commands.add_esxtop_args(p, default_count=0)
    p.add_argument("--run", help=RUN_HELP)
    p.set_defaults(func=cmd_esxtop)

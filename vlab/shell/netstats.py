"""``net-stats -l`` on an emulated ESXi host: every vSwitch port with its
ESXi port number (``SwitchBinding.port_num``), the number every
port-taking command here accepts (pktcap-uw ``--switchport``, esxtop)."""

from __future__ import annotations

import sys
from typing import TextIO

from vlab.operations import OperationError

from .hostfacts import PORT_TYPE, HostFacts

USAGE = """Usage: net-stats [-l]
    -l    list the ports of every vSwitch: PortNum, Type (4 physical NIC,
          3 VMkernel NIC, 5 VM vNIC), SubType, SwitchName, MACAddress, ClientName"""


def port_list(f: HostFacts) -> str:
    lines = [f"{'PortNum':<16} {'Type':>4} {'SubType':>7} {'SwitchName':<16} {'MACAddress':<18} ClientName"]
    for p in f.ports():
        kind, sub = PORT_TYPE[p.kind]
        lines.append(f"{p.num:<16} {kind:>4} {sub:>7} {p.switch:<16} {p.mac:<18} {p.client}")
    return "\n".join(lines)


def run(ctl, host: str, argv: list[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    if argv != ["-l"]:
        print(USAGE, file=err if argv not in ([], ["-h"], ["--help"]) else out)
        return 0 if argv in (["-h"], ["--help"]) else 1
    try:
        print(port_list(HostFacts(ctl, host)), file=out)
    except OperationError as exc:
        print(f"net-stats: {exc}", file=err)
        return 1
    return 0

"""The original VLAN in ERSPAN copies' headers, written on the uplinks.

OVS builds ERSPAN headers (types II and III) with a VLAN field of 0. The
mirror flows (``controller.mirror``) therefore keep the source port group's
802.1Q tag on an ERSPAN copy's inner frame, and a tc program on the egress
of every uplink of a host that sends ERSPAN copies moves that tag into the
header (``vlab/bpf/erspan_vlan.c``, compiled here with clang; tc's ``bpf``
classifier is built into the kernel, in direct-action mode it needs no
action module). A copy to a monitor on the same host never crosses an
uplink, so it keeps the tag instead (the lab format says so).
"""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path

from vlab.lab.model import EsxiHost, Lab

from .errors import OperationError

SOURCE = Path(__file__).resolve().parents[1] / "bpf" / "erspan_vlan.c"
FILTER_PREF = 48  # before faults.FILTER_PREF: this one passes every other frame on


def rewrites(lab: Lab, host: EsxiHost) -> bool:
    """Whether ``host`` sends ERSPAN copies: it is a member of a distributed
    switch with an enabled ERSPAN session (type II or III; GRE has no VLAN
    field)."""
    member = {m.name for m in host.distributed_switches}
    return any(
        m.enabled and m.type == "erspan" and m.encapsulation != "gre"
        for d in lab.distributed_switches
        if d.name in member
        for m in d.mirrors
    )


def build(out_dir: Path) -> Path:
    """Compile the program into ``out_dir``; one clear error when clang or
    the BPF headers are missing (``scripts/setup.sh`` installs them)."""
    clang = shutil.which("clang")
    if clang is None:
        raise OperationError(
            "ERSPAN sessions need clang to build vlab/bpf/erspan_vlan.c: run scripts/setup.sh"
        )
    obj = Path(out_dir) / "erspan_vlan.o"
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    cmd = [
        clang,
        "-O2",
        "-g",
        "-target",
        "bpf",
        f"-I/usr/include/{multiarch}",
        "-c",
        str(SOURCE),
        "-o",
        str(obj),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise OperationError(
            f"building {SOURCE.name} failed (run scripts/setup.sh): {proc.stderr.strip()[-400:]}"
        )
    return obj


def attach_commands(dev: str, obj: Path) -> list[str]:
    """Shell commands that put the program on ``dev``'s egress, beside its
    root qdisc (the link's shaping)."""
    return [
        f"tc qdisc add dev {dev} clsact 2>/dev/null || true",
        f"tc filter replace dev {dev} egress pref {FILTER_PREF} bpf da obj {obj} sec tc",
    ]

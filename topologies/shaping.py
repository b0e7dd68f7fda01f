"""Traffic shaping policies on a lab's cables: the tbf qdiscs that
``vlab.lab.shaping`` derives from the lab, installed in the namespaces that
hold each port's devices. OVS leaves them alone (``vlab.ovs.keep_qdisc`` on
every vNIC and VMkernel port)."""

from __future__ import annotations

from vlab.lab.model import Lab
from vlab.lab.shaping import lab_qdiscs, tc_replace

from .readiness import NotReady


def shape(lab: Lab, node_of) -> None:
    """Install every shaped direction of ``lab`` (``node_of(name)`` -> node)."""
    for q in lab_qdiscs(lab):
        cmd = tc_replace(q.dev, q.qdisc)
        out = node_of(q.node).cmd(f"{cmd} 2>&1; echo rc=$?").strip()
        if not out.endswith("rc=0"):
            raise NotReady(f"{q.node}: `{cmd}` failed: {out}")

"""``vlab lab validate``: does a running lab behave as expected?

Checks, one line each, on the lab running from the given file:

* every vSwitch holds exactly the flows the controller last installed (the
  controller's barrier-confirmed count) and has caught up with requests;
* every uplink's cable is plugged in;
* reachability by real pings: the pairs the lab's ``expect`` section lists
  (a teacher's expectations), or else every ordered pair of endpoints
  against what the lab's port groups, VLANs and subnets allow.

Exit 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional

from . import control, naming
from .lab.model import Expectation
from .lab.reachability import endpoints, expected_reachability
from .operations import LabControl


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def _flows(ctl: LabControl) -> list[Check]:
    checks = []
    applied = ctl.applied()
    want_gen = ctl.desired().get("generation", 0)
    checks.append(
        Check(
            "controller",
            applied.get("generation", 0) >= want_gen,
            f"applied generation {applied.get('generation', 0)} of {want_gen}",
        )
    )
    for host in ctl.lab.esxi_hosts:
        ovs = ctl.ovs(host.name)
        for bridge in ovs.vsctl("list-br").split():
            dpid = int(ovs.vsctl("get", "bridge", bridge, "datapath_id").strip().strip('"'), 16)
            marker = control.read_json(naming.synced_marker(ctl.dir, dpid)) or {}
            have, want = ovs.flow_count(bridge), marker.get("flows")
            checks.append(
                Check(
                    f"flows {host.name}/{bridge}",
                    have == want,
                    f"{have} flows installed, controller sent {want}",
                )
            )
    return checks


def _uplinks(ctl: LabControl) -> list[Check]:
    down = ctl.applied().get("uplinks_down", {})
    return [
        Check(
            f"uplinks {h.name}",
            not down.get(h.name),
            "all up" if not down.get(h.name) else f"down: {', '.join(down[h.name])}",
        )
        for h in ctl.lab.esxi_hosts
    ]


def _reachability(ctl: LabControl, expect: Optional[Expectation]) -> list[Check]:
    eps = {e.name: e for e in endpoints(ctl.lab)}
    if expect is not None:
        pairs = [(a, b, True) for a, b in expect.reachable]
        pairs += [(a, b, False) for a, b in expect.unreachable]
        source = "lab expectation"
    else:
        pairs = [(a, b, ok) for (a, b), ok in sorted(expected_reachability(ctl.lab).items())]
        source = "lab design"

    def ping(pair):
        a, b, want = pair
        src, dst = eps[a], eps[b]
        out = ctl.sh(src.node, f"ping -n -q -c 2 -i 0.2 -W 1 -I {src.ip.ip} {dst.ip.ip}", check=False)
        got = " 0 received" not in out and " received" in out
        return Check(
            f"reach {a} -> {b}",
            got == want,
            f"{'reachable' if got else 'unreachable'}, {source}: {'reachable' if want else 'unreachable'}",
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(ping, pairs))


def validate(ctl: LabControl, expect: Optional[Expectation] = None) -> list[Check]:
    """All checks; ``expect`` (a lab's ``expect`` section) overrides the
    running lab's own."""
    return _flows(ctl) + _uplinks(ctl) + _reachability(ctl, expect or ctl.lab.expect)

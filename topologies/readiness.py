"""When a lab is ready, and bring-up's time limit.

``LabNetwork.start`` returns only once, in this order:

1. every vSwitch is connected and synced (the controller writes
   ``synced/<dpid>`` after a barrier reply on that switch's connection: proof
   the connection is up and its flows were taken; OVS refreshes the
   database's ``is_connected`` only every ~5 s);
2. hostd has seen every guest's NIC up (the all-hosts group is in its
   filter), since guests' NIC filters shape the flows;
3. every vSwitch holds exactly the flows its marker says were installed;
4. every VTEP and every host with an ERSPAN mirror port has resolved its
   tunnel next hops in OVS's own neighbour cache;
5. a probe ping between two endpoints the design connects succeeds.

Each wait names what is still missing when it gives up (``NotReady``).
The whole bring-up may take ``BRINGUP_LIMIT_FACTOR`` times the readiness
timeout; past it, whatever step is running is interrupted (``time_limit``).
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Optional

from vlab import control, naming
from vlab.bindings import dfw_protected_vms
from vlab.lab.model import Lab
from vlab.lab.reachability import Endpoint, endpoints, expected_reachability
from vlab.lab.resolve import vteps
from vlab.protocols import ALL_HOSTS_MAC
from vlab.waiting import Pending, wait_for

if TYPE_CHECKING:
    from .network import LabNetwork

BRINGUP_LIMIT_FACTOR = 3
POLL_S = 0.05


class NotReady(RuntimeError):
    """Bring-up could not make the lab ready (in time, or a configuration
    step failed); the message says what is missing."""


@contextmanager
def time_limit(seconds: float, step: Callable[[], str]):
    """Raise NotReady in the main thread if the block runs longer than
    ``seconds``, naming the ``step()`` it was in; blocking reads and waits are
    interrupted too. Outside the main thread (no signals there) it only runs
    the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum, frame):
        raise NotReady(f"bring-up did not finish in {seconds:g}s: stuck {step()}")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _wait(check, timeout: float, what: str) -> None:
    wait_for(check, timeout, what, interval=POLL_S, error=NotReady)


def wait_ready(net: "LabNetwork", timeout: float) -> None:
    """Steps 1-5 above, all within ``timeout``."""
    deadline = time.monotonic() + timeout
    left = lambda: max(1.0, deadline - time.monotonic())  # noqa: E731
    run_dir, alive = net.run.dir, net.controller.check_alive

    def connections():
        alive()
        down = [
            f"{b.host}/{b.bridge}" for b in net.bindings if not naming.synced_marker(run_dir, b.dpid).exists()
        ]
        return not down or Pending(f"not synced by the controller: {', '.join(down)}")

    _wait(connections, left(), "controller connections")
    net.timings["connected_s"] = time.monotonic() - net.started_at

    # Each vNIC up, and with the address the lab gives it: VMware Tools
    # reports it (the NSX ARP table starts from it), and the all-hosts
    # group alone can show before the address is there.
    vnics = {
        naming.vnic_port(vm.name, nic.name): str(nic.ip.ip) if nic.ip else None
        for vm in net.lab.vms
        for nic in vm.vnics
    }

    def guests_seen():
        alive()
        seen = (control.read_json(run_dir / control.APPLIED) or {}).get("guests", {})
        missing = [
            p
            for p, ip in vnics.items()
            if ALL_HOSTS_MAC not in ((seen.get(p) or {}).get("mcast") or [])
            or (ip is not None and ip not in (seen.get(p) or {}).get("ipv4", []))
        ]
        return not missing or Pending(f"hostd has not reported {', '.join(missing)} up with its address")

    _wait(guests_seen, left(), "guest NIC state")

    def flows():
        alive()
        wrong = []
        for b in net.bindings:
            marker = control.read_json(naming.synced_marker(run_dir, b.dpid))
            have = net.ovs[b.host].flow_count(b.bridge)
            want = marker["flows"] if marker else "?"
            if have != want:
                wrong.append(f"{b.host}/{b.bridge} has {have}/{want} flows")
        return not wrong or Pending("; ".join(wrong))

    _wait(flows, left(), "flow installation")

    resolve_vtep_neighbours(net, left())
    resolve_mirror_neighbours(net, left())
    probe = probe_pair(net.lab)
    if probe is not None:
        src, dst = probe
        _wait(
            lambda: net.ping(src, dst, count=1, wait=0.5) or Pending(f"{src.name} cannot ping {dst.name}"),
            left(),
            "probe",
        )


def resolve_vtep_neighbours(net: "LabNetwork", timeout: float) -> None:
    """Each VTEP resolves its gateway and the VTEPs of its own subnet, as a
    prepared host does. OVS's userspace tunnels keep their own neighbour
    cache, filled by snooping the ARP replies that reach the VTEP vmk, and
    drop the packet that finds no entry: without this the first frame to
    each VTEP would be lost."""
    all_vteps = vteps(net.lab)
    for host, vmk in all_vteps.items():
        peers = [str(v.ip.ip) for h, v in all_vteps.items() if h != host and v.ip.network == vmk.ip.network]
        peers += [str(vmk.gateway)] if vmk.gateway is not None else []
        node = net.node(host)
        for peer in peers:

            def reached(peer=peer):
                out = node.cmd(f"ping -n -q -c 1 -W 0.5 -I {vmk.ip.ip} {peer} >/dev/null 2>&1; echo rc=$?")
                return out.strip().endswith("rc=0") or Pending(f"{host} VTEP cannot reach {peer}")

            _wait(reached, timeout, "VTEP neighbours")


def mirror_destinations(lab: Lab, bindings) -> dict[str, list[str]]:
    """ESXi host -> the ERSPAN destination IPs its mirror ports send to."""
    out: dict[str, list[str]] = {}
    for b in bindings:
        if not any(p.kind == "mirror" for p in b.ports):
            continue
        dvs = next(d for d in lab.distributed_switches if d.name == b.bridge)
        ips = sorted({str(m.destination_ip) for m in dvs.mirrors if m.type == "erspan"})
        out.setdefault(b.host, [])
        out[b.host] += [ip for ip in ips if ip not in out[b.host]]
    return out


def resolve_mirror_neighbours(net: "LabNetwork", timeout: float) -> None:
    """Each host with a mirror tunnel port resolves the next hop towards
    every ERSPAN destination of its distributed switch, for the same reason
    as the VTEPs: OVS's tunnel neighbour cache learns only from ARP replies
    it switches, and drops copies until it has an entry."""
    for host, destinations in mirror_destinations(net.lab, net.bindings).items():
        node, inst = net.node(host), net.ovs[host]
        for dst in destinations:

            def resolved(dst=dst):
                node.cmd(f"ping -n -q -c 1 -W 0.5 {dst} >/dev/null 2>&1")
                route = node.cmd(f"ip -o route get {dst}").split()
                hop = route[route.index("via") + 1] if "via" in route else dst
                known = {
                    line.split()[0] for line in inst.appctl("tnl/neigh/show").splitlines()[2:] if line.strip()
                }
                if hop in known:
                    return True
                # The kernel may have resolved it before OVS's flows were
                # in: forget it, so the next ping ARPs through the bridge.
                node.cmd(f"ip neigh flush to {hop}")
                return Pending(f"{host} has no tunnel neighbour {hop} towards mirror destination {dst}")

            _wait(resolved, timeout, "mirror destinations")


def probe_pair(lab: Lab) -> Optional[tuple[Endpoint, Endpoint]]:
    """Two endpoints the design lets ping each other. VMs behind the
    distributed firewall are left out: whether they answer a ping is up to
    its rules, not to the L2/L3 design."""
    eps = {e.name: e for e in endpoints(lab)}
    filtered = dfw_protected_vms(lab)
    for (a, b), ok in sorted(expected_reachability(lab).items()):
        if ok and eps[a].node not in filtered and eps[b].node not in filtered:
            return eps[a], eps[b]
    return None

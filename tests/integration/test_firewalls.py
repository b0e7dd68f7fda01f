"""Both firewalls with real packets and the guests' own TCP stacks.

* The distributed firewall (labs/microseg.yaml plus the experiment's policy):
  allowed flows connect, a compromised VM in the same L2 segment does not,
  and an established connection survives its VM's vMotion while the new
  host still refuses the attacker.
* The perimeter firewalls (labs/vmsc.yaml): a VM in DC2 answers through
  fw2, which never saw the connection open: the SYN-ACK is dropped as
  invalid there and fw1 keeps a half-open entry.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from experiments import microsegmentation
from experiments.common import REPO, guest_tool, lab_session, stop_tool, wait_ready_line
from vlab import perimeter

# A connection that should succeed gets ample time (a lost SYN alone costs a
# 1 s retransmission); a blocked one never connects, whatever the timeout,
# so it gets a short one.
OK_S, BLOCKED_S = 10.0, 1.5


def connect(net, src: str, ip: str, port: int, timeout: float = OK_S) -> str:
    """A fresh TCP connection and one request from ``src``: 'ok' or the error."""
    out = net.node(src).cmd(
        f"cd {REPO} && {sys.executable} -m experiments.tools.tcpapp connect "
        f"--dst {ip} --port {port} --timeout {timeout}"
    )
    return out.strip().splitlines()[-1]


def serve(net, vm: str, ip: str, port: int):
    proc = guest_tool(net, vm, "tcpapp", "serve", "--bind", ip, "--port", port, "--reply", 64, wait=False)
    wait_ready_line(proc, f"listener {vm}:{port}")
    return proc


@pytest.fixture(scope="module")
def segmented(tmp_path_factory):
    labs = microsegmentation.write_labs(tmp_path_factory.mktemp("labs"))
    with lab_session(labs["with-dfw"]) as net:
        yield net


def test_dfw_allows_policy_and_stops_the_compromised_vm(segmented):
    net = segmented
    servers = [serve(net, "web", "10.30.0.11", 80), serve(net, "db", "10.30.0.12", 3306)]
    try:
        assert connect(net, "client", "10.30.0.11", 80) == "ok"
        assert connect(net, "web", "10.30.0.12", 3306) == "ok"
        # Same L2 segment, same host as web: only the vNIC's filter stops it.
        assert connect(net, "attacker", "10.30.0.11", 80, BLOCKED_S) == "TimeoutError"
        assert connect(net, "attacker", "10.30.0.12", 3306, BLOCKED_S) == "TimeoutError"
        assert connect(net, "client", "10.30.0.12", 3306, BLOCKED_S) == "TimeoutError"
        # ARP is not the DFW's business: the attacker still resolves web.
        net.node("attacker").cmd("ping -c1 -W1 10.30.0.11")
        assert "10.30.0.11" in net.node("attacker").cmd("ip neigh show 10.30.0.11 | grep lladdr")
    finally:
        for proc in servers:
            stop_tool(proc)


def test_dfw_state_moves_with_the_vm(segmented):
    net = segmented
    server = serve(net, "web", "10.30.0.11", 80)
    client = net.node("client").popen(
        [sys.executable, "-m", "experiments.tools.tcpapp", "hold", "--dst", "10.30.0.11", "--port", "80"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(REPO),
    )
    try:
        assert client.stdout.readline().strip() == "ready"
        client.stdin.write("\n")
        client.stdin.flush()
        assert client.stdout.readline().strip() == "ok"
        net.control.vmotion("web", "esx2")
        sessions = net.control.desired()["dfw_sessions"]["web-eth0"]
        assert any(s[0] == 6 and s[4] == 80 for s in sessions), sessions
        # Each carries when its conntrack entry would have aged out (OVS -s).
        assert all(s[5] is not None and s[5] > time.time() for s in sessions), sessions
        client.stdin.write("\n")
        client.stdin.flush()
        # The established connection goes on at the new host ...
        assert client.stdout.readline().strip() == "ok"
        # ... where the attacker still gets nothing.
        assert connect(net, "attacker", "10.30.0.11", 80, BLOCKED_S) == "TimeoutError"
    finally:
        stop_tool(client)
        stop_tool(server)


def test_perimeter_firewalls_drop_half_flows():
    with lab_session(REPO / "labs" / "vmsc.yaml") as net:
        servers = [serve(net, "vm1", "10.10.10.11", 8080), serve(net, "vm2", "10.10.10.12", 8080)]
        try:
            assert connect(net, "u1", "10.10.10.11", 8080) == "ok"  # DC1: symmetric
            assert (
                connect(net, "u1", "10.10.10.12", 8080, BLOCKED_S) == "TimeoutError"
            )  # DC2: in by fw1, out by fw2
            counters = perimeter.rule_counters(
                net.node("fw2").cmd(f"nft -j list table inet {perimeter.TABLE}")
            )
            assert counters[perimeter.INVALID]["packets"] >= 1, counters
            fw1 = perimeter.conntrack_summary(net.node("fw1").cmd("conntrack -L 2>/dev/null"))
            assert fw1["half_open"] >= 1, fw1
        finally:
            for proc in servers:
                stop_tool(proc)

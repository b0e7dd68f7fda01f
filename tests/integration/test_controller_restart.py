"""The controller crashes during traffic: forwarding goes on (fail mode
secure keeps the flows); a new controller resyncs every switch to exactly
its compiled flows, removing stale ones, without delete-all."""

import signal

from controller.vswitch import compile_vswitch
from experiments import pings
from experiments.common import lab_session
from tests.integration.conftest import TWO_HOSTS
from vlab.bindings import GuestNic
from vlab.waiting import Pending, wait_for

# A flow of the vSwitch concern that no compiler makes: priority 7 is in no
# band of vs_forward (1 is its 'refused' band now, a real flow per port).
STALE = "cookie=0x0100000000000000,table=1,priority=7,in_port=2,actions=drop"
AFTER_RESTART = 50  # echo replies after the new controller's resync


def test_crash_and_restart_keeps_traffic_and_resyncs_exact_flows(tmp_path):
    out = tmp_path / "ping.txt"
    with lab_session(TWO_HOSTS) as net:
        ovs1 = net.ovs["esx1"]
        with out.open("w") as sink:
            ping = net.node("vm1a").popen(["ping", "-n", "-i", "0.02", "10.10.0.12"], stdout=sink)
        try:
            wait_for(lambda: pings.replies(out), 10, "the first echo reply before the crash")
            net.controller_proc.kill()  # the crash
            net.controller_proc.wait(10)
            # While headless, a stale flow of ours appears on esx1.
            ovs1.ofctl("add-flow", "vSwitch0", STALE)
            net.restart_controller()  # NotReady if the resync does not finish
            last = max(pings.replies(out))
            wait_for(
                lambda: (
                    max(pings.replies(out)) >= last + AFTER_RESTART
                    or Pending(f"{max(pings.replies(out)) - last} replies since")
                ),
                10,
                f"{AFTER_RESTART} echo replies after the restart",
            )
            guests = {p: GuestNic.from_json(g) for p, g in net.control.applied()["guests"].items()}
            for b in net.bindings:
                want = len(compile_vswitch(b.with_guests(guests)))
                assert net.ovs[b.host].flow_count(b.bridge) == want, b.host
            assert "priority=7,in_port=2 " not in ovs1.ofctl("dump-flows", "vSwitch0")
        finally:
            ping.send_signal(signal.SIGINT)
            ping.wait(10)
    # Not one echo request lost, through the crash, the headless time and
    # the resync (those still in flight when ping was stopped do not count).
    got = pings.replies(out)
    missing = pings.lost(got)
    assert not missing, f"lost icmp_seq {missing[:20]} of {max(got)}"

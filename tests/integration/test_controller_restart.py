"""The controller crashes during traffic: forwarding goes on (fail mode
secure keeps the flows); a new controller resyncs every switch to exactly
its compiled flows, removing stale ones, without delete-all."""

import re
import time

from controller.vswitch import compile_vswitch
from experiments.common import lab_session
from tests.integration.conftest import TWO_HOSTS
from vlab.bindings import GuestNic

STALE = "cookie=0x0100000000000000,table=1,priority=1,in_port=2,actions=drop"


def test_crash_and_restart_keeps_traffic_and_resyncs_exact_flows():
    with lab_session(TWO_HOSTS) as net:
        ovs1 = net.ovs["esx1"]
        ping = net.node("vm1a").popen(
            ["ping", "-n", "-i", "0.02", "-c", "250", "10.10.0.12"], stdout=-1, text=True
        )
        time.sleep(0.5)  # traffic under way (schedule, not readiness)
        net.controller_proc.kill()  # the crash
        net.controller_proc.wait(10)
        # While headless, a stale flow of ours appears on esx1.
        ovs1.ofctl("add-flow", "vSwitch0", STALE)
        resync_s = net.restart_controller()
        out, _ = ping.communicate(timeout=30)
        guests = {p: GuestNic.from_json(g) for p, g in net.control.applied()["guests"].items()}
        for b in net.bindings:
            want = len(compile_vswitch(b.with_guests(guests)))
            assert net.ovs[b.host].flow_count(b.bridge) == want, b.host
        assert "priority=1,in_port=2 " not in ovs1.ofctl("dump-flows", "vSwitch0")
    received = int(re.search(r"(\d+) received", out).group(1))
    assert received == 250, out[-300:]
    assert resync_s < 10, resync_s

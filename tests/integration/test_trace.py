"""``vlab trace --run`` on a running lab: OVS's own ofproto/trace, read
back by stage name, agrees with the lab's model on where each frame goes,
and each kind of drop is explained: forged transmits, a tag from a VST
guest, unknown unicast from an uplink, MAC address changes (after the
guest really changed its MAC), DFW rule and default rule, reverse teaming,
and the MTU."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from controller.explain import on_host
from experiments.common import lab_session
from tests.integration.conftest import REPO
from tests.unit.test_explain import POLICY
from vlab.cli import main
from vlab.trace import live_state

WEB, ATTACKER = "00:50:56:a4:00:11", "00:50:56:a4:00:66"


@pytest.fixture(scope="module")
def segmented(tmp_path_factory):
    data = yaml.safe_load((REPO / "labs" / "microseg.yaml").read_text())
    data["distributed_firewall"] = copy.deepcopy(POLICY)
    lab = tmp_path_factory.mktemp("labs") / "microseg-trace.yaml"
    lab.write_text(yaml.safe_dump(data))
    with lab_session(lab) as net:
        yield net


def trace(capsys, net, *argv) -> dict:
    """``vlab trace --run`` as JSON; exit code 0 means OVS and the model agree."""
    code = main(["trace", "--run", net.run.id, "--json", *argv])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out.get("disagreement")
    return out


def reasons(out) -> list[str]:
    return [r["reason"] for r in out["refused"]]


def test_delivered_frames_take_the_same_stages_in_ovs(capsys, segmented):
    out = trace(capsys, segmented, "--host", "esx1", "--port", "attacker-eth0", "--dst", "web", "--tcp", "80")
    assert out["delivered"] == ["web-eth0"] == out["ovs"]["outputs"]
    assert (
        [(s["stage"], s["band"]) for s in out["steps"]]
        == [(s["stage"], s["band"]) for s in out["ovs"]["steps"]]
        == [
            ("vs_in_port", "classify"),
            ("vs_forward", "exact"),
            ("dfw_to_vm", "to-ct"),
            ("dfw_to_vm_ct", "rule 2"),
        ]
    )


@pytest.mark.parametrize(
    "argv, reason",
    [
        (
            ["--port", "attacker-eth0", "--dst", "web", "--src", "00:50:56:a4:00:99"],
            "forged transmits = reject: source MAC 00:50:56:a4:00:99 is not attacker-eth0's MAC",
        ),
        (
            ["--port", "attacker-eth0", "--dst", "web", "--vlan", "30"],
            "VLAN: attacker-eth0's port group app is VLAN 30 (VST)",
        ),
        (
            ["--port", "vmnic0", "--dst", "00:50:56:a4:00:55", "--vlan", "30"],
            "unknown unicast from uplink vmnic0",
        ),
        (
            ["--port", "attacker-eth0", "--dst", "web", "--tcp", "22"],
            "distributed firewall rule 1 'no-ssh-to-web' at web-eth0: drop",
        ),
        (
            ["--port", "attacker-eth0", "--dst", "web", "--tcp", "443"],
            "distributed firewall at web-eth0: no rule allows it; the default rule drops",
        ),
    ],
)
def test_each_drop_is_explained_and_ovs_drops_it_too(capsys, segmented, argv, reason):
    out = trace(capsys, segmented, "--host", "esx1", *argv)
    assert out["delivered"] == [] == out["ovs"]["outputs"]
    # Every pass ends without an output (a DFW drop first passes through ct).
    assert all(a == "drop" or a.startswith("ct(") for a in out["ovs"]["datapath_actions"])
    assert any(r.startswith(reason) for r in reasons(out)), reasons(out)


def test_mtu_is_explained_where_ovs_cannot_see_it(capsys, segmented):
    out = trace(
        capsys,
        segmented,
        "--host",
        "esx1",
        "--port",
        "attacker-eth0",
        "--dst",
        "web",
        "--tcp",
        "80",
        "--size",
        "1600",
    )
    assert out["delivered"] == [] and out["ovs"]["outputs"] == ["web-eth0"]
    assert reasons(out) == ["MTU: a 1600-byte IP packet is larger than dvs's MTU of 1500; the port drops it"]


def test_a_guest_that_changed_its_mac_receives_nothing(capsys, segmented):
    net, new = segmented, "00:50:56:a4:00:77"
    net.node("attacker").cmd(f"ip link set eth0 address {new}")
    try:
        net.control.wait_guest("attacker-eth0", lambda g: g["effective_mac"] == new)
        out = trace(
            capsys, net, "--host", "esx1", "--port", "web-eth0", "--dst", "broadcast", "--to", "attacker-eth0"
        )
        assert "attacker-eth0" not in out["delivered"]
        assert "attacker-eth0" not in out["ovs"]["outputs"]
        assert reasons(out) == [
            f"MAC address changes = reject: the guest changed "
            f"attacker-eth0's MAC to {new} (configured {ATTACKER}), so "
            f"nothing is delivered to it"
        ]
    finally:
        net.node("attacker").cmd(f"ip link set eth0 address {ATTACKER}")
        net.control.wait_guest("attacker-eth0", lambda g: g["effective_mac"] in (None, ATTACKER))


def test_reverse_teaming(capsys, two_hosts):
    ctl = two_hosts.control
    state = live_state(ctl)
    port, pinned = next((p, u) for p, u in sorted(ctl.applied()["pinning"]["esx1"].items()) if u)
    binding, _ = on_host(state, "esx1", port)
    vlan = binding.switch.port_group(binding.port(port).port_group).vlan
    other = next(u.name for u in binding.uplink_ports() if u.name != pinned)
    argv = ["--host", "esx1", "--port", other, "--dst", "broadcast", "--to", port]
    out = trace(capsys, two_hosts, *argv, *(["--vlan", str(vlan)] if vlan else []))
    assert port not in out["delivered"] and port not in out["ovs"]["outputs"]
    assert f"reverse teaming: came in on {other}, {port} transmits on {pinned}" in reasons(out)

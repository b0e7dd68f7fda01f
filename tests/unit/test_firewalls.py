"""Both firewalls without root: the distributed firewall's flows, the
perimeter firewall's nftables ruleset and counters, and the lab checks.

The DFW's verdicts need OVS connection tracking, so packets are checked in
tests/integration/test_firewalls.py; here the compiled structure is checked:
what enters ct in which zone, what a rule turns into, that a bridge without
protected vNICs is untouched and that state imported by vMotion is accepted
in both orientations.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from controller import dfw
from controller.flows import compile_bridge
from controller.nsx import build_tables
from controller.pipeline import Priority, Table
from vlab import perimeter
from vlab.bindings import conntrack_zones, switch_bindings
from vlab.lab.load import LabError, parse_lab
from vlab.ovs import parse_conntrack

LABS = Path(__file__).resolve().parents[2] / "labs"
MICROSEG = yaml.safe_load((LABS / "microseg.yaml").read_text())
VMSC = yaml.safe_load((LABS / "vmsc.yaml").read_text())
POLICY = {
    "groups": [{"name": "web-tier", "vms": ["web"]}, {"name": "clients", "vms": ["client"]}],
    "rules": [
        {
            "name": "clients-to-web",
            "sources": ["clients"],
            "destinations": ["web-tier"],
            "services": ["tcp/80"],
            "action": "allow",
        },
        {
            "name": "web-to-db",
            "sources": ["web"],
            "destinations": ["db"],
            "services": ["tcp/3306-3307"],
            "action": "allow",
        },
    ],
    "default_action": "drop",
}


def lab_with(policy=POLICY, data=MICROSEG):
    d = copy.deepcopy(data)
    if policy is not None:
        d["distributed_firewall"] = copy.deepcopy(policy)
    return parse_lab(d)


def flows_of(lab, host, sessions=None):
    b = next(b for b in switch_bindings(lab) if b.host == host)
    return compile_bridge(b, build_tables(lab, [b], {}, None), lab, sessions)


def test_protected_vnic_ipv4_enters_ct_in_its_own_zone():
    lab = lab_with()
    zones = conntrack_zones(lab)
    ingress = [
        f
        for f in flows_of(lab, "esx1")
        if f.table == Table.INGRESS and dict(f.match).get("eth_type") == 0x0800
    ]
    by_port = {dict(f.match)["in_port"]: f for f in ingress}
    web = next(p for p in switch_bindings(lab)[0].ports if p.name == "web-eth0")
    ct = by_port[web.ofport].actions[-1]
    assert ct == ("ct", False, zones["web-eth0"], Table.DFW_FROM_VM)


def test_every_output_to_a_protected_vnic_detours_through_its_zone():
    lab = lab_with()
    flows = flows_of(lab, "esx1")
    protected = {p.ofport for p in switch_bindings(lab)[0].ports if p.kind == "vnic"}
    direct = [
        f
        for f in flows
        if f.table not in (Table.DFW_TO_VM, Table.DFW_TO_VM_CT)
        and any(a[0] == "output" and a[1] in protected for a in f.actions)
    ]
    assert direct == []
    assert any(("resubmit", Table.DFW_TO_VM) in f.actions for f in flows)


def test_rules_become_ordered_matches_at_each_end():
    lab = lab_with()
    flows = flows_of(lab, "esx1")
    web = next(p.ofport for p in switch_bindings(lab)[0].ports if p.name == "web-eth0")
    to_web = [f for f in flows if f.table == Table.DFW_TO_VM_CT and dict(f.match).get(dfw.DEST_REG) == web]
    allow = [dict(f.match) for f in to_web if f.priority == Priority.DFW_RULES]
    # clients -> web:80, seen where web receives it: client's IP as source.
    assert allow == [
        {
            dfw.DEST_REG: web,
            "eth_type": 0x0800,
            "ct_state": (0x21, 0x21),
            "ip_proto": 6,
            "tcp_dst": 80,
            "ipv4_src": "10.30.0.10",
        }
    ]
    default = [f for f in to_web if f.priority == Priority.DFW_DEFAULT]
    assert len(default) == 1 and default[0].actions == ()  # default drop
    from_web = [
        dict(f.match) for f in flows if f.table == Table.DFW_FROM_VM and f.priority == Priority.DFW_RULES - 1
    ]
    # web -> db:3306-3307 where web sends it: one match per port-range block.
    assert sorted(m["tcp_dst"] for m in from_web) == [(3306, 0xFFFE)]
    assert all(m["ipv4_dst"] == "10.30.0.12" for m in from_web)


def test_port_ranges_are_exact_masks():
    def covered(masks):
        ports = set()
        for m in masks:
            value, mask = m if isinstance(m, tuple) else (m, 0xFFFF)
            ports |= {p for p in range(1, 65536) if p & mask == value}
        return ports

    for low, high in ((80, 80), (8000, 8080), (1, 1023), (3306, 3307), (1000, 65535)):
        assert covered(dfw._port_masks(low, high)) == set(range(low, high + 1))


def test_no_dfw_or_out_of_scope_leaves_flows_untouched():
    plain = lab_with(None)
    scoped = lab_with({**POLICY, "applied_to": ["db"]})
    assert flows_of(plain, "esx1") == flows_of(scoped, "esx1")  # web, attacker: no DFW
    assert flows_of(plain, "esx2") != flows_of(scoped, "esx2")  # db is protected


def test_state_imported_by_vmotion_is_accepted_both_ways():
    lab = lab_with()
    session = dfw.Session(6, "10.30.0.10", "10.30.0.11", 40000, 80)
    flows = flows_of(lab, "esx1", {"web-eth0": (session,)})
    imported = [
        dict(f.match) for f in flows if f.priority == Priority.DFW_IMPORTED and f.table == Table.DFW_FROM_VM
    ]
    assert {(m["ipv4_src"], m["tcp_src"], m["ipv4_dst"], m["tcp_dst"]) for m in imported} == {
        ("10.30.0.10", 40000, "10.30.0.11", 80),
        ("10.30.0.11", 80, "10.30.0.10", 40000),
    }


def test_parse_conntrack_dump():
    text = (
        "tcp,orig=(src=198.51.100.11,dst=10.10.10.11,sport=44080,dport=8080),reply=(src="
        "10.10.10.11,dst=198.51.100.11,sport=8080,dport=44080),zone=1,protoinfo=(state="
        "ESTABLISHED)\nicmp,orig=(src=10.0.0.1,dst=10.0.0.2,id=7,type=8,code=0),reply=("
        "src=10.0.0.2,dst=10.0.0.1,id=7,type=0,code=0),zone=1\n"
    )
    assert parse_conntrack(text) == [
        [6, "198.51.100.11", "10.10.10.11", 44080, 8080, None],
        [1, "10.0.0.1", "10.0.0.2", None, None, None],
    ]
    # With -s OVS prints the seconds the entry has left.
    with_timeout = text.replace("zone=1,protoinfo", "zone=1,timeout=29,protoinfo")
    assert parse_conntrack(with_timeout)[0][5] == 29


def test_imported_dfw_sessions_age_out_like_their_conntrack_entries():
    """A session exported with 30 s left lets its connection in on the new
    host until then, and is gone after: no flow admits it any more."""
    from controller.state import ControllerState

    state = ControllerState(lab_with())
    exported = [6, "10.30.0.10", "10.30.0.11", 40000, 80]
    assert state.set_dfw_sessions({"web-eth0": [exported + [1000.0 + 30]]}, now=1000.0)

    def imported():
        return [f for d in state.dpids for f in state.flows(d) if f.priority == Priority.DFW_IMPORTED]

    assert len(imported()) == 4  # both orientations, both directions
    assert not state.expire_dfw_sessions(1029.0) and len(imported()) == 4
    assert state.expire_dfw_sessions(1030.5) and imported() == []
    # An expired session is not imported again when desired.json is reread.
    assert not state.set_dfw_sessions({"web-eth0": [exported + [1030.0]]}, now=1031.0)
    assert imported() == []


# -- the perimeter firewall --------------------------------------------------------------------
def test_perimeter_ruleset_is_stateful_and_counted():
    lab = parse_lab(VMSC)
    fw = next(h for h in lab.hosts if h.name == "fw1").firewall
    text = perimeter.ruleset(lab, fw)
    lines = [line.strip() for line in text.splitlines()]
    state = lines.index('ct state established,related counter accept comment "established"')
    invalid = lines.index('ct state invalid counter drop comment "invalid"')
    assert state < invalid
    assert (
        "ip saddr { 198.51.100.0/24 } ip daddr { 10.10.10.0/24 } tcp dport 8080 "
        'ct state new counter accept comment "users-to-app"'
    ) in lines
    assert lines[-3] == 'counter drop comment "default"'


def test_rule_counters_and_conntrack_summary():
    nft = {
        "nftables": [
            {
                "rule": {
                    "comment": "invalid",
                    "expr": [{"counter": {"packets": 3, "bytes": 180}}, {"drop": None}],
                }
            },
            {"rule": {"comment": "users-to-app", "expr": [{"counter": {"packets": 1, "bytes": 60}}]}},
            {"rule": {"comment": "users-to-app", "expr": [{"counter": {"packets": 2, "bytes": 84}}]}},
        ]
    }
    import json

    assert perimeter.rule_counters(json.dumps(nft)) == {
        "invalid": {"packets": 3, "bytes": 180},
        "users-to-app": {"packets": 3, "bytes": 144},
    }
    ct = (
        "tcp      6 119 SYN_SENT src=198.51.100.11 dst=10.10.10.11 sport=1 dport=8080 "
        "[UNREPLIED] src=10.10.10.11 dst=198.51.100.11 sport=8080 dport=1 mark=0 use=1\n"
        "tcp      6 431999 ESTABLISHED src=198.51.100.11 dst=10.10.10.11 sport=2 dport=8080 "
        "src=10.10.10.11 dst=198.51.100.11 sport=8080 dport=2 [ASSURED] mark=0 use=1\n"
        "conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.\n"
    )
    assert perimeter.conntrack_summary(ct) == {
        "entries": 2,
        "unreplied": 1,
        "half_open": 1,
        "SYN_SENT": 1,
        "ESTABLISHED": 1,
    }


# -- lab checks ---------------------------------------------------------------------------------
def _error(data) -> str:
    with pytest.raises(LabError) as err:
        parse_lab(data, "lab.yaml")
    return str(err.value)


def _vmsc(edit):
    d = copy.deepcopy(VMSC)
    edit(d)
    return d


@pytest.mark.parametrize(
    "edit, expected",
    [
        (
            lambda d: d["hosts"][1]["firewall"]["rules"][0].update(sources=["nowhere"]),
            "hosts[1].firewall.rules[0].sources[0]: 'nowhere' is not 'any', a VM or an IPv4 network",
        ),
        (
            lambda d: d["hosts"][1]["firewall"]["rules"][0].update(applied_to=["vm1"]),
            "hosts[1].firewall.rules[0].applied_to: applied_to is for the distributed firewall",
        ),
        (
            lambda d: d["hosts"][0].update(firewall={"rules": []}),
            "hosts[0].firewall: only a host of kind firewall filters (this one is router)",
        ),
        (
            lambda d: d["hosts"][1].pop("firewall"),
            "hosts[1].firewall: a host of kind firewall needs a firewall section",
        ),
        (
            lambda d: d["hosts"][0]["interfaces"][0]["vip"].update(ip="10.9.9.1"),
            "hosts[0].interfaces[0].vip.ip: the virtual gateway 10.9.9.1 must be another address",
        ),
        (
            lambda d: d["hosts"][0].update(kind="host"),
            "hosts[0].interfaces[0].vip: a virtual gateway is a router's (kind: router or firewall)",
        ),
        (
            lambda d: d.update(distributed_firewall={"groups": [{"name": "vm1"}]}),
            "distributed_firewall.groups[0].name: 'vm1' is also a VM's name",
        ),
        (
            lambda d: d.update(
                distributed_firewall={"rules": [{"name": "r", "action": "allow", "services": ["tcp/0-80"]}]}
            ),
            "distributed_firewall.rules[0].services[0]: port range '0-80' must be within 1-65535",
        ),
        (
            lambda d: d.update(distributed_firewall={"applied_to": ["ghost"]}),
            "distributed_firewall.applied_to[0]: 'ghost' is not 'any', a VM, a security group",
        ),
        (
            lambda d: d.update(distributed_firewall={"applied_to": ["10.0.0.0/24"]}),
            "distributed_firewall.applied_to[0]: '10.0.0.0/24' names no VM: applied_to is where the rule "
            "is enforced",
        ),
        (
            lambda d: d.update(
                distributed_firewall={
                    "groups": [{"name": "nets", "ips": ["10.0.0.0/24"]}],
                    "rules": [{"name": "r", "action": "drop", "applied_to": ["nets"]}],
                }
            ),
            "distributed_firewall.rules[0].applied_to[0]: 'nets' names no VM",
        ),
    ],
)
def test_firewall_lab_errors(edit, expected):
    assert expected in _error(_vmsc(edit))


def test_the_dci_delay_label_comes_from_the_qdiscs_found():
    from experiments.vmsc_asymmetry import dci_delay_from_qdiscs

    htb = (
        "qdisc htb 5: root refcnt 2 r2q 10 default 0x1 direct_packets_stat 0\n"
        "qdisc tbf 10: parent 5:1 rate 10Mbit burst 15Kb lat 50ms\n"
    )
    none = dci_delay_from_qdiscs({"psw1-24": htb, "psw2-24": htb})
    assert none["applied_ms"] == 0.0 and none["how"].startswith("none")
    assert none["qdiscs"] == {"psw1-24": ["htb", "tbf"], "psw2-24": ["htb", "tbf"]}
    netem = htb + "qdisc netem 10: parent 5:1 limit 1000 delay 5ms  1ms\n"
    some = dci_delay_from_qdiscs({"psw1-24": netem, "psw2-24": htb})
    assert some["applied_ms"] == 5.0 and some["how"] == "netem, 5 ms"

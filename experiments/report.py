"""``results/REPORT.md``: every claim of every seed, what was measured, and
whether it held, generated from the result JSON files alone.

Each claim is listed once, in the seed's own order. A claim an experiment
measures shows the measured value (the experiment's ``MEASURED[claim]``
renders it from its JSON) and its verdict: reproduced / not reproduced. A
claim no experiment measures yet says so, with the issue that will; a claim
this machine cannot emulate says why. Nothing here is typed in by hand but
the claims' wording.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import REGISTRY, fidelity, get
from .fidelity import trustworthy

# (seed file, title, [(claim in one line, experiment, verdict key)]).
# experiment None: not measured yet; the key then names the issue that will.
SEEDS = [
    (
        "platform",
        "the testbed's own checks (no seed)",
        [
            (
                "Who reaches whom equals what the port group / VLAN design allows",
                "two-hosts",
                "reachability_matches_design",
            ),
            (
                "VM-to-VM TCP on a 10 GbE team is ~10x a 1 GbE team (link shaping holds)",
                "two-hosts",
                "throughput_ratio_about_10",
            ),
        ],
    ),
    (
        "000_9aff30999f83c9dc.txt",
        "vmknic egress for NBD backup traffic",
        [
            (
                "The TCP session to vmk0:902 stays intact when replies leave by another vmk",
                "vmk-egress",
                "session_intact_in_every_case",
            ),
            (
                "With vmk4 in the backup subnet, replies keep vmk0's source IP but leave by vmk4 "
                "and the 10 GbE uplinks",
                "vmk-egress",
                "B_replies_from_vmk0_ip_leave_by_vmk4_on_10gbe",
            ),
            (
                "esxtop: vmk0 PKTRX/s about equals vmk4 PKTTX/s",
                "vmk-egress",
                "B_vmk0_pktrx_tracks_vmk4_pkttx",
            ),
            (
                "The backup then runs at 10 GbE instead of 1 GbE speed",
                "vmk-egress",
                "throughput_B_over_A_about_10",
            ),
            (
                "(contrast) Strict source-based egress keeps replies on vmk0 and 1 GbE",
                "vmk-egress",
                "source_egress_keeps_replies_on_vmk0_1gbe",
            ),
            (
                "A port mirror of vmk4 alone shows only the host's packets to the backup node "
                "(the reverse flow goes to vmk0, not in that capture)",
                "vmk-egress",
                "port_mirror_splits_the_session_by_vmk",
            ),
        ],
    ),
    (
        "001_d0eaf9e6ebb9b045.txt",
        "vSwitch nuggets for network admins",
        [
            (
                "No L2 learning: unknown unicast reaches no other VM",
                "vswitch-nuggets",
                "no_learning_unknown_unicast_not_flooded",
            ),
            (
                "MAC address changes = reject: frames to a guest that changed its MAC are dropped",
                "vswitch-nuggets",
                "mac_change_reject_drops",
            ),
            (
                "MAC address changes = accept: frames reach the new MAC",
                "vswitch-nuggets",
                "mac_change_accept_delivers",
            ),
            (
                "Forged transmits = reject: frames with another source MAC are dropped",
                "vswitch-nuggets",
                "forged_transmit_reject_drops",
            ),
            (
                "Forged transmits = accept: they are forwarded",
                "vswitch-nuggets",
                "forged_transmit_accept_delivers",
            ),
            (
                "No IGMP snooping needed: multicast reaches only vNICs whose filter has the group "
                "MAC (32:1 overlap included)",
                "vswitch-nuggets",
                "multicast_only_to_subscribers_with_32_to_1_overlap",
            ),
            (
                "A promiscuous guest becomes a monitor port without a mirror session",
                "vswitch-nuggets",
                "promiscuous_guest_is_monitor_port",
            ),
            (
                "(teaming) Failover and failback move ports; notify switches sends RARPs",
                "vswitch-nuggets",
                "failover_failback_notify_switches",
            ),
            ("(vMotion) MAC, IP and TCP sessions survive", "vswitch-nuggets", "vmotion_keeps_tcp_sessions"),
            (
                "After vMotion a spoofed broadcast from the VM fixes physical switch tables; a quiet "
                "VM is unreachable for long without it",
                "vswitch-nuggets",
                "quiet_vm_vmotion_notify_switches",
            ),
            (
                "After vMotion a spoofed IGMP query makes the guest re-report within the max response time",
                "vswitch-nuggets",
                "multicast_after_vmotion_spoofed_igmp_query",
            ),
        ],
    ),
    (
        "002_ac0312c9dba5e18c.txt",
        "reverse teaming on the ESXi vSwitch",
        [
            (
                "Flooded frames reach both uplinks: PortOutput shows duplicates, VnicRx does not",
                "reverse-teaming",
                "portoutput_duplicates_vnicrx_none",
            ),
            (
                "A promiscuous VM sees same-host traffic, outside->same-host only when the uplinks "
                "match, never outside->outside",
                "reverse-teaming",
                "promiscuous_visibility_table",
            ),
        ],
    ),
    (
        "003_41155c6ca9cde2fe.txt",
        "stretched DCI: stateful firewalls vs distributed firewall",
        [
            (
                "After vMotion to the other site with local egress, perimeter firewalls drop half flows",
                "vmsc-asymmetry",
                "perimeter_local_egress_breaks_flows",
            ),
            (
                "A distributed firewall at the vNIC keeps established connections across vMotion",
                "vmsc-asymmetry",
                "dfw_keeps_connections",
            ),
            (
                "Egress back through the first site (trombone) loads the DCI",
                "vmsc-asymmetry",
                "trombone_loads_dci",
            ),
            (
                "ERSPAN mirroring of a VM to a Wireshark host reassembles its HTTP (traffic that "
                "never hit a physical wire)",
                "erspan-capture",
                "erspan_http_reassembled",
            ),
            (
                "(mirroring) A snap length cuts every mirrored frame to that length",
                "erspan-capture",
                "mirror_snap_length",
            ),
            (
                "(mirroring) A local session feeds a VM on the same host, which then receives and "
                "sends nothing else",
                "erspan-capture",
                "local_mirror_receive_only",
            ),
            (
                "(mirroring) After vMotion the destination host mirrors the VM",
                "erspan-capture",
                "mirroring_follows_vmotion",
            ),
            (
                "Micro-segmentation stops a compromised VM in the same L2 segment",
                "microsegmentation",
                "dfw_stops_compromised_vm",
            ),
        ],
    ),
    (
        "004_6019cda390e34379.txt",
        "NSX packet walks: overlay, ARP suppression, DLR",
        [
            (
                "VLAN-backed routed walk: ARP for the gateway, router reply, packet via the router; "
                "overlay walk: VTEP-to-VTEP encapsulation, VM MACs never on the wire",
                "nsx-packet-walk",
                "walk_matches_seed_steps",
            ),
            (
                "Physical switches learn only VTEP MACs with the overlay (fib reduced)",
                "nsx-packet-walk",
                "physical_switches_learn_only_vtep_macs",
            ),
            (
                "Unicast mode: the host already knows VM2's IP/MAC, so ARP is not flooded",
                "nsx-packet-walk",
                "arp_suppressed_on_source_host",
            ),
            (
                "The distributed router routes on the source host: same-host routed traffic stays "
                "on the host",
                "nsx-packet-walk",
                "dlr_keeps_same_host_routing_on_host",
            ),
            (
                "VXLAN needs transport MTU >= 1550: at 1500 ping works, bulk TCP does not",
                "nsx-packet-walk",
                "transport_mtu_1500_breaks_bulk_tcp_not_ping",
            ),
        ],
    ),
    (
        "vSphere",
        "documented behaviours (vSphere Networking and Security guides, beyond the seeds)",
        [
            (
                "Security policy, standard port group: forged transmits are judged against the effective "
                "MAC (MAC changes = accept: the new MAC sends and receives, the .vmx MAC is forged; "
                "= reject: only the .vmx MAC sends, nothing is received until changed back)",
                "port-security",
                "standard_port_group_security_against_effective_mac",
            ),
            (
                "The same on a distributed port group",
                "port-security",
                "distributed_port_group_security_against_effective_mac",
            ),
            (
                "The same on an NSX logical switch (a port group of the prepared distributed switch)",
                "port-security",
                "logical_switch_security_against_effective_mac",
            ),
            (
                "Route based on IP hash: each packet's uplink is (last octet of source XOR destination) "
                "mod the uplinks, over a static EtherChannel; a failed member's flows move and come back",
                "teaming-policies",
                "ip_hash_per_packet_by_documented_hash",
            ),
            (
                "Explicit failover order: the standby takes over; failback yes returns to the active "
                "uplink on recovery, failback no keeps the standby",
                "teaming-policies",
                "explicit_failover_failback_yes_and_no",
            ),
            (
                "VLAN tagging: an EST port group (VLAN 0) sends the guest's frames untagged; on a VGT "
                "port group (VLAN 4095) the guest's own 802.1Q tags pass both ways",
                "teaming-policies",
                "est_untagged_and_vgt_guest_tags",
            ),
            (
                "Route based on source MAC hash: each VM's frames leave by one uplink, the VMs spread "
                "over the team, and a VM keeps its uplink when its vNIC gets a new port",
                "teaming-policies",
                "source_mac_hash_one_uplink_per_mac",
            ),
            (
                "Two vSwitches on one host fail over on their own: vSwitch1's active uplink failing "
                "moves only its ports to its standby and back",
                "teaming-policies",
                "two_vswitches_fail_over_alone",
            ),
            (
                "Beacon probing detects a failure beyond the first switch within three missed beacons "
                "(1 s apart); link status leaves the VMs on that uplink cut off",
                "teaming-policies",
                "beacon_probing_detects_an_upstream_failure",
            ),
            (
                "Beacon probing with two uplinks cannot tell which failed and sends on both (shotgun)",
                "teaming-policies",
                "beacon_probing_two_uplinks_shotgun",
            ),
            (
                "Route based on physical NIC load: an uplink above 75% for 30 s gives up its busiest "
                "port to a less loaded uplink (30-40 s after two busy VMs started on one uplink)",
                "teaming-policies",
                "load_based_moves_one_busy_port",
            ),
            (
                "Route based on physical NIC load leaves a team under 75% alone",
                "teaming-policies",
                "load_based_leaves_an_unsaturated_team",
            ),
            (
                "LACP on a distributed switch: a LAG bundles its members with the port channel when "
                "at least one end is active (active/active, passive/active)",
                "lacp",
                "bundle_forms_when_one_end_is_active",
            ),
            (
                "A passive LAG and a passive port channel never form a bundle: neither sends an LACPDU",
                "lacp",
                "passive_passive_never_forms",
            ),
            (
                "A LAG's load balancing mode spreads flows over its members, each flow on one member",
                "lacp",
                "frames_hash_across_members",
            ),
            (
                "The LAG's load balancing mode decides what spreads: with source and destination IP, "
                "flows between two addresses share one member whatever their ports, flows to many "
                "addresses spread",
                "lacp",
                "load_balancing_mode_decides_what_spreads",
            ),
            (
                "A member whose partner goes silent leaves the bundle after the LAG's timeout (fast: "
                "three 1 s intervals), its flows move to the other members and return with it",
                "lacp",
                "silent_partner_leaves_after_fast_timeout",
            ),
            (
                "The same with the slow timeout: three 30 s intervals",
                "lacp",
                "silent_partner_leaves_after_slow_timeout",
            ),
            (
                "Traffic shaping, standard switch: a port sends at the average bandwidth averaged over "
                "time (within 5%)",
                "traffic-shaping",
                "standard_switch_shapes_outbound_to_the_average",
            ),
            (
                "After idle, a port spends its burst bonus (burst size bytes above the average) at the "
                "peak bandwidth, then settles (within 10%)",
                "traffic-shaping",
                "burst_bonus_spent_at_the_peak",
            ),
            (
                "A standard switch shapes outbound traffic only, and a port group's setting overrides "
                "its vSwitch's (traffic to a shaped VM, and from an overriding port group, is unshaped)",
                "traffic-shaping",
                "standard_switch_leaves_inbound_and_overridden_port_groups_unshaped",
            ),
            (
                "A distributed port group shapes ingress (VM into the switch) and egress (switch to "
                "the VM) on their own, each to its average (within 5%)",
                "traffic-shaping",
                "distributed_port_group_shapes_ingress_and_egress",
            ),
            (
                "Port mirroring: a VMkernel adapter is a source like a vNIC; a capture VM on the host "
                "gets what it receives and what it sends, untagged",
                "port-mirroring",
                "vmk_source_mirrored_both_ways",
            ),
            (
                "Remote Mirroring Source: copies leave by the chosen uplink in the RSPAN VLAN (the "
                "original VLAN preserved inside) and a physical switch carries them to an analyser",
                "port-mirroring",
                "rspan_copies_reach_the_analyser_in_the_rspan_vlan",
            ),
            (
                "Encapsulated Remote Mirroring, ERSPAN type III: each copy's header carries the session, "
                "the direction it was mirrored in and the original VLAN",
                "port-mirroring",
                "erspan_type_iii_headers_carry_direction_and_vlan",
            ),
        ],
    ),
]


def _load(results: Path, name: str):
    path = results / name / "result.json"
    return json.loads(path.read_text()) if path.exists() else None


def build(results: Path) -> str:
    """The report's Markdown, from ``results/<experiment>/result.json``."""
    loaded = {name: _load(results, name) for name in REGISTRY}
    lines = [
        "# Reproduction report",
        "",
        "Generated by `vlab run` from `results/*/result.json`; every value below is "
        "measured on the machine in the environment table.",
        "",
        "COUNTS",
        "",
    ]
    counts = {"reproduced": 0, "not reproduced": 0, "untrustworthy": 0, "not measured yet": 0}
    for seed, title, claims in SEEDS:
        heading = f"Seed {seed[:3]}" if seed[0].isdigit() else seed.capitalize() if seed.islower() else seed
        lines += [f"## {heading}: {title}", "", "| claim | measured | verdict |", "|---|---|---|"]
        figures = []
        for text, experiment, key in claims:
            result = loaded.get(experiment) if experiment else None
            if experiment is None or result is None:
                why = key if experiment is None else f"run `vlab run {experiment}`"
                lines.append(f"| {text} | - | not measured yet ({why}) |")
                counts["not measured yet"] += 1
                continue
            ok = bool(result.get("verdicts", {}).get(key))
            measured = getattr(get(experiment), "MEASURED", {}).get(key)
            value = measured(result) if measured else "see result.json"
            scope = getattr(get(experiment), "FIDELITY_SCOPE", {})
            failed = [c["check"] for c in fidelity.failed_for(result, key, scope)]
            if failed:
                counts["untrustworthy"] += 1
                lines.append(
                    f"| {text} | {value} | untrustworthy (fidelity check failed: {', '.join(failed)}) |"
                )
                continue
            verdict = "reproduced" if ok else "not reproduced"
            counts[verdict] += 1
            lines.append(f"| {text} | {value} | **{verdict}** |")
            figure = f"{experiment}/{experiment}.png"
            if (results / figure).exists() and figure not in figures:
                figures.append(figure)
        lines.append("")
        lines += [f"![{f}]({f})" for f in figures]
        lines.append("")
    lines += _environment(loaded)
    lines[lines.index("COUNTS")] = "Claims: " + ", ".join(f"{n} {k}" for k, n in counts.items()) + "."
    return "\n".join(lines) + "\n"


def _environment(loaded: dict) -> list[str]:
    runs = {n: r for n, r in loaded.items() if r}
    lines = [
        "## Runs and environment",
        "",
        "| experiment | wall time (s) | git | date | datapath | link scale | CPU load | fidelity |",
        "|---|---|---|---|---|---|---|---|",
    ]
    total = 0.0
    for name, r in runs.items():
        env = r.get("environment", {})
        wall = env.get("wall_s") or r.get("wall_s") or 0.0
        total += wall
        fid = r.get("fidelity", {})
        checks = fid.get("checks", [])
        scope = getattr(get(name), "FIDELITY_SCOPE", {})
        verdict = (
            "not checked"
            if not checks
            else "ok"
            if trustworthy(r)
            else "FAILED: "
            + ", ".join(
                f"{c['check']} = {c['value']} (limit {c['limit']}"
                + ("" if any(guards_any(scope, c["check"], r)) else "; guards no claim")
                + ")"
                for c in fidelity.failed(r)
            )
        )
        if checks and fidelity.not_measured(r):
            verdict += "; not measured: " + ", ".join(c["check"] for c in fidelity.not_measured(r))
        cpu = fid.get("cpu_percent")
        lines.append(
            f"| {name} | {wall:.0f} | {env.get('git', '?')} | {env.get('date', '?')} | "
            f"{env.get('datapath', '?')} | {env.get('link_scale', '?')} | "
            f"{'-' if cpu is None else f'{cpu:.0f}%'} | {verdict} |"
        )
    lines += ["", f"Total wall time of the experiments: {total:.0f} s.", ""]
    if runs:
        env = next(iter(runs.values())).get("environment", {})
        lines += [
            "Fidelity checks: CPU load at most 90% over the lab sessions; no drops at the "
            "shaping queues where frames are counted; TCP at >= 0.9 of the configured "
            "link rate where an experiment fills a link (experiments/fidelity.py). "
            "A claim guarded by a failed check is reported as untrustworthy, not as a "
            "finding; a link-rate check guards only the claims about throughput "
            "(each experiment's FIDELITY_SCOPE).",
            "",
        ]
        lines += [
            "| kernel | OVS | Mininet | os-ken | Python | CPUs | netem |",
            "|---|---|---|---|---|---|---|",
            f"| {env.get('kernel')} | {env.get('ovs')} | {env.get('mininet')} | "
            f"{env.get('os_ken')} | {env.get('python')} | {env.get('cpus')} | "
            f"{'available' if env.get('netem_available') else 'not available'} |",
            "",
            "No experiment uses randomness of its own (no random seed); guests' "
            "kernels choose IGMP report delays at random, which the results record.",
        ]
    return lines


def guards_any(scope: dict, check: str, result: dict):
    """For each of a result's claims, whether ``check`` guards it."""
    return (fidelity.guards(scope, check, claim) for claim in result.get("verdicts", {}))


def write(results: Path) -> Path:
    path = results / "REPORT.md"
    path.write_text(build(results))
    return path

"""A stateful perimeter firewall: the lab's rules as an nftables ruleset.

The firewall is a Linux router whose kernel tracks connections (conntrack),
as a commercial firewall does. Its forward chain passes packets of
connections it saw open, drops packets that belong to none (``ct state
invalid``: with ``nf_conntrack_tcp_loose=0`` a mid-stream segment or a
SYN-ACK without its SYN is invalid), decides new connections by the lab's
rules in order, and ends with the default action. Every rule carries a
counter and a comment, so experiments read per-rule drops as numbers
(``rule_counters``) and half-open connections from the conntrack table
(``conntrack_summary``).
"""

from __future__ import annotations

import json
import re

from vlab.lab.firewall import Service, resolve
from vlab.lab.model import FirewallRule, Lab, PerimeterFirewall

TABLE = "vlab"
INVALID = "invalid"
DEFAULT = "default"
ESTABLISHED = "established"


def _addresses(lab: Lab, words: tuple[str, ...]) -> list[str]:
    return [str(n) for n in resolve(lab, words, groups=False).networks_of(lab)]


def _rule(lab: Lab, rule: FirewallRule) -> list[str]:
    parts = []
    for field, words in (("saddr", rule.sources), ("daddr", rule.destinations)):
        nets = _addresses(lab, words)
        if nets != ["0.0.0.0/0"]:
            parts.append(f"ip {field} {{ {', '.join(nets)} }}")
    verdict = "accept" if rule.action == "allow" else "drop"
    lines = []
    for text in rule.services:
        service = Service.parse(text)
        match = list(parts)
        if service.proto is not None and service.ports is None:
            match.append(f"ip protocol {service.name}")
        elif service.ports is not None:
            low, high = service.ports
            match.append(f"{service.name} dport {low if low == high else f'{low}-{high}'}")
        lines.append(" ".join(match + ["ct state new", "counter", verdict, f'comment "{rule.name}"']))
    return lines


def ruleset(lab: Lab, fw: PerimeterFirewall) -> str:
    """The nftables ruleset (``nft -f`` input) of one firewall."""
    default = "accept" if fw.default_action == "allow" else "drop"
    rules = [line for rule in fw.rules for line in _rule(lab, rule)]
    body = "\n".join(
        f"        {r}"
        for r in [
            f'ct state established,related counter accept comment "{ESTABLISHED}"',
            f'ct state invalid counter drop comment "{INVALID}"',
            *rules,
            f'counter {default} comment "{DEFAULT}"',
        ]
    )
    return (
        f"table inet {TABLE} {{\n    chain forward {{\n"
        f"        type filter hook forward priority 0; policy accept;\n"
        f"{body}\n    }}\n}}\n"
    )


def rule_counters(nft_json: str) -> dict[str, dict[str, int]]:
    """``nft -j list table inet vlab`` -> {rule comment: {packets, bytes}}
    (a rule split per service adds up under its one name)."""
    out: dict[str, dict[str, int]] = {}
    for item in json.loads(nft_json).get("nftables", []):
        rule = item.get("rule")
        if not rule or "comment" not in rule:
            continue
        for expr in rule.get("expr", []):
            if "counter" in expr:
                c = out.setdefault(rule["comment"], {"packets": 0, "bytes": 0})
                c["packets"] += expr["counter"]["packets"]
                c["bytes"] += expr["counter"]["bytes"]
    return out


_STATE = re.compile(r"^\S+\s+\d+\s+\d+\s+([A-Z_]+)\s")


def conntrack_summary(text: str) -> dict[str, int]:
    """``conntrack -L`` -> counts: TCP states, ``unreplied`` (seen one way
    only) and ``half_open`` (TCP never established: SYN_SENT, SYN_RECV)."""
    out = {"entries": 0, "unreplied": 0, "half_open": 0}
    for line in text.splitlines():
        if not line.strip() or line.startswith("conntrack"):
            continue
        out["entries"] += 1
        if "[UNREPLIED]" in line:
            out["unreplied"] += 1
        m = _STATE.match(line)
        if m and line.startswith("tcp"):
            out[m.group(1)] = out.get(m.group(1), 0) + 1
            if m.group(1) in ("SYN_SENT", "SYN_RECV"):
                out["half_open"] += 1
    return out

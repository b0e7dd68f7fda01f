"""Faults injected into real links: frames of one kind dropped on a port's
egress, with the link and every other frame untouched.

This kernel has no netem and no tc filter modules, but tc's ``bpf``
classifier and the ``clsact`` qdisc are built in: a classic BPF program run
in direct-action mode returns the verdict itself (TC_ACT_SHOT drops, TC_ACT_OK
passes), so no action module is needed either. The filter sits on the clsact
egress hook, beside (not instead of) the port's root qdisc (its link's htb).
"""

from __future__ import annotations

ETH_SLOW_PROTOCOLS = 0x8809  # LACP (IEEE 802.3 slow protocols)
TC_ACT_OK, TC_ACT_SHOT = 0, 2
FILTER_PREF = 49  # our filter's priority on the egress hook, to delete it alone


def drop_ethertype_program(ethertype: int) -> str:
    """tc's bytecode syntax for: load the ethertype (offset 12: the frames
    this drops are untagged), drop if equal, else pass."""
    code = [
        (0x28, 0, 0, 12),  # ldh [12]
        (0x15, 0, 1, ethertype),  # jeq #ethertype, next, skip 1
        (0x06, 0, 0, TC_ACT_SHOT),  # ret #TC_ACT_SHOT
        (0x06, 0, 0, TC_ACT_OK),  # ret #TC_ACT_OK
    ]
    return f"{len(code)}," + ",".join(f"{op} {jt} {jf} {k}" for op, jt, jf, k in code)


def drop_ethertype(dev: str, ethertype: int, on: bool = True) -> list[str]:
    """Shell commands that start (``on``) or stop dropping ``ethertype``
    frames ``dev`` sends."""
    if not on:
        return [f"tc filter del dev {dev} egress pref {FILTER_PREF} 2>/dev/null || true"]
    return [
        f"tc qdisc add dev {dev} clsact 2>/dev/null || true",
        f"tc filter replace dev {dev} egress pref {FILTER_PREF} bpf da bytecode "
        f"'{drop_ethertype_program(ethertype)}'",
    ]

"""The pipeline declaration as docs/pipeline.md (``vlab pipeline``)."""

from __future__ import annotations

from typing import Iterable

from .pipeline import CONCERN_NAMES, PIPELINE, STAGES


def _names(tables: Iterable[int]) -> str:
    return ", ".join(STAGES[t].name for t in sorted(tables)) or "-"


def markdown() -> str:
    """The pipeline as the table in docs/pipeline.md."""
    lines = [
        "# The vSwitch pipeline",
        "",
        "Generated from `controller/pipeline.py` (`PIPELINE`) by `vlab pipeline`; "
        "a unit test keeps this file equal to it. Every flow a compiler returns is "
        "checked against this declaration (`controller.pipeline_check.check`). A frame that "
        "matches no flow in a table is dropped (OpenFlow 1.3 table miss); inside a "
        "`resubmit` a miss ends only that lookup.",
        "",
        "| table | stage | what it does | goes to | recirculates to | written by |",
        "|---|---|---|---|---|---|",
    ]
    for s in PIPELINE:
        lines.append(
            f"| {s.table} | `{s.name}` | {s.purpose} | {_names(s.goto)} | "
            f"{_names(s.recirculate)} | "
            f"{', '.join(CONCERN_NAMES[c] for c in sorted(s.concerns))} |"
        )
    for s in PIPELINE:
        lines += [
            "",
            f"## {s.table} `{s.name}`",
            "",
            f"Matches: {', '.join(f'`{m}`' for m in sorted(s.matches))}. "
            f"Sets: {', '.join(f'`{m}`' for m in sorted(s.sets)) or 'nothing'}.",
            "",
            "| priority | band | meaning |",
            "|---|---|---|",
        ]
        for b in sorted(s.bands, key=lambda b: -b.high):
            prio = str(b.low) if b.low == b.high else f"{b.low}-{b.high}"
            lines.append(f"| {prio} | {b.name} | {b.meaning} |")
    return "\n".join(lines) + "\n"

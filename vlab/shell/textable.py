"""Fixed-width text tables for the ESXi-style views (esxtop, esxcli)."""

from __future__ import annotations


def render(rows: list[dict], columns, right: bool = False, rule: bool = False) -> str:
    """Columns as wide as their widest cell; ``right`` aligns numbers the way
    esxtop does, ``rule`` underlines the header the way esxcli does."""
    widths = {c: max([len(c)] + [len(str(r[c])) for r in rows]) for c in columns}
    pad = (lambda text, c: text.rjust(widths[c])) if right else (lambda text, c: text.ljust(widths[c]))
    lines = ["  ".join(pad(c, c) for c in columns)]
    if rule:
        lines.append("  ".join("-" * widths[c] for c in columns))
    lines += ["  ".join(pad(str(r[c]), c) for c in columns) for r in rows]
    # Left-aligned last columns would pad every line with spaces nobody sees.
    return "\n".join(line.rstrip() for line in lines)

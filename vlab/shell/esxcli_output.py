"""What every esxcli command prints and how it fails: a table (header,
dashes, rows), a list of key: value structures, or ``Error: ...`` with exit
code 1; and ``Command``, one namespace path's options and view."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable, Optional, Union

from .hostfacts import HostFacts
from .textable import render


@dataclass(frozen=True)
class Table:
    """esxcli's table output: header, dashes, one row per item."""

    columns: tuple[str, ...]
    rows: list[dict]

    def text(self) -> str:
        return render([{k: value(v) for k, v in r.items()} for r in self.rows], self.columns, rule=True)


@dataclass(frozen=True)
class Structs:
    """esxcli's structure output: each item's title, then ``   Key: value``
    lines; a ``get`` prints one structure without a title."""

    items: list[tuple[Optional[str], list[tuple[str, object]]]]

    def text(self) -> str:
        blocks = []
        for title, fields in self.items:
            lines = [title] if title else []
            lines += [f"   {k}: {value(v)}".rstrip() for k, v in fields]
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)


def value(v) -> str:
    """A field as esxcli prints it: booleans in lower case, lists comma-separated."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    return "" if v is None else str(v)


Output = Union[Table, Structs]


class EsxcliError(Exception):
    """What esxcli prints as ``Error: ...`` (exit 1), followed by the
    command's usage when the options were wrong (``usage``), not when the
    request itself failed (a port group in use, a change refused)."""

    def __init__(self, message: str, usage: bool = True):
        super().__init__(message)
        self.usage = usage


@dataclass(frozen=True)
class Command:
    """One esxcli command: its options (flag names, dest, required, help)
    and the view that produces its output from the host's facts."""

    view: Callable[[HostFacts, argparse.Namespace], Output]
    options: tuple[tuple[tuple[str, ...], str, bool, str], ...] = ()
    help: str = ""

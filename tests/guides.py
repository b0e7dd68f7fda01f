"""A teaching guide (docs/labs/*.md) as a student walks it: its exercises'
command blocks, in order, typed at the lab CLI (``vlab lab up``'s
``EsxiCLI``) one line at a time, each line's output kept for the test to
check against the guide's "What to look for". The commands come from the
guide itself, so a guide can never drift from the testbed: change a command
and the test runs the new one.

A block is a fenced code block without a language inside an ``### Exercise``
section (the guide's `sh` blocks are for a terminal: bringing a lab up).
Placeholders the student fills in from an earlier output (``WORLD_ID_OF_VM12``)
are the caller's to substitute.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GUIDES = REPO / "docs" / "labs"


@dataclass(frozen=True)
class Block:
    """One exercise's command block: the exercise's number and its lines."""

    exercise: int
    lines: tuple[str, ...]


def blocks(guide: str) -> list[Block]:
    """The command blocks of ``docs/labs/<guide>.md``, in order."""
    out, exercise, fence, lines = [], None, None, []
    for raw in (GUIDES / f"{guide}.md").read_text().splitlines():
        heading = re.match(r"### Exercise (\d+)", raw)
        if heading:
            exercise = int(heading.group(1))
        elif raw.startswith("## "):
            exercise = None
        if raw.startswith("```"):
            if fence is None:
                fence, lines = raw[3:].strip(), []
            else:
                if fence == "" and exercise is not None:
                    out.append(Block(exercise, tuple(x for x in lines if x.strip())))
                fence = None
        elif fence is not None:
            lines.append(raw)
    return out


class Student:
    """The lab CLI of a running lab, typed into a line at a time (``capfd``:
    pytest's fd-level capture, which sees what the CLI and the nodes print)."""

    def __init__(self, net, capfd):
        from mininet.log import lg, setLogLevel

        from vlab.shell.labcli import EsxiCLI

        self._level = lg.level
        setLogLevel("output")  # what vlab lab up sets: the CLI prints at this level
        # A node's output reaches the terminal through Mininet's logger, whose
        # stream may be one an earlier test's capture left behind: read it
        # from the logger itself, in place of its own handlers while the
        # student types. (The CLI's own commands print to stdout.)
        self._seen: list[str] = []
        self._handler = logging.Handler(level=logging.DEBUG)
        self._handler.emit = lambda record: self._seen.append(record.getMessage())
        self._handlers = list(lg.handlers)
        for h in self._handlers:
            lg.removeHandler(h)
        lg.addHandler(self._handler)
        # Never readable: the CLI waits on its input while a node runs a
        # command, and the student types nothing then.
        self._r, self._w = os.pipe()
        self._stdin = os.fdopen(self._r)
        with tempfile.NamedTemporaryFile("w", suffix=".cli", delete=False) as empty:
            self._script = empty.name  # a script starts the CLI without its loop
        self.cli = EsxiCLI(net, stdin=self._stdin, script=self._script)
        self.capfd = capfd
        capfd.readouterr()

    def type(self, line: str) -> str:
        """What the student sees after typing ``line``."""
        self._seen.clear()
        self.cli.onecmd(line)
        out, err = self.capfd.readouterr()
        return "".join(self._seen) + out + err

    def close(self) -> None:
        from mininet.log import lg

        lg.removeHandler(self._handler)
        for h in self._handlers:
            lg.addHandler(h)
        lg.setLevel(self._level)
        self._stdin.close()
        os.close(self._w)
        os.unlink(self._script)

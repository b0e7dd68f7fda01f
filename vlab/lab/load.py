"""Load a lab file: YAML -> typed model -> cross-reference checks.

Whatever is wrong, the caller gets exactly one ``LabError`` whose text is
``FILE: path.to.field: problem`` (the first problem found, in file order), so a
user fixes one thing at a time and scripts can parse the message.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import ValidationError

from .model import Lab


class LabError(Exception):
    """A lab file problem: ``file``, dotted ``path`` to the field, ``problem``."""

    def __init__(self, file: str, path: str, problem: str):
        self.file, self.path, self.problem = file, path, problem
        super().__init__(f"{file}: {path or '(top)'}: {problem}")


def format_loc(loc: Iterable[Any]) -> str:
    """('esxi_hosts', 0, 'uplinks', 1, 'speed') -> 'esxi_hosts[0].uplinks[1].speed'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _problem(err: dict) -> str:
    """One readable sentence from a pydantic error entry."""
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required field is missing"
    if kind == "literal_error":
        return msg.replace("Input should be", "must be")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    msg = msg.replace("Input should be", "must be")
    given = err.get("input")
    if kind not in ("extra_forbidden",) and not isinstance(given, (dict, list)):
        msg += f" (got {given!r})"
    return msg


def _loc_without_union_tags(loc: tuple) -> tuple:
    # pydantic inserts the union member or validator name into loc, e.g.
    # ('link_scale', 'float'); those are not part of the user's file.
    return tuple(p for p in loc if not (isinstance(p, str) and (
        p in {"float", "int", "str", "bool"} or p.startswith(("function-", "constrained-")))))


def parse_lab(data: Any, file: str = "<lab>") -> Lab:
    """Turn already-parsed YAML data into a validated ``Lab`` or raise ``LabError``."""
    from .validate import check_references

    if not isinstance(data, dict):
        raise LabError(file, "", "a lab file must be a YAML mapping at the top level")
    try:
        lab = Lab.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # Report the first problem in file order: pydantic orders errors by field.
        err = errors[0]
        raise LabError(file, format_loc(_loc_without_union_tags(err["loc"])),
                       _problem(err)) from None
    problem = check_references(lab)
    if problem is not None:
        path, text = problem
        raise LabError(file, path, text)
    return lab


def load_lab(path: str | Path) -> Lab:
    """Read and validate a lab file; any problem raises ``LabError``."""
    file = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise LabError(file, "", f"cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise LabError(file, where, f"invalid YAML: {reason}") from None
    return parse_lab(data, file)

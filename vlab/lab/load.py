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


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping: YAML forbids
    it, but PyYAML silently keeps the last value, which hides a copy-paste slip
    such as a port group with two ``vlan:`` lines."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # '<<: *anchor' may be overridden on purpose
                key = self.construct_object(key_node, deep=deep)
                try:
                    first = seen.get(key)
                except TypeError:  # unhashable key: the base class reports it
                    continue
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first on line {first.line + 1})",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _is_tag(part: Any) -> bool:
    # pydantic inserts the union member or validator name into loc, e.g.
    # ('link_scale', 'float') or ('x', 'function-after[...]'), and '[key]'
    # for a mapping key; those are not part of the user's file.
    return isinstance(part, str) and (
        part in {"float", "int", "str", "bool"}
        or "[" in part
        or part.startswith(("function-", "constrained-"))
    )


def format_loc(loc: Iterable[Any], data: Any = None) -> str:
    """('esxi_hosts', 0, 'uplinks', 1, 'speed') -> 'esxi_hosts[0].uplinks[1].speed'.

    Given ``data`` (what the loc points into), the path follows the file: a
    number is an index only where the file has a list, so a mapping key that
    is a number reads ``.5``, not ``[5]``. pydantic's own markers are dropped.
    """
    out, node = "", data
    for part in loc:
        if isinstance(node, dict) and part in node:
            out += ("." if out else "") + str(part)
            node = node[part]
        elif isinstance(node, (list, tuple)) and isinstance(part, int) and 0 <= part < len(node):
            out += f"[{part}]"
            node = node[part]
        elif _is_tag(part):
            continue
        else:
            # A field the file does not have (a missing one), or no data.
            is_index = isinstance(part, int) and not isinstance(part, bool)
            out += f"[{part}]" if is_index else ("." if out else "") + str(part)
            node = None
    return out


def _got(value: Any) -> str:
    """The offending value, short enough for one line."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple, set)):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _quoted_number(err: dict) -> bool:
    """A number written in quotes where a number is wanted (``vlan: "10"``):
    YAML reads it as a string and strict fields refuse it, so say why."""
    value = err.get("input")
    if err["type"] not in ("int_type", "float_type") or not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def _problem(err: dict) -> str:
    """One readable sentence from a pydantic error entry."""
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required field is missing"
    if kind == "invalid_key":
        return f"key {_got(err.get('input'))} must be a string (quote it)"
    # Say it in YAML's words: the user writes mappings and lists, not
    # dictionaries, model instances or tuples.
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        msg = "must be a mapping"
    elif kind in ("tuple_type", "list_type", "set_type", "iterable_type"):
        msg = "must be a list"
    elif kind == "too_short":
        n = err.get("ctx", {}).get("min_length", 1)
        msg = f"must have at least {n} {'entry' if n == 1 else 'entries'}"
    else:
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        msg = msg.replace("Input should be", "must be")
    if "[key]" in err["loc"]:
        msg = "key " + msg
    if kind == "too_short":
        n = len(err["input"]) if isinstance(err.get("input"), (list, tuple)) else None
        return msg + (f" (got {n})" if n is not None else "")
    if _quoted_number(err):
        return msg + f" (got the string {err['input']!r}; write it without quotes)"
    return msg + f" (got {_got(err.get('input'))})"


def parse_lab(data: Any, file: str = "<lab>") -> Lab:
    """Turn already-parsed YAML data into a validated ``Lab`` or raise ``LabError``."""
    from .check import check_references

    if data is None:
        raise LabError(file, "", "the lab file is empty")
    if not isinstance(data, dict):
        raise LabError(file, "", f"a lab file must be a YAML mapping at the top level (got {_got(data)})")
    try:
        lab = Lab.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # Report the first problem in file order: pydantic orders errors by field.
        err = errors[0]
        loc = err["loc"]
        if err["type"] == "invalid_key":
            loc = loc[:-1]  # the key is not a field: point at its mapping
        raise LabError(file, format_loc(loc, data), _problem(err)) from None
    problem = check_references(lab)
    if problem is not None:
        path, text = problem
        raise LabError(file, path, text)
    return lab


def load_lab(path: str | Path) -> Lab:
    """Read and validate a lab file; any problem raises ``LabError``."""
    return parse_lab(read_lab_data(path), str(path))


def read_lab_data(path: str | Path) -> Any:
    """A lab file's YAML data, not yet validated (``LabError`` if it cannot
    be read or is not YAML)."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise LabError(file, "", f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise LabError(file, "", f"cannot read: not UTF-8 text (byte {exc.start})") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise LabError(file, where, f"invalid YAML: {reason}") from None
    except RecursionError:
        raise LabError(file, "", "invalid YAML: nested too deeply") from None
    return data

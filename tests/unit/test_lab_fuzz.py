"""Lab file validation under random mutations of the shipped labs: every
mutated file is loaded or refused with one ``FILE: path: problem`` line,
never a traceback. Rootless and fast."""

from __future__ import annotations

import copy
import random
import re

import pytest

from tests.unit.labedit import (
    BASES,
)
from vlab.lab.load import LabError, parse_lab

# --- no input gives a traceback ---------------------------------------------------

_ERROR_LINE = re.compile(r"^lab\.yaml: \S.*?: \S")
_ODD_VALUES = [
    None,
    0,
    -1,
    4096,
    10**20,
    0.5,
    float("nan"),
    True,
    "",
    "10",
    "x" * 40,
    [],
    {},
    ["vmnic0"],
    {"name": "x"},
    "00:50:56:00:01:0a",
    "10.10.0.11/24",
]


def _all_paths(node):
    """Every (parent, key) pair in a YAML tree, depth first."""
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    else:
        return
    for key, child in items:
        yield node, key
        yield from _all_paths(child)


def _mutate(data, rng: random.Random) -> None:
    parent, key = rng.choice(list(_all_paths(data)))
    op = rng.choice(["delete", "retype", "duplicate", "random-string", "odd-value"])
    if op == "delete":
        del parent[key]
    elif op == "retype":
        value = parent[key]
        if isinstance(value, str):
            parent[key] = int(value) if value.isdigit() else [value]
        else:
            parent[key] = str(value)
    elif op == "duplicate":
        lists = [p[k] for p, k in _all_paths(data) if isinstance(p[k], list) and p[k]]
        target = rng.choice(lists)
        target.append(copy.deepcopy(rng.choice(target)))
    elif op == "random-string":
        parent[key] = "".join(rng.choice("abcXYZ019-_.:/ ") for _ in range(rng.randint(0, 20)))
    else:
        parent[key] = copy.deepcopy(rng.choice(_ODD_VALUES))


@pytest.mark.parametrize("base", ["two-hosts", "dvs", "nsx"])
def test_random_mutations_never_traceback(base):
    rng = random.Random(20240607)
    outcomes = {"parsed": 0, "rejected": 0}
    for _ in range(150):
        data = copy.deepcopy(BASES[base])
        for _ in range(rng.randint(1, 3)):
            _mutate(data, rng)
        try:
            parse_lab(data, "lab.yaml")
        except LabError as exc:
            assert _ERROR_LINE.match(str(exc)), str(exc)
            outcomes["rejected"] += 1
        else:
            outcomes["parsed"] += 1
    # Most random edits break something; a few (a changed description, a
    # duplicated port list entry...) are harmless.
    assert outcomes["rejected"] > 100

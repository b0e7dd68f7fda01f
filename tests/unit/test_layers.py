"""The architecture as data: every module belongs to one layer, and imports
only from its own layer or those below it (README, "Architecture"). A new
import that points upwards is a unit-test failure, not a cycle found later.
Function-level imports count too: deferring an import hides a dependency,
it does not remove it."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Lowest first. A module belongs to the first layer with a prefix of its name.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("constants", ("vlab.protocols", "vlab.naming")),
    ("lab file", ("vlab.lab",)),
    (
        "derived from the lab",
        ("vlab.bindings", "vlab.control", "vlab.vmkernel", "vlab.perimeter", "vlab.ovs", "vlab.waiting"),
    ),
    ("process lifecycle", ("vlab.runtime",)),
    ("controller", ("controller",)),
    ("operations on a running lab", ("vlab.operations", "vlab.validate_running")),
    ("bring-up", ("topologies",)),
    ("shell and trace", ("vlab.shell", "vlab.trace")),
    ("experiments", ("experiments",)),
    ("command line", ("vlab.cli",)),
]
PACKAGES = ("vlab", "controller", "topologies", "experiments")


def layer_of(module: str) -> int:
    if module == "vlab":
        return 0  # the package itself: its docstring and version
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def _module(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Our modules ``path`` imports, anywhere in it, as absolute names."""
    me = _module(path).split(".")
    package = me if path.name == "__init__.py" else me[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + [node.module] if node.module else base)
            # `from vlab import naming` imports vlab.naming, not the package.
            out |= {f"{target}.{a.name}" for a in node.names} if target in PACKAGES else {target}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return {m for m in out if m.split(".")[0] in PACKAGES and m not in PACKAGES}


def _modules():
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            yield path


def test_every_module_imports_only_from_its_layer_or_below():
    upwards = []
    for path in _modules():
        mine = layer_of(_module(path))
        for target in sorted(_imports(path)):
            theirs = layer_of(target)
            if theirs > mine:
                upwards.append(f"{_module(path)} ({LAYERS[mine][0]}) imports {target} ({LAYERS[theirs][0]})")
    assert not upwards, "imports that point upwards:\n" + "\n".join(upwards)


def test_the_checker_sees_function_level_and_relative_imports():
    imports = _imports(REPO / "vlab" / "cli" / "labs.py")
    assert {"vlab.shell.labcli", "vlab.cli.common"} <= imports

"""Waiting for something the testbed does not control the timing of.

One helper, one contract: ``wait_for`` polls a check until it returns
something truthy and returns that. A check that can say what is still
missing returns ``Pending("...")`` (falsy) instead of None or False, and the
timeout's message carries it. The caller chooses the exception (bring-up
raises ``NotReady``, operations ``OperationError``), so each layer keeps its
own one-line error.
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


class Pending:
    """What a check returns while it is not satisfied: falsy, and says what is missing."""

    __slots__ = ("missing",)

    def __init__(self, missing: str):
        self.missing = missing

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"Pending({self.missing!r})"


def wait_for(
    check: Callable[[], T],
    timeout: float,
    what: str,
    interval: float = 0.02,
    *,
    error: type[Exception] = TimeoutError,
) -> T:
    """Poll ``check`` every ``interval`` s until it returns something truthy
    and return it; past ``timeout`` s raise ``error`` naming ``what`` and,
    when the check's last answer was a ``Pending``, what is missing."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            missing = f": {value.missing}" if isinstance(value, Pending) else ""
            raise error(f"{what}: not done after {timeout:.1f}s{missing}")
        time.sleep(interval)

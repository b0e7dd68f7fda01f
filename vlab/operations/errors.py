"""What operations on a running lab raise, and how they wait."""

from __future__ import annotations

from vlab.waiting import wait_for


class OperationError(RuntimeError):
    """An operation that cannot be done on this lab (bad name, wrong state)."""


class CaptureIncomplete(RuntimeError):
    """A capture lost frames (the kernel dropped them before tcpdump read
    them): whatever it counted cannot be trusted."""


def wait(check, timeout: float, what: str, interval: float = 0.02):
    """``vlab.waiting.wait_for``, failing as an operation does."""
    return wait_for(check, timeout, what, interval=interval, error=OperationError)

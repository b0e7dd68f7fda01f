"""Argument parsing for the ESXi commands and the lab CLI: argparse that
raises instead of printing and exiting, so each command reports a bad
argument in its own words (ESXi's usage, esxcli's ``Error:``) and a CLI
session survives it."""

from __future__ import annotations

import argparse


class _Raising(argparse.ArgumentParser):
    error_type: type[Exception] = ValueError

    def error(self, message):
        raise self.error_type(message)

    def exit(self, status=0, message=None):
        raise self.error_type(message or "")


def raising_parser(prog: str, error: type[Exception]) -> argparse.ArgumentParser:
    """A parser for ``prog`` (no automatic -h) whose errors raise ``error``."""
    p = _Raising(prog=prog, add_help=False)
    p.error_type = error
    return p

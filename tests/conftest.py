"""Shared test configuration: integration tests need root and Open vSwitch."""

import os
import shutil

import pytest


def pytest_collection_modifyitems(config, items):
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    for tool in ("ovs-vswitchd", "ovsdb-server", "mnexec", "iperf3", "tcpdump"):
        if shutil.which(tool) is None:
            missing.append(tool)
    if not missing:
        return
    skip = pytest.mark.skip(reason=f"integration test needs {', '.join(missing)} (run `make test` as root)")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)

"""Fixtures for integration tests: real namespaces, real OVS, real packets."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TWO_HOSTS = REPO / "labs" / "two-hosts.yaml"


def pytest_collection_modifyitems(items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="module")
def two_hosts():
    """The two-hosts lab, up for the whole module, always torn down."""
    from experiments.common import lab_session

    with lab_session(TWO_HOSTS) as net:
        yield net


@pytest.fixture(scope="module")
def nuggets():
    """The vswitch-nuggets lab (seed 001), up for the whole module."""
    from experiments import vswitch_nuggets
    from experiments.common import lab_session

    with lab_session(vswitch_nuggets.LAB) as net:
        yield net


@pytest.fixture
def work(tmp_path):
    """Where a test's pcaps go (kept by pytest for a look after a failure)."""
    return tmp_path

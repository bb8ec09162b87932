"""A fleet of three real agents over mutual TLS (a service type, run and throwaway CA of their own) with an operator
certificate, shared by the `status` and `inspect` tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agent"))  # tests/agent/fleet.py: the Fleet helper
from fleet import Fleet

from edge_agent.deploy.certs import issue

AGENTS = 3


@pytest.fixture(scope="module")
def operator_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Three agents training until stopped, each with a round recorded; `certs/operator.*` is an operator's.

    One per test module: a fleet kept for the session trained on through every later test, slowing them all."""
    agents = Fleet(tmp_path_factory.mktemp("operator-fleet"), AGENTS, ["--rounds", "0", "--wait-peers", "60"])
    try:
        agents.start_all()
        issue(agents.certs_dir(), "operator", operator=True)
        for index in range(AGENTS):
            agents.wait_for_rounds(index, 1, timeout=120)
        yield agents
    finally:
        agents.stop()


"""Starts the slow-link transfer as soon as its test is collected, so its 80 s overlap the tests that run first."""

from __future__ import annotations

import pytest
from slow_transfer import SlowTransfer

SLOW_TEST = "test_a_10mb_transfer_at_1mbit_is_slow_not_stalled"
STARTED = pytest.StashKey[SlowTransfer]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if any(item.name == SLOW_TEST for item in items):
        config.stash[STARTED] = SlowTransfer().start()


def pytest_unconfigure(config: pytest.Config) -> None:
    if STARTED in config.stash:
        config.stash[STARTED].stop()


@pytest.fixture
def slow_transfer(request: pytest.FixtureRequest) -> SlowTransfer:
    return request.config.stash[STARTED]

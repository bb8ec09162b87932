"""Runs agent processes for a test and always stops them, even when the test fails."""

import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from board_python import REFUSE_TORCH_AND_SCIPY

RunAgents = Callable[[list[list[str]], dict[str, str]], list[str]]
BOARD_CLI = REFUSE_TORCH_AND_SCIPY + """
from edge_agent.cli.main import cli
cli()
"""


@pytest.fixture(scope="module")
def run_agents() -> Iterator[RunAgents]:
    """Start one process per command, wait for all, assert each exited 0, return their outputs."""
    started: list[subprocess.Popen[bytes]] = []

    def run(commands: list[list[str]], env: dict[str, str]) -> list[str]:
        procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env) for command in commands]
        started.extend(procs)
        outputs = [proc.communicate(timeout=240)[0].decode() for proc in procs]
        for proc, output in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, output
        return outputs

    yield run
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def board_cli() -> list[str]:
    """The argv prefix of `edge-agent` as a board runs it: a Python whose imports refuse torch and scipy."""
    return [sys.executable, "-c", BOARD_CLI]

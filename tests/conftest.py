"""Fixtures shared by test packages: the kernels exported for ONNX Runtime once per session, the `edge-agent` of a
board (a Python that refuses torch and scipy), free loopback ports, and agent processes that are always stopped, even
when the test fails."""

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from board_python import REFUSE_TORCH_AND_SCIPY

from edge_agent.agent.launcher import free_loopback_ports
from edge_agent.deploy import certs
from edge_agent.learning.mlp import MLPSpec
from edge_agent.runtime.onnx_backend import cache_directory
from edge_agent.runtime.onnx_export import export_kernels

RunAgents = Callable[[list[list[str]], dict[str, str]], list[str]]
BOARD_CLI = REFUSE_TORCH_AND_SCIPY + """
from edge_agent.cli.main import cli
cli()
"""


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An XDG_CACHE_HOME holding the exported kernels for MLPSpec() at m = 1024, as a board is shipped them."""
    root = tmp_path_factory.mktemp("xdg-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(root))
        export_kernels(MLPSpec(), cache_directory(MLPSpec(), 1024))
    return root


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


@pytest.fixture
def free_ports() -> Callable[[int], list[int]]:
    """`count` loopback ports that were free a moment ago (held together, so all distinct)."""
    return free_loopback_ports


@pytest.fixture(scope="session")
def cluster_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cluster CA with certificates for client-0..client-7; tests copy it before revoking anything."""
    folder = tmp_path_factory.mktemp("cluster-certs")
    certs.init_ca(folder)
    for index in range(8):
        certs.issue(folder, f"client-{index}")
    return folder


@pytest.fixture(scope="session")
def stranger_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another CA with certificates that claim the cluster's names (client-0..client-3)."""
    folder = tmp_path_factory.mktemp("stranger-certs")
    certs.init_ca(folder)
    for index in range(4):
        certs.issue(folder, f"client-{index}")
    return folder

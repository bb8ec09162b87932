"""Fixtures shared by test packages: the kernels exported for ONNX Runtime, once per session; free loopback ports."""

from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.agent.launcher import free_loopback_ports
from edge_agent.learning.mlp import MLPSpec
from edge_agent.runtime.onnx_backend import cache_directory
from edge_agent.runtime.onnx_export import export_kernels


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An XDG_CACHE_HOME holding the exported kernels for MLPSpec() at m = 1024, as a board is shipped them."""
    root = tmp_path_factory.mktemp("xdg-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(root))
        export_kernels(MLPSpec(), cache_directory(MLPSpec(), 1024))
    return root


@pytest.fixture
def free_ports() -> Callable[[int], list[int]]:
    """`count` loopback ports that were free a moment ago (held together, so all distinct)."""
    return free_loopback_ports

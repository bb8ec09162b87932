"""A board's install, once per session: the project's wheel built from a copy of the sources, in a fresh venv."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from board_python import board_environment

REPO = Path(__file__).resolve().parents[2]
NOT_IN_WHEEL = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
                                      "runs", "tests", "bench")


@pytest.fixture(scope="session")
def board_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding only the wheel and its dependencies, as `pip install edge-agent-*.whl` leaves a board.

    The wheel is built without build isolation (setuptools and wheel come from this venv, no index needed) from a
    copy, so no build/ or *.egg-info lands in the checkout; installing it takes numpy, onnxruntime, gRPC, zeroconf
    and click from the package index or pip's cache, pinned by constraints.txt.
    """
    root = tmp_path_factory.mktemp("board")
    shutil.copytree(REPO, root / "src", ignore=NOT_IN_WHEEL)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(root / "dist"), str(root / "src")], check=True, timeout=300, env=board_environment())
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    wheel, = (root / "dist").glob("edge_agent-*.whl")
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)], check=True,
                   timeout=600, env=board_environment(PIP_CONSTRAINT=str(REPO / "constraints.txt")))
    return venv

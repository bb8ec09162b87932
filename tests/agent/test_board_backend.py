"""Agents whose neighbour side runs on ONNX Runtime, in processes where torch cannot be imported, train
together and end where the numpy simulator does."""

import os
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edge_agent.learning.data import load_fashion_mnist
from edge_agent.learning.mlp import MLPSpec, accuracy, forward, init_weights
from edge_agent.learning.ntk import EvolutionConfig
from edge_agent.sim.config import SimulationConfig
from edge_agent.sim.engine import Simulation

RunAgents = Callable[[list[list[str]], dict[str, str]], list[str]]  # the run_agents fixture
AGENTS, ROUNDS = 3, 2


def test_onnxruntime_agents_without_torch_match_the_simulator(tmp_path: Path, onnx_cache: Path, board_cli: list[str],
                                                             run_agents: RunAgents) -> None:
    service = f"_ea-{uuid.uuid4().hex[:8]}._tcp.local."  # the board ships pre-exported kernels (onnx_cache)
    run_agents([
        [*board_cli, "run", "--insecure", "--shard", f"{i}/{AGENTS}", "--setting", "smoke", "--rounds",
         str(ROUNDS), "--solver", "euler", "--backend", "onnxruntime", "--profile", "rpi-zero-2w",
         "--preset", "published",
         "--uplink", "unlimited", "--downlink", "unlimited", "--latency", "0", "--precision", "fp32",
         "--weights-precision", "fp32", "--residual-share", "1", "--tail-rate", "0",
         "--service-type", service, "--wait-peers", "60", "--checkpoint-dir", str(tmp_path / "ck"), "--quiet"]
        for i in range(AGENTS)],
        {**os.environ, "OPENBLAS_NUM_THREADS": "1", "XDG_CACHE_HOME": str(onnx_cache)})
    train, test = load_fashion_mnist()
    config = SimulationConfig.from_setting("smoke", "spark", clients=AGENTS, rounds=ROUNDS)
    euler = EvolutionConfig(solver="euler")
    config = replace(config, spark=replace(config.spark, ntk=replace(config.spark.ntk, evolution=euler)))
    simulation = Simulation(config, train, test)
    list(simulation.run())
    start = init_weights(MLPSpec(), config.seed)
    for i in range(AGENTS):
        with np.load(tmp_path / "ck" / f"client-{i}.npz") as checkpoint:
            weights = checkpoint["weights"]
        # float32 sums in a different order (ONNX Runtime) are amplified by the evolution; the agents must still
        # land where the reference does, relative to how far training moved the weights
        travelled = np.linalg.norm(simulation.weights[i] - start)
        assert np.linalg.norm(weights - simulation.weights[i]) <= 0.02 * travelled
        assert abs(accuracy(forward(MLPSpec(), weights, test.x), test.y)
                   - accuracy(forward(MLPSpec(), simulation.weights[i], test.x), test.y)) <= 0.005


@pytest.mark.parametrize(("backend", "cache", "message"), [
    ("torch", None, "the torch backend needs torch"),
    ("onnxruntime", "empty", "no ONNX kernels for m = 1024 here"),
])
def test_a_board_without_what_its_backend_needs_gets_one_line(tmp_path: Path, board_cli: list[str], backend: str,
                                                             cache: str | None, message: str) -> None:
    (tmp_path / "empty").mkdir()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / (cache or "empty"))}
    result = subprocess.run([*board_cli, "run", "--insecure", "--shard", "0/3", "--setting", "smoke",
                             "--backend", backend,
                             "--no-mdns", "--peers", "127.0.0.1:9", "--port", "0", "--host", "127.0.0.1"],
                            capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr

"""Agents on data other than Fashion-MNIST: four processes on `--data digits` train the (64, 100, 10) MLP to the
simulator's weights, and their run identity carries the data, so a fleet on other data never joins them."""

import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edge_agent.agent.config import AgentConfig
from edge_agent.deploy.certs import throwaway_cluster
from edge_agent.learning.datasets import load_data
from edge_agent.learning.mlp import MLPSpec
from edge_agent.learning.ntk import EvolutionConfig
from edge_agent.sim.config import SimulationConfig
from edge_agent.sim.engine import Simulation

RunAgents = Callable[[list[list[str]], dict[str, str]], list[str]]  # the run_agents fixture
AGENTS, ROUNDS = 4, 2
pytest.importorskip("sklearn")


def test_digits_agents_match_the_simulator(tmp_path: Path, run_agents: RunAgents) -> None:
    service = f"_ea-{uuid.uuid4().hex[:8]}._tcp.local."
    certs = throwaway_cluster(tmp_path / "certs", [f"client-{i}" for i in range(AGENTS)])
    run_agents([[sys.executable, "-m", "edge_agent", "run", "--shard", f"{i}/{AGENTS}", "--setting", "smoke",
                 "--rounds", str(ROUNDS), "--service-type", service, "--wait-peers", "60", "--backend", "numpy",
                 "--metrics", str(tmp_path / f"agent-{i}.jsonl"), "--certs", str(certs), "--data", "digits",
                 "--checkpoint-dir", str(tmp_path / "checkpoints"), "--quiet", "--solver", "euler"]
                for i in range(AGENTS)], {**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    data = load_data("digits")
    config = SimulationConfig.from_setting("smoke", "spark", clients=AGENTS, rounds=ROUNDS)
    euler = EvolutionConfig(solver="euler")
    config = replace(config, spark=replace(config.spark, ntk=replace(config.spark.ntk, evolution=euler)))
    spec = MLPSpec.for_data(data.input_shape, data.num_classes)
    simulation = Simulation(config, data.train, data.test, spec=spec)
    list(simulation.run())
    for i in range(AGENTS):
        with np.load(tmp_path / "checkpoints" / f"client-{i}.npz") as checkpoint:
            weights = checkpoint["weights"]
        assert weights.shape == (spec.num_params,) == (64 * 100 + 100 + 100 * 10 + 10,)
        assert np.linalg.norm(weights - simulation.weights[i]) <= 1e-5 * np.linalg.norm(simulation.weights[i])


def _identity(**data: str) -> str:
    config = AgentConfig(agent_id="client-0", shard=0, clients=4, setting="smoke", algorithm="spark", rounds=2,
                         samples_per_client=100, alpha=0.1, kappa=2, **data)  # type: ignore[arg-type]
    return config.identity.fingerprint


def test_the_data_is_part_of_the_run_identity() -> None:
    fashion = _identity()
    assert _identity(data="fashion-mnist") == fashion
    assert _identity(data="digits", data_digest="dcdcc9fd5285a213") != fashion
    assert _identity(data="digits", data_digest="0000000000000000") != _identity(data="digits",
                                                                               data_digest="dcdcc9fd5285a213")
    # an npz is known by its content, not where it lies
    assert _identity(data="/a/mine.npz", data_digest="ab") == _identity(data="b/yours.npz", data_digest="ab")
    with pytest.raises(ValueError, match="needs its content digest"):
        _identity(data="digits")

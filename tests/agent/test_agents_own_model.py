"""A user's own model file and npz data, both written by the test: three agents per algorithm (SPARK, NTK-DFL,
DFedAvg) train them over gRPC with mutual TLS to the simulator's weights and exactly its payload bytes."""

import json
import os
import sys
import textwrap
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edge_agent.deploy.certs import throwaway_cluster
from edge_agent.learning.datasets import load_data
from edge_agent.learning.models.select import load_model
from edge_agent.learning.ntk import EvolutionConfig
from edge_agent.sim.config import SimulationConfig
from edge_agent.sim.engine import Simulation

RunAgents = Callable[[list[list[str]], dict[str, str]], list[str]]  # the run_agents fixture
AGENTS, ROUNDS, FEATURES, CLASSES = 3, 2, 24, 5
ALGORITHMS = ("spark", "ntk-dfl", "dfedavg")
MODEL_SOURCE = '''
    """A sensor classifier: not the MLP's layout (a 1-D convolution, tanh), so only torch.func can serve it."""
    from torch import nn


    def sensor_net(input_shape, num_classes):
        (features,) = input_shape
        return nn.Sequential(nn.Unflatten(1, (1, features)), nn.Conv1d(1, 4, 5, padding=2), nn.Tanh(),
                             nn.Flatten(), nn.Linear(4 * features, 16), nn.Tanh(), nn.Linear(16, num_classes))
'''


def write_user_files(folder: Path) -> tuple[str, Path]:
    """The model file and a labelled npz (classes separated along their own directions, with noise)."""
    model_file = folder / "sensor_model.py"
    model_file.write_text(textwrap.dedent(MODEL_SOURCE))
    rng = np.random.default_rng(11)
    centres = rng.normal(0, 1.5, (CLASSES, FEATURES))
    y = rng.integers(0, CLASSES, 720)
    x = (centres[y] + rng.normal(0, 1, (720, FEATURES))).astype(np.float32)
    data = folder / "sensors.npz"
    np.savez(data, x=x[:600], y=y[:600], x_test=x[600:], y_test=y[600:])
    return f"{model_file}:sensor_net", data


@pytest.fixture(scope="module")
def fleets(tmp_path_factory: pytest.TempPathFactory, run_agents: RunAgents) -> tuple[Path, str, Path]:
    """Three fleets of three agents, one per algorithm, each in a run of its own, started together."""
    out = tmp_path_factory.mktemp("own-model")
    model, data = write_user_files(out)
    certs = throwaway_cluster(out / "certs", [f"client-{i}" for i in range(AGENTS)])
    commands = []
    for algorithm in ALGORITHMS:
        service = f"_ea-{uuid.uuid4().hex[:8]}._tcp.local."
        folder = out / algorithm
        commands += [[sys.executable, "-m", "edge_agent", "run", "--shard", f"{i}/{AGENTS}", "--setting", "smoke",
                      "--algorithm", algorithm, "--rounds", str(ROUNDS), "--service-type", service,
                      "--wait-peers", "60", "--model", model, "--data", str(data), "--solver", "euler",
                      "--metrics", str(folder / f"agent-{i}.jsonl"), "--certs", str(certs),
                      "--checkpoint-dir", str(folder / "checkpoints"), "--quiet"] for i in range(AGENTS)]
    run_agents(commands, {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    return out, model, data


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_agents_on_a_user_model_match_the_simulator(fleets: tuple[Path, str, Path], algorithm: str) -> None:
    out, source, data_path = fleets
    data = load_data(str(data_path))
    model = load_model(source, data.input_shape, data.num_classes)
    config = SimulationConfig.from_setting("smoke", algorithm, clients=AGENTS, rounds=ROUNDS)  # type: ignore[arg-type]
    euler = EvolutionConfig(solver="euler")
    config = replace(config, ntk=replace(config.ntk, evolution=euler),
                     spark=replace(config.spark, ntk=replace(config.spark.ntk, evolution=euler)))
    simulation = Simulation(config, data.train, data.test, spec=model)
    records = list(simulation.run())
    assert records[-1].mean_client_accuracy > 1 / CLASSES  # it learns, on the test split the npz carries
    folder = out / algorithm
    for i in range(AGENTS):
        with np.load(folder / "checkpoints" / f"client-{i}.npz") as checkpoint:
            assert int(checkpoint["round"]) == ROUNDS - 1
            weights = checkpoint["weights"]
        assert weights.shape == (model.num_params,)
        assert np.linalg.norm(weights - simulation.weights[i]) <= 1e-5 * np.linalg.norm(simulation.weights[i])
    summaries = [json.loads((folder / f"agent-{i}.summary.json").read_text())["payload_by_round"]
                 for i in range(AGENTS)]
    for k, record in enumerate(records):
        sent = sum(s[str(k)]["sent"] for s in summaries)
        received = sum(s[str(k)]["received"] for s in summaries)
        assert sent == received == record.bytes_per_client * AGENTS

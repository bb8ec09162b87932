"""The local engine: worker processes change where requesters run and where the clients' models are evaluated, not
what they compute or send."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edge_agent.learning.algorithms.baselines import evaluate_accuracies
from edge_agent.learning.data import load_fashion_mnist
from edge_agent.learning.mlp import FloatArray, MLPSpec
from edge_agent.learning.models.contract import Model
from edge_agent.learning.models.select import load_model
from edge_agent.learning.ntk import EvolutionConfig
from edge_agent.sim.config import SimulationConfig
from edge_agent.sim.engine import Simulation
from edge_agent.sim.engines.base import EngineConfig, accuracies_in_parts, evaluate_part
from edge_agent.sim.engines.local import ProcessMapper

EXAMPLE_MODEL = Path(__file__).parents[3] / "examples" / "sensor_model.py"


@pytest.mark.parametrize("algorithm", ["spark", "ntk-dfl"])
def test_process_pool_round_equals_in_process_round(algorithm: str) -> None:
    train, test = load_fashion_mnist()
    config = SimulationConfig.from_setting("smoke", algorithm, rounds=2, clients=6, samples_per_client=40)  # type: ignore[arg-type]
    euler = EvolutionConfig(solver="euler")
    config = replace(config, ntk=replace(config.ntk, evolution=euler),
                     spark=replace(config.spark, ntk=replace(config.spark.ntk, evolution=euler)))
    serial = Simulation(config, train, test, engine=EngineConfig(workers=1))
    pooled = Simulation(config, train, test, engine=EngineConfig(workers=2))
    serial_records, pooled_records = list(serial.run()), list(pooled.run())
    np.testing.assert_allclose(pooled.weights, serial.weights, rtol=1e-4, atol=1e-6)
    assert [r.bytes_by_kind for r in pooled_records] == [r.bytes_by_kind for r in serial_records]
    assert [r.tau for r in pooled_records] == [r.tau for r in serial_records]


def test_zero_workers_is_rejected() -> None:
    with pytest.raises(ValueError, match="workers"):
        EngineConfig(workers=0)


def test_the_workers_evaluate_a_torch_models_clients_as_this_process_would() -> None:
    rng = np.random.default_rng(0)
    model = load_model(f"{EXAMPLE_MODEL}:sensor_net", (12,), 3)
    weights = np.stack([model.init_weights(seed) for seed in range(5)])
    x, y = rng.normal(size=(300, 12)).astype(np.float32), rng.integers(0, 3, 300)
    parts = _parts_given(model, weights, x, y, 2)
    assert [len(part) for part in parts] == [3, 2]
    assert _parts_given(model, weights[:1], x, y, 8) == []  # one model: nothing to share
    with ProcessMapper([], workers=2) as pool:
        spread = pool.accuracies(model, weights, x, y)
    expected = evaluate_part(model, weights, x, y)  # one BLAS thread, as in a worker
    assert spread.tobytes() == expected.tobytes() and len(set(spread.tolist())) > 1  # five models, not one repeated


def test_the_mlps_clients_are_evaluated_in_one_vectorised_pass_here() -> None:
    spec = MLPSpec((12, 8, 3))
    weights = np.stack([spec.init_weights(seed) for seed in range(4)])
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(50, 12)).astype(np.float32), rng.integers(0, 3, 50)
    assert _parts_given(spec, weights, x, y, 8) == []
    with ProcessMapper([], workers=2) as pool:
        assert pool.accuracies(spec, weights, x, y).tobytes() == evaluate_accuracies(spec, weights, x, y).tobytes()


def _parts_given(model: Model, weights: FloatArray, x: FloatArray, y: np.ndarray, workers: int) -> list[FloatArray]:
    """The parts accuracies_in_parts hands the workers (none when it evaluates in this process), each evaluated
    here on one thread."""
    given: list[FloatArray] = []

    def evaluate(parts: list[FloatArray]) -> list[FloatArray]:
        given.extend(parts)
        return [evaluate_part(model, part, x, y) for part in parts]
    accuracies_in_parts(model, weights, x, y, workers, evaluate)
    return given

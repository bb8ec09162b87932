"""The local engine: worker processes change where requesters run, not what they compute or send."""

from dataclasses import replace

import numpy as np
import pytest

from edge_agent.learning.data import load_fashion_mnist
from edge_agent.learning.ntk import EvolutionConfig
from edge_agent.sim.config import SimulationConfig
from edge_agent.sim.engine import Simulation
from edge_agent.sim.engines.base import EngineConfig


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

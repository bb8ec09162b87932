"""An agent's lean data: the same shard and test accuracy as the full normalised arrays, without holding them."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edge_agent.agent.config import AgentConfig
from edge_agent.agent.shard import load_shard
from edge_agent.learning.data import load_fashion_mnist
from edge_agent.learning.datasets import load_data
from edge_agent.learning.mlp import MLPSpec, accuracy, forward, init_weights
from edge_agent.learning.partition import PartitionConfig, make_partition


def test_the_shard_and_test_set_are_those_of_the_full_arrays() -> None:
    config = AgentConfig(agent_id="client-3", shard=3, clients=8, setting="edge", algorithm="spark", rounds=1,
                         samples_per_client=200, alpha=0.1, kappa=3)
    shard, test = load_shard(config, None)
    train, full_test = load_fashion_mnist()
    expected = train.subset(make_partition(PartitionConfig.for_run(8, 200, 0.1, 0), train.y)[3])
    np.testing.assert_array_equal(shard.x, expected.x)
    np.testing.assert_array_equal(shard.y, expected.y)
    assert shard.x.dtype == np.float32 and shard.y.dtype == np.int64
    assert test.pixels.dtype == np.uint8 and len(test) == len(full_test) == 10_000
    w = init_weights(MLPSpec(), 0) + np.random.default_rng(0).normal(0, 0.05, MLPSpec().num_params).astype(np.float32)
    assert test.accuracy(MLPSpec(), w, batch=999) == accuracy(forward(MLPSpec(), w, full_test.x), full_test.y)


def test_other_data_gives_the_simulators_shard_and_a_normalised_test_set(tmp_path: Path) -> None:
    path = tmp_path / "mine.npz"
    rng = np.random.default_rng(1)
    np.savez(path, x=rng.normal(size=(400, 6)).astype(np.float32), y=np.arange(400) % 5,
             x_test=rng.normal(size=(50, 6)).astype(np.float32), y_test=np.arange(50) % 5)
    data = load_data(str(path))
    config = AgentConfig(agent_id="client-1", shard=1, clients=4, setting="smoke", algorithm="spark", rounds=1,
                         samples_per_client=100, alpha=0.1, kappa=2, data=str(path), data_digest=data.digest)
    shard, test = load_shard(config, None)
    expected = data.train.subset(make_partition(PartitionConfig.for_run(4, 100, 0.1, 0), data.train.y)[1])
    np.testing.assert_array_equal(shard.x, expected.x)
    spec = MLPSpec.for_data(data.input_shape, data.num_classes)
    w = init_weights(spec, 0)
    assert len(test) == 50 and test.accuracy(spec, w, batch=7) == accuracy(forward(spec, w, data.test.x), data.test.y)
    changed = replace(config, data_digest="0" * 16)
    with pytest.raises(ValueError, match="changed since the run's identity was taken"):
        load_shard(changed, None)

"""An agent's lean data: the same shard and test accuracy as the full normalised arrays, without holding them."""

import numpy as np

from edge_agent.agent.config import AgentConfig
from edge_agent.agent.shard import load_shard
from edge_agent.learning.data import load_fashion_mnist
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

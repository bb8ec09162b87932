"""An agent's lean data: the same shard and test accuracy as the full normalised arrays, without holding them."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from edge_agent.agent.config import AgentConfig
from edge_agent.agent.shard import load_shard, read_uint8_idx
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


@pytest.mark.parametrize("gzipped", [False, True])
def test_read_uint8_idx_streams_plain_and_gzipped_files(tmp_path: Path, gzipped: bool) -> None:
    array = np.random.default_rng(1).integers(0, 256, (3000, 28, 28), dtype=np.uint8)  # 2.2 MB: several reads
    raw = b"\x00\x00\x08\x03" + b"".join(n.to_bytes(4, "big") for n in array.shape) + array.tobytes()
    path = tmp_path / "images"
    path.write_bytes(gzip.compress(raw) if gzipped else raw)
    np.testing.assert_array_equal(read_uint8_idx(path), array)


def test_read_uint8_idx_rejects_other_types_and_short_files(tmp_path: Path) -> None:
    path = tmp_path / "bad"
    path.write_bytes(b"\x00\x00\x0d\x01" + (4).to_bytes(4, "big") + b"\x00" * 16)  # float32 IDX
    with pytest.raises(ValueError, match="not a uint8 IDX"):
        read_uint8_idx(path)
    path.write_bytes(b"\x00\x00\x08\x01" + (10).to_bytes(4, "big") + b"\x00" * 9)
    with pytest.raises(ValueError, match="does not match"):
        read_uint8_idx(path)

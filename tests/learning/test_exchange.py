"""The SPARK method object: one P_k per round, and what survives the trip to a worker process."""

import pickle

import numpy as np

from edge_agent.learning.algorithms.spark import SparkConfig
from edge_agent.learning.exchange import SparkMethod
from edge_agent.learning.mlp import MLPSpec
from edge_agent.learning.projection import GaussianProjection, ProjectionConfig

SPEC = MLPSpec((12, 7, 4))
GAUSSIAN = SparkConfig(projection=ProjectionConfig("gaussian", 16, 1, 3))


def test_one_projection_per_round_shared_by_both_sides() -> None:
    method = SparkMethod(SPEC, GAUSSIAN, rounds=3)
    first = method.projection(1)
    assert method.projection(1) is first
    assert method.projection(2) is not first


def test_a_worker_copy_keeps_drawn_gaussian_blocks_only_when_asked() -> None:
    z = np.ones(16, dtype=np.float32)
    for keep in (False, True):
        copy = pickle.loads(pickle.dumps(SparkMethod(SPEC, GAUSSIAN, rounds=3, keep_drawn=keep)))
        projection = copy.projection(1)
        assert isinstance(projection, GaussianProjection)
        np.testing.assert_array_equal(projection.lift(z), SparkMethod(SPEC, GAUSSIAN, rounds=3).projection(1).lift(z))
        assert (projection._kept is not None) is keep

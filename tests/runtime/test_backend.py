"""The numpy kernel backend against the learning package's own forward pass, Jacobian projection and loss."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.learning.jacobian import mlp_jacobian
from edge_agent.learning.mlp import MLPSpec, cross_entropy_sum, forward, init_weights
from edge_agent.learning.projection import ProjectionConfig, TensorSketchProjection, make_projection
from edge_agent.runtime.backend import ChunkedBackend, NumpyBackend, SketchState
from edge_agent.runtime.select import make_backend

SPECS = [MLPSpec((784, 100, 10)), MLPSpec((20, 60, 30, 5))]


def _sketch(spec: MLPSpec, dim: int, seed: int, round_index: int) -> tuple[TensorSketchProjection, SketchState]:
    projection = make_projection(ProjectionConfig("tensorsketch", dim, seed=seed), spec, round_index)
    assert isinstance(projection, TensorSketchProjection)
    return projection, SketchState.from_projection(projection)


def _inputs(spec: MLPSpec, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = init_weights(spec, seed) + rng.normal(0, 0.01, spec.num_params).astype(np.float32)
    return w, rng.normal(size=(n, spec.sizes[0])).astype(np.float32), rng.integers(0, spec.num_classes, n)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: "-".join(map(str, s.sizes)))
@pytest.mark.parametrize("dim", [64, 1024])
def test_projected_jacobian_equals_tensorsketch_project_of_the_factored_jacobian(spec: MLPSpec, dim: int) -> None:
    w, x, _ = _inputs(spec, 33, seed=dim)
    projection, state = _sketch(spec, dim, seed=7, round_index=3)
    jac, logits = mlp_jacobian(spec, w, x)
    expected = projection.project(jac)
    jt, got_logits = NumpyBackend(spec).projected_jacobian(w, x, state)
    assert jt.shape == (33, spec.num_classes, dim) and jt.dtype == np.float32
    assert np.abs(jt - expected).max() <= 1e-5 * np.abs(expected).max()
    np.testing.assert_array_equal(got_logits, logits)


def test_sketch_state_holds_one_bucket_and_sign_per_parameter_within_its_block_range() -> None:
    spec = MLPSpec()
    _, state = _sketch(spec, 1024, seed=0, round_index=0)
    assert state.layout == ((0, 0, 25, 0, 256), (0, 25, 50, 256, 512), (0, 50, 75, 512, 768), (0, 75, 100, 768, 1024),
                            (1, 0, 10, 0, 1024))
    feeds = state.feeds()
    assert feeds["bucket"].shape == feeds["sign"].shape == (spec.num_params,)
    assert feeds["bucket"].dtype == np.int64 and feeds["sign"].dtype == np.float32
    assert set(np.unique(feeds["sign"]).tolist()) == {-1.0, 1.0}
    for block in state.blocks:
        _, o0, o1, k0, k1 = block.layout
        assert block.bucket.shape[0] == o1 - o0
        assert block.bucket.min() >= 0 and block.bucket.max() < k1 - k0


def test_sketch_states_of_different_rounds_differ_but_keep_their_layout() -> None:
    spec = MLPSpec()
    _, first = _sketch(spec, 1024, seed=0, round_index=0)
    _, second = _sketch(spec, 1024, seed=0, round_index=1)
    assert first.layout == second.layout
    assert not np.array_equal(first.feeds()["bucket"], second.feeds()["bucket"])


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: "-".join(map(str, s.sizes)))
def test_logits_equal_the_forward_pass(spec: MLPSpec) -> None:
    w, x, _ = _inputs(spec, 17, seed=1)
    np.testing.assert_array_equal(NumpyBackend(spec).logits(w, x), forward(spec, w, x))


def test_loss_sums_equal_the_cross_entropy_of_each_candidate() -> None:
    spec = MLPSpec()
    w, x, y = _inputs(spec, 40, seed=2)
    updates = np.random.default_rng(3).normal(0, 0.01, (4, spec.num_params)).astype(np.float32)
    expected = [cross_entropy_sum(forward(spec, w + step, x), y) for step in updates]
    np.testing.assert_array_equal(NumpyBackend(spec).loss_sums(w, updates, x, y), expected)


def test_chunked_backend_gives_the_unchunked_results() -> None:
    spec = MLPSpec()
    w, x, y = _inputs(spec, 23, seed=4)
    _, state = _sketch(spec, 256, seed=1, round_index=2)
    whole, chunked = NumpyBackend(spec), make_backend("numpy", spec, chunk=5)
    assert isinstance(chunked, ChunkedBackend)
    for got, want in zip(chunked.projected_jacobian(w, x, state), whole.projected_jacobian(w, x, state), strict=True):
        assert got.shape == want.shape and np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    logits = whole.logits(w, x)
    assert np.abs(chunked.logits(w, x) - logits).max() <= 1e-5 * np.abs(logits).max()
    updates = np.zeros((2, spec.num_params), dtype=np.float32)
    np.testing.assert_allclose(chunked.loss_sums(w, updates, x, y), whole.loss_sums(w, updates, x, y), rtol=1e-6)


def test_make_backend_rejects_an_unknown_name_and_a_bad_chunk() -> None:
    with pytest.raises(ValueError, match="unknown kernel backend"):
        make_backend("tflite", MLPSpec())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="chunk"):
        make_backend("numpy", MLPSpec(), chunk=0)

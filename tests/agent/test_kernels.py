"""The agent's neighbour-side kernels: the numpy reference run in the profile's chunks gives the reference's answers,
a numpy agent with a Jacobian chunk really runs through it, and board backends send the reference's residual rows."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edge_agent.agent.config import AgentConfig
from edge_agent.agent.kernels import BackendKernels, ChunkedReferenceKernels
from edge_agent.agent.runtime import make_method
from edge_agent.learning.algorithms.spark import SparkConfig
from edge_agent.learning.exchange import SparkMethod
from edge_agent.learning.jacobian import mlp_jacobian
from edge_agent.learning.messages import JacobianRequest
from edge_agent.learning.mlp import MLPSpec, cross_entropy_sum, forward, init_weights
from edge_agent.learning.projection import ProjectionConfig, make_projection
from edge_agent.runtime.backend import BackendName
from edge_agent.runtime.select import make_backend

SPEC = MLPSpec()


def _config(**overrides: object) -> AgentConfig:
    base = AgentConfig(agent_id="client-0", shard=0, clients=3, setting="smoke", algorithm="spark", rounds=2,
                       samples_per_client=100, alpha=0.1, kappa=2, backend="numpy")
    return replace(base, **overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize("chunk", [1, 7, 64, 500])
def test_chunked_reference_kernels_give_the_reference_projected_jacobian_and_losses(chunk: int) -> None:
    rng = np.random.default_rng(chunk)
    w = init_weights(SPEC, 1) + rng.normal(0, 0.01, SPEC.num_params).astype(np.float32)
    x, y = rng.normal(size=(150, 784)).astype(np.float32), rng.integers(0, 10, 150)
    projection = make_projection(ProjectionConfig("tensorsketch", 1024, seed=0), SPEC, 3)
    kernels = ChunkedReferenceKernels(SPEC, chunk)
    jacobian, logits = mlp_jacobian(SPEC, w, x)
    expected = projection.project(jacobian)  # (150, 10, 1024)
    jt, got_logits = kernels.projected_jacobian(w, x, projection)
    assert jt.shape == expected.shape and jt.dtype == np.float32
    assert np.abs(jt - expected).max() <= 1e-5 * np.abs(expected).max()
    np.testing.assert_allclose(got_logits, logits, rtol=1e-5, atol=1e-5)
    steps = projection.lift(rng.normal(0, 0.01, (4, 1024)).astype(np.float32))  # (4, d)
    want = [cross_entropy_sum(forward(SPEC, w + step, x), y) for step in steps]
    np.testing.assert_allclose(kernels.loss_sums(w, steps, x, y), want, rtol=1e-6)


def test_a_numpy_agent_with_a_jacobian_chunk_answers_through_the_chunked_reference() -> None:
    method = make_method(_config(jacobian_chunk=64), SPEC)
    assert isinstance(method, SparkMethod) and isinstance(method.kernels, ChunkedReferenceKernels)
    assert method.kernels.chunk == 64


def test_a_numpy_agent_without_a_chunk_or_with_a_dense_projection_answers_on_the_plain_reference() -> None:
    assert make_method(_config(), SPEC).kernels is None  # type: ignore[attr-defined]
    gaussian = SparkConfig(projection=ProjectionConfig("gaussian", 256))
    assert make_method(_config(jacobian_chunk=64, spark=gaussian), SPEC).kernels is None  # type: ignore[attr-defined]


def test_chunked_reference_kernels_refuse_a_chunk_below_one() -> None:
    with pytest.raises(ValueError, match="chunk"):
        ChunkedReferenceKernels(SPEC, 0)


@pytest.mark.parametrize("backend", ["numpy", "onnxruntime"])
def test_a_board_backend_answers_with_the_same_residual_rows_as_the_reference(
        backend: BackendName, onnx_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(onnx_cache))  # the kernels a board is shipped, exported for m = 1024
    rng = np.random.default_rng(9)
    w = init_weights(SPEC, 1) + rng.normal(0, 0.05, SPEC.num_params).astype(np.float32)
    x, y = rng.normal(size=(60, 784)).astype(np.float32), rng.integers(0, 10, 60)
    config = SparkConfig(projection=ProjectionConfig("tensorsketch", 1024, seed=0), residual_share=0.7, tail_rate=0.3)
    request = JacobianRequest("client-1", 2, w)
    reference = SparkMethod(SPEC, config, rounds=4).answer(request, x, y, "client-0")
    board = SparkMethod(SPEC, config, rounds=4, kernels=BackendKernels(make_backend(backend, SPEC, threads=1))).answer(
        request, x, y, "client-0")
    assert (board.samples, board.sampled_rows) == (reference.samples, reference.sampled_rows)
    assert reference.samples == 60
    assert 0 < reference.sampled_rows < len(reference.labels) < 60
    np.testing.assert_array_equal(board.labels, reference.labels)
    np.testing.assert_allclose(board.jacobian.values, reference.jacobian.values, rtol=1e-4, atol=1e-5)  # type: ignore[attr-defined]

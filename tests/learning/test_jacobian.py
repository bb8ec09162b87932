"""The analytic (factored) MLP Jacobian, kernel and pull-back against torch autograd."""

import numpy as np
import pytest

from edge_agent.learning.jacobian import DenseJacobian, StackedJacobian, mlp_jacobian, stack_jacobians
from edge_agent.learning.mlp import MLPSpec, forward, init_weights
from edge_agent.runtime.torch_autograd import autograd_jacobian, torch_mlp


def _problem(spec: MLPSpec, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = init_weights(spec, seed) + 0.05 * rng.normal(size=spec.num_params).astype(np.float32)
    return w, rng.normal(size=(n, spec.sizes[0])).astype(np.float32)


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("sizes", [(784, 100, 10), (30, 12, 9, 4)])
def test_analytic_kernel_and_pull_back_equal_autograd(sizes: tuple[int, ...]) -> None:
    spec = MLPSpec(sizes)
    w, x = _problem(spec, 12, seed=1)
    factored, logits = mlp_jacobian(spec, w, x)
    reference = autograd_jacobian(torch_mlp(spec), w.astype(np.float64), x.astype(np.float64))
    kernel = np.einsum("ncp,mcp->nm", reference, reference) / spec.num_classes
    residual = np.random.default_rng(2).normal(size=(12, spec.num_classes))
    assert factored.shape == reference.shape
    assert _relative(factored.kernel(), kernel) < 1e-5
    assert _relative(factored.pull_back(residual), np.einsum("ncp,nc->p", reference, residual)) < 1e-5
    assert _relative(factored.dense(), reference) < 1e-5
    assert _relative(logits, forward(spec, w, x)) < 1e-6


def test_batched_pull_back_matches_one_at_a_time() -> None:
    spec = MLPSpec((10, 6, 3))
    w, x = _problem(spec, 7, seed=3)
    factored, _ = mlp_jacobian(spec, w, x)
    residuals = np.random.default_rng(4).normal(size=(4, 7, 3))
    batched = factored.pull_back(residuals)
    assert batched.shape == (4, spec.num_params)
    for row, residual in zip(batched, residuals, strict=True):
        np.testing.assert_allclose(row, factored.pull_back(residual), rtol=1e-5, atol=1e-6)


def test_dense_operator_agrees_with_factored_one() -> None:
    spec = MLPSpec((10, 6, 3))
    w, x = _problem(spec, 7, seed=5)
    factored, _ = mlp_jacobian(spec, w, x)
    dense = DenseJacobian(factored.dense())
    residual = np.random.default_rng(6).normal(size=(7, 3))
    np.testing.assert_allclose(dense.kernel(), factored.kernel(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dense.pull_back(residual), factored.pull_back(residual), rtol=1e-5, atol=1e-6)


def test_stacked_jacobian_kernel_has_cross_blocks_of_the_joint_data() -> None:
    spec = MLPSpec((10, 6, 3))
    w, x = _problem(spec, 9, seed=7)
    joint, _ = mlp_jacobian(spec, w, x)
    stacked = stack_jacobians([mlp_jacobian(spec, w, x[:4])[0], mlp_jacobian(spec, w, x[4:])[0]])
    np.testing.assert_allclose(stacked.kernel(), joint.kernel(), rtol=1e-6)


def test_block_stacked_dense_jacobians_act_as_their_concatenation() -> None:
    rng = np.random.default_rng(3)
    parts = [rng.normal(size=(n, 10, 64)).astype(np.float32) for n in (7, 12, 5)]
    stacked, joint = StackedJacobian(tuple(DenseJacobian(v) for v in parts)), DenseJacobian(np.concatenate(parts))
    assert stacked.shape == joint.shape == (24, 10, 64)
    assert stacked.size == joint.size
    np.testing.assert_allclose(stacked.kernel(), joint.kernel(), rtol=1e-5, atol=1e-4)
    residual = rng.normal(size=(3, 24, 10))
    np.testing.assert_allclose(stacked.pull_back(residual), joint.pull_back(residual), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(stacked.pull_back(residual[1]), joint.pull_back(residual[1]), rtol=1e-4, atol=1e-3)


def test_stacked_jacobians_must_share_classes_and_width() -> None:
    with pytest.raises(ValueError, match="same"):
        StackedJacobian((DenseJacobian(np.zeros((2, 10, 8))), DenseJacobian(np.zeros((2, 10, 9)))))
    with pytest.raises(ValueError, match="at least one"):
        StackedJacobian(())

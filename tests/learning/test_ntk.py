"""Tests for edge_agent.learning.ntk: the streamed function-space path and the residual sums built from it."""

import numpy as np
import pytest

from edge_agent.learning.mlp import softmax
from edge_agent.learning.ntk import EvolutionConfig, logit_path, residual_sums, softmax_residual


def test_adaptive_solver_agrees_with_fine_euler() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(size=(8, 8))
    kernel = a @ a.T * 5
    f0 = rng.normal(size=(8, 3))
    targets = np.eye(3)[rng.integers(0, 3, size=8)]
    eta = 0.1
    path = np.stack(list(logit_path(kernel, f0, targets, eta, 20, EvolutionConfig(rtol=1e-8, atol=1e-10))))
    fine = np.stack(list(logit_path(kernel, f0, targets, eta / 1000, 19 * 1000 + 1, EvolutionConfig(solver="euler"))))
    np.testing.assert_allclose(path, fine[::1000], atol=2e-3)
    assert np.abs(path[-1] - path[0]).max() > 0.1


@pytest.mark.parametrize("solver", ["rk45", "euler"])
def test_residual_sums_are_the_cumulative_residuals_of_the_path_at_each_tau(solver: str) -> None:
    rng = np.random.default_rng(4)
    a = rng.normal(size=(12, 12))
    kernel, f0 = a @ a.T, rng.normal(size=(12, 4))
    targets = np.eye(4)[rng.integers(0, 4, size=12)]
    config = EvolutionConfig(taus=(1, 5, 17), solver=solver)  # type: ignore[arg-type]
    path = np.stack(list(logit_path(kernel, f0, targets, 0.05, 17, config)))
    cumulative = np.cumsum(softmax(path) - targets, axis=0)
    np.testing.assert_allclose(residual_sums(kernel, f0, targets, 0.05, config), cumulative[[0, 4, 16]],
                               atol=2e-6)  # each residual is float32, the precision of the matvec


@pytest.mark.parametrize("spread", [5.0, 500.0])
def test_softmax_residual_is_the_float32_softmax_minus_targets_for_any_spread_of_logits(spread: float) -> None:
    rng = np.random.default_rng(7)
    f = rng.normal(size=(30, 10)) * 3
    f[::2] -= spread  # half the rows far below the others: a shared shift would underflow them in float32
    targets = np.eye(10)[rng.integers(0, 10, size=30)]
    residual = softmax_residual(f, targets.astype(np.float32))
    assert residual.dtype == np.float32
    np.testing.assert_allclose(residual, softmax(f) - targets, atol=2e-7)

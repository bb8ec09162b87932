"""The streamed Dormand-Prince integrator against scipy's solve_ivp(RK45, t_eval): same method, same values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from edge_agent.learning.mlp import softmax
from edge_agent.learning.ode import integrate_on_grid


def _ntk_problem(n: int, c: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 3 * n)).astype(np.float32)
    kernel = (features @ features.T / (3 * n)).astype(np.float32)
    f0 = rng.normal(size=(n, c))
    targets = np.eye(c)[rng.integers(0, c, n)]
    return kernel, f0, targets


@pytest.mark.parametrize(("seed", "steps", "eta"), [(0, 200, 0.01), (1, 50, 0.3), (2, 7, 2.0)])
def test_matches_scipy_rk45_on_the_ntk_ode(seed: int, steps: int, eta: float) -> None:
    n, c = 40, 10
    kernel, f0, targets = _ntk_problem(n, c, seed)

    def rhs(_t: float, flat: np.ndarray) -> np.ndarray:
        return -(kernel @ (softmax(flat.reshape(n, c)) - targets).astype(np.float32)).ravel().astype(np.float64)

    grid = eta * np.arange(steps)
    ours = np.stack(list(integrate_on_grid(rhs, f0.ravel(), grid, rtol=1e-4, atol=1e-6)))
    reference = solve_ivp(rhs, (0.0, grid[-1]), f0.ravel(), method="RK45", t_eval=grid, rtol=1e-4, atol=1e-6)
    assert reference.success
    assert ours.shape == (steps, n * c)
    np.testing.assert_allclose(ours, reference.y.T, rtol=1e-12, atol=1e-12)


def test_stiff_decay_tracks_the_exact_solution_through_rejected_steps() -> None:
    rates = np.array([1.0, 50.0, 400.0])
    grid = np.linspace(0.0, 1.0, 11)
    ours = np.stack(list(integrate_on_grid(lambda _t, y: -rates * y, np.ones(3), grid, rtol=1e-8, atol=1e-10)))
    np.testing.assert_allclose(ours, np.exp(-np.outer(grid, rates)), atol=1e-7)


def test_a_single_point_grid_yields_the_start() -> None:
    values = list(integrate_on_grid(lambda _t, y: -y, np.array([2.0, 3.0]), np.array([0.0]), 1e-4, 1e-6))
    assert len(values) == 1
    np.testing.assert_array_equal(values[0], [2.0, 3.0])

"""Function-space NTK evolution under cross-entropy, candidate updates for each tau, and the choice of tau.

SPEC section 3, steps 3-6: df/dt = -(1/N) H (softmax(f) - Y) from f(0) = f0, read at t_s = s * eta; the
candidate update for tau is -(eta/N) sum_c J_c^T R_c with R = sum_{s<tau} (softmax(f(t_s)) - Y).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.integrate import solve_ivp

from edge_agent.learning.jacobian import JacobianOperator
from edge_agent.learning.mlp import FloatArray, softmax

Solver = Literal["rk45", "euler"]


@dataclass(frozen=True)
class EvolutionConfig:
    """How the function-space ODE is solved and which horizons tau are candidates."""

    taus: tuple[int, ...] = (25, 50, 100, 200)
    solver: Solver = "rk45"
    rtol: float = 1e-4
    atol: float = 1e-6

    def __post_init__(self) -> None:
        if not self.taus or min(self.taus) < 1 or list(self.taus) != sorted(set(self.taus)):
            raise ValueError(f"taus must be distinct positive integers in increasing order, got {self.taus}")
        if self.solver not in ("rk45", "euler"):
            raise ValueError(f"unknown ODE solver {self.solver!r}; choose rk45 or euler")


def evolve_logits(kernel: FloatArray, f0: FloatArray, targets: FloatArray, eta: float, steps: int,
                  config: EvolutionConfig) -> FloatArray:
    """f(t_s) for s = 0..steps-1, shape (steps, N, C), solving df/dt = -(1/N) H (softmax(f) - targets)."""
    n, c = f0.shape
    scaled = (kernel / n).astype(np.float32)  # float32 matvecs: the solver's state and error control stay float64
    start = f0.astype(np.float64)
    if config.solver == "euler":
        path = np.empty((steps, n, c))
        path[0] = start
        for s in range(1, steps):
            path[s] = path[s - 1] - eta * (scaled @ (softmax(path[s - 1]) - targets).astype(np.float32))
        return path

    def rhs(_t: float, flat: FloatArray) -> FloatArray:
        return -(scaled @ (softmax(flat.reshape(n, c)) - targets).astype(np.float32)).ravel().astype(np.float64)

    grid = eta * np.arange(steps)
    solution = solve_ivp(rhs, (0.0, float(grid[-1])), start.ravel(), method="RK45", t_eval=grid,
                         rtol=config.rtol, atol=config.atol)
    if not solution.success:
        raise RuntimeError(f"NTK evolution failed: {solution.message}")
    return np.asarray(solution.y.T.reshape(steps, n, c))


def residual_sums(kernel: FloatArray, f0: FloatArray, targets: FloatArray, eta: float,
                  config: EvolutionConfig) -> FloatArray:
    """R(tau) = sum_{s<tau} (softmax(f(t_s)) - targets) for each candidate tau: (T, N, C)."""
    path = evolve_logits(kernel, f0, targets, eta, max(config.taus), config)
    cumulative = np.cumsum(softmax(path) - targets, axis=0)
    return cumulative[[tau - 1 for tau in config.taus]]


def candidate_updates(jacobian: JacobianOperator, f0: FloatArray, targets: FloatArray, eta: float,
                      config: EvolutionConfig) -> FloatArray:
    """Parameter updates -(eta/N) sum_c J_c^T R_c(tau), one row per candidate tau: (T, p) float32."""
    n = f0.shape[0]
    sums = residual_sums(jacobian.kernel(), f0, targets, eta, config)
    return (-(eta / n) * jacobian.pull_back(sums)).astype(np.float32)


def choose_candidate(loss_sums: FloatArray) -> int:
    """Index of the candidate with the lowest summed cross-entropy over the neighbourhood (first on ties)."""
    return int(np.argmin(loss_sums))

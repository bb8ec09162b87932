"""Function-space NTK evolution under cross-entropy, candidate updates for each tau, and the choice of tau.

SPEC section 3, steps 3-6: df/dt = -(1/N) H (softmax(f) - Y) from f(0) = f0, read at t_s = s * eta; the
candidate update for tau is -(eta/N) sum_c J_c^T R_c with R = sum_{s<tau} (softmax(f(t_s)) - Y). N is the
number of samples the rows stand for: the rows themselves, unless neighbours sent only some. A row that stands
for several samples (`row_weights`) counts that many times in every sum over samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from edge_agent.learning.jacobian import JacobianOperator
from edge_agent.learning.mlp import FloatArray
from edge_agent.learning.ode import integrate_on_grid

Solver = Literal["rk45", "euler"]


@dataclass(frozen=True)
class EvolutionConfig:
    """How the function-space ODE is solved and which horizons tau are candidates."""

    taus: tuple[int, ...] = (100, 200, 300, 400, 500, 600, 800)  # the reference code's (SPEC section 3)
    solver: Solver = "rk45"
    rtol: float = 1e-4
    atol: float = 1e-6

    def __post_init__(self) -> None:
        if not self.taus or min(self.taus) < 1 or list(self.taus) != sorted(set(self.taus)):
            raise ValueError(f"taus must be distinct positive integers in increasing order, got {self.taus}")
        if self.solver not in ("rk45", "euler"):
            raise ValueError(f"unknown ODE solver {self.solver!r}; choose rk45 or euler")


# Past this spread of logits a shared shift could underflow a whole row of float32 exponentials.
_SHARED_SHIFT_SPREAD = 60.0


def softmax_residual(f: FloatArray, targets: FloatArray) -> FloatArray:
    """softmax(f) - targets (N, C) in float32, the precision of the kernel matvec it feeds.

    The ODE calls this hundreds of times per requester on small arrays, where numpy's per-row reductions cost
    more than the matvec: one shift for all rows (exact for softmax) and a row sum by BLAS avoid them.
    """
    high = f.max()
    shift = f.max(axis=-1, keepdims=True) if high - f.min() > _SHARED_SHIFT_SPREAD else high
    e = (f - shift).astype(np.float32)
    np.exp(e, out=e)
    e /= (e @ np.ones(e.shape[-1], dtype=np.float32))[:, None]
    e -= targets
    return e


def logit_path(kernel: FloatArray, f0: FloatArray, targets: FloatArray, eta: float, steps: int,
               config: EvolutionConfig, samples: int | None = None, row_weights: FloatArray | None = None
               ) -> Iterator[FloatArray]:
    """Yield f(t_s) (rows, C) for s = 0..steps-1, solving df/dt = -(1/N) H W (softmax(f) - targets), N = `samples`
    (default: the rows), W = diag(row_weights) (default: I); nothing is kept."""
    n, c = f0.shape
    weighted = kernel if row_weights is None else kernel * row_weights[None, :]
    # float32 matvecs: the solver's state and error control stay float64
    scaled = (weighted / (samples or n)).astype(np.float32)
    targets32 = targets.astype(np.float32)
    start = f0.astype(np.float64)
    if config.solver == "euler":
        f = start
        for _ in range(steps):
            yield f
            f = f - eta * (scaled @ softmax_residual(f, targets32))
        return

    def rhs(_t: float, flat: FloatArray) -> FloatArray:
        step = scaled @ softmax_residual(flat.reshape(n, c), targets32)
        return -step.ravel().astype(np.float64)

    for flat in integrate_on_grid(rhs, start.ravel(), eta * np.arange(steps), config.rtol, config.atol):
        yield flat.reshape(n, c)


def residual_sums(kernel: FloatArray, f0: FloatArray, targets: FloatArray, eta: float,
                  config: EvolutionConfig, samples: int | None = None, row_weights: FloatArray | None = None
                  ) -> FloatArray:
    """R(tau) = sum_{s<tau} (softmax(f(t_s)) - targets) for each candidate tau: (T, N, C), summed as f streams."""
    sums = np.empty((len(config.taus), *f0.shape))
    running = np.zeros(f0.shape)
    targets32 = targets.astype(np.float32)
    taken = 0
    path = logit_path(kernel, f0, targets, eta, max(config.taus), config, samples, row_weights)
    for s, f in enumerate(path, start=1):
        running += softmax_residual(f, targets32)
        if s == config.taus[taken]:
            sums[taken] = running
            taken += 1
    return sums


def weighted_residual_sums(kernel: FloatArray, f0: FloatArray, targets: FloatArray, eta: float,
                           config: EvolutionConfig, samples: int | None = None, row_weights: FloatArray | None = None
                           ) -> FloatArray:
    """W R(tau): the residual sums of the evolution under `kernel`, each row counted for the samples it stands for
    (T, N, C); an update is -(eta/N) times their pull-back through the Jacobian."""
    sums = residual_sums(kernel, f0, targets, eta, config, samples or f0.shape[0], row_weights)
    return sums if row_weights is None else sums * row_weights[None, :, None]


def candidate_updates(jacobian: JacobianOperator, f0: FloatArray, targets: FloatArray, eta: float,
                      config: EvolutionConfig, samples: int | None = None, row_weights: FloatArray | None = None
                      ) -> FloatArray:
    """Parameter updates -(eta/N) sum_c J_c^T W R_c(tau), one row per candidate tau: (T, p) float32."""
    n = samples or f0.shape[0]
    sums = weighted_residual_sums(jacobian.kernel(), f0, targets, eta, config, n, row_weights)
    return (-(eta / n) * jacobian.pull_back(sums)).astype(np.float32)


def choose_candidate(loss_sums: FloatArray) -> int:
    """Index of the candidate with the lowest summed cross-entropy over the neighbourhood (first on ties)."""
    return int(np.argmin(loss_sums))

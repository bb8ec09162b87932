"""Adaptive Dormand-Prince 5(4) integration that streams the solution at grid points instead of storing it.

The same method, step-size control and quartic dense output as scipy's `solve_ivp(method="RK45", t_eval=grid)`
(a test holds them equal), written here so that a board agent need not import scipy (about 50 MB of memory)
and the NTK evolution can fold each grid point into running sums without keeping the whole trajectory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from edge_agent.learning.mlp import FloatArray

RightHandSide = Callable[[float, FloatArray], FloatArray]

_C = np.array([0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0])
_A = np.array([
    [0.0, 0.0, 0.0, 0.0, 0.0],
    [1 / 5, 0.0, 0.0, 0.0, 0.0],
    [3 / 40, 9 / 40, 0.0, 0.0, 0.0],
    [44 / 45, -56 / 15, 32 / 9, 0.0, 0.0],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0.0],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
])
_B = np.array([35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84])
_E = np.array([-71 / 57600, 0.0, 71 / 16695, -71 / 1920, 17253 / 339200, -22 / 525, 1 / 40])
_P = np.array([  # dense output: y(t_old + x h) = y_old + h K^T P [x, x^2, x^3, x^4]
    [1.0, -8048581381 / 2820520608, 8663915743 / 2820520608, -12715105075 / 11282082432],
    [0.0, 0.0, 0.0, 0.0],
    [0.0, 131558114200 / 32700410799, -68118460800 / 10900136933, 87487479700 / 32700410799],
    [0.0, -1754552775 / 470086768, 14199869525 / 1410260304, -10690763975 / 1880347072],
    [0.0, 127303824393 / 49829197408, -318862633887 / 49829197408, 701980252875 / 199316789632],
    [0.0, -282668133 / 205662961, 2019193451 / 616988883, -1453857185 / 822651844],
    [0.0, 40617522 / 29380423, -110615467 / 29380423, 69997945 / 29380423],
])
_ERROR_ORDER = 4
_SAFETY, _MIN_FACTOR, _MAX_FACTOR = 0.9, 0.2, 10.0


def _rms(x: FloatArray) -> float:
    return float(x.size ** -0.5 * np.linalg.norm(x))


def _initial_step(fun: RightHandSide, t0: float, y0: FloatArray, f0: FloatArray, span: float, rtol: float,
                  atol: float) -> float:
    """Hairer, Norsett and Wanner's starting step (Solving ODEs I, II.4), as scipy chooses it."""
    scale = atol + np.abs(y0) * rtol
    d0, d1 = _rms(y0 / scale), _rms(f0 / scale)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    h0 = min(h0, span)
    f1 = fun(t0 + h0, y0 + h0 * f0)
    d2 = _rms((f1 - f0) / scale) / h0
    h1 = max(1e-6, h0 * 1e-3) if d1 <= 1e-15 and d2 <= 1e-15 else (0.01 / max(d1, d2)) ** (1 / (_ERROR_ORDER + 1))
    return min(100 * h0, h1, span)


def _stages(fun: RightHandSide, t: float, y: FloatArray, f: FloatArray, h: float,
            k: FloatArray) -> tuple[FloatArray, FloatArray]:
    """One Dormand-Prince step of size h from (t, y) with f = fun(t, y); fills k (7, n) and returns y_new, f_new."""
    k[0] = f
    for s in range(1, 6):
        k[s] = fun(t + _C[s] * h, y + (k[:s].T @ _A[s, :s]) * h)
    y_new = y + h * (k[:-1].T @ _B)
    f_new = fun(t + h, y_new)
    k[-1] = f_new
    return y_new, f_new


def integrate_on_grid(fun: RightHandSide, y0: FloatArray, grid: FloatArray, rtol: float,
                      atol: float) -> Iterator[FloatArray]:
    """Yield y(t) for each t of the increasing `grid` (grid[0] is the start), one at a time, in order."""
    y = np.asarray(y0, dtype=np.float64).copy()
    t, t_end = float(grid[0]), float(grid[-1])
    if t_end == t:
        yield from (y.copy() for _ in grid)
        return
    f = fun(t, y)
    h_abs = _initial_step(fun, t, y, f, t_end - t, rtol, atol)
    k = np.empty((7, y.size))
    exponent = -1 / (_ERROR_ORDER + 1)
    next_index = 0
    while t < t_end:
        min_step = 10 * abs(np.nextafter(t, np.inf) - t)
        h_abs = max(h_abs, min_step)
        rejected = False
        while True:
            if h_abs < min_step:
                raise RuntimeError("NTK evolution failed: the required step size is less than spacing between numbers")
            t_new = min(t + h_abs, t_end)
            h = t_new - t
            h_abs = abs(h)
            y_new, f_new = _stages(fun, t, y, f, h, k)
            scale = atol + np.maximum(np.abs(y), np.abs(y_new)) * rtol
            error = _rms((k.T @ _E) * h / scale)
            if error < 1:
                factor = _MAX_FACTOR if error == 0 else min(_MAX_FACTOR, _SAFETY * error ** exponent)
                h_abs *= min(1.0, factor) if rejected else factor
                break
            h_abs *= max(_MIN_FACTOR, _SAFETY * error ** exponent)
            rejected = True
        done = int(np.searchsorted(grid, t_new, side="right"))
        if done > next_index:
            q = k.T @ _P
            for point in grid[next_index:done]:
                x = (point - t) / h
                yield y + h * (q @ np.cumprod(np.full(4, x)))
            next_index = done
        t, y, f = t_new, y_new, f_new

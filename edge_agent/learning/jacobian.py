"""Per-sample Jacobians of the logits as operators: exact outer-product factors for MLPs, or a dense tensor.

The NTK round needs only two things from a stacked Jacobian J (N, C, p): the kernel
H = (1/C) sum_c J_c J_c^T and the pull-back sum_c J_c^T r_c. A Linear layer's per-sample Jacobian block is an
outer product (output-side factor x layer input), so both are exact and cheap from the factors without ever
forming the (N, C, d) tensor: O(N^2 (C*out + in)) per layer instead of O(N^2 C d).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

FloatArray = np.ndarray


class LayeredSpec(Protocol):
    """What the factored Jacobian reads of an MLP's spec (MLPSpec): its sizes and its flat layout per layer."""

    @property
    def sizes(self) -> tuple[int, ...]: ...

    @property
    def num_classes(self) -> int: ...

    @property
    def num_params(self) -> int: ...

    @property
    def num_layers(self) -> int: ...

    def layers(self, w: FloatArray) -> list[tuple[FloatArray, FloatArray]]: ...


class JacobianOperator(Protocol):
    """What the NTK evolution needs from a stacked Jacobian of shape (N, C, p)."""

    @property
    def shape(self) -> tuple[int, int, int]: ...

    @property
    def size(self) -> int:
        """N C p, the values it stands for."""
        ...

    def kernel(self) -> FloatArray:
        """H = (1/C) sum_c J[:, c, :] J[:, c, :]^T, (N, N) float64."""
        ...

    def pull_back(self, residual: FloatArray) -> FloatArray:
        """sum_c J[:, c, :]^T residual[:, c] for residual (N, C); or (T, p) for residual (T, N, C)."""
        ...


@dataclass(frozen=True)
class FactoredJacobian:
    """Exact MLP Jacobian (N, C, d) kept per layer as inputs (N, in) and d f_c / d pre-activation (N, C, out)."""

    spec: LayeredSpec
    inputs: tuple[FloatArray, ...]  # per layer: (N, in_l)
    output_grads: tuple[FloatArray, ...]  # per layer: (N, C, out_l)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.inputs[0].shape[0], self.spec.num_classes, self.spec.num_params)

    @property
    def size(self) -> int:
        n, c, d = self.shape
        return n * c * d

    def kernel(self) -> FloatArray:
        n, c, _ = self.shape
        h = np.zeros((n, n), dtype=np.float64)
        for a, g in zip(self.inputs, self.output_grads, strict=True):
            flat = g.reshape(n, -1)
            h += (flat @ flat.T).astype(np.float64) * ((a @ a.T).astype(np.float64) + 1.0)
        return h / c

    def pull_back(self, residual: FloatArray) -> FloatArray:
        batched = residual.ndim == 3
        r = residual if batched else residual[None]
        parts = []
        for a, g in zip(self.inputs, self.output_grads, strict=True):
            v = np.einsum("tnc,nco->tno", r.astype(np.float32), g)  # (T, N, out)
            parts.append(np.matmul(v.transpose(0, 2, 1), a).reshape(len(r), -1))  # (T, out*in)
            parts.append(v.sum(axis=1))  # (T, out): the bias block
        out = np.concatenate(parts, axis=1)
        return out if batched else out[0]

    def dense(self) -> FloatArray:
        """The full (N, C, d) float32 tensor; only for tests, the wire, and small models."""
        n, c, _ = self.shape
        blocks = []
        for a, g in zip(self.inputs, self.output_grads, strict=True):
            blocks.append(np.einsum("nco,ni->ncoi", g, a).reshape(n, c, -1))
            blocks.append(g)
        return np.concatenate(blocks, axis=2).astype(np.float32)


@dataclass(frozen=True)
class DenseJacobian:
    """A Jacobian held as a dense (N, C, p) tensor, e.g. a projected Jacobian received from a neighbour."""

    values: FloatArray  # (N, C, p)

    @property
    def shape(self) -> tuple[int, int, int]:
        n, c, p = self.values.shape
        return (n, c, p)

    @property
    def size(self) -> int:
        return int(self.values.size)

    def kernel(self) -> FloatArray:
        n, c, p = self.shape
        flat = self.values.reshape(n, c * p)  # sum over c and p is one float32 GEMM
        return (flat @ flat.T).astype(np.float64) / c

    def pull_back(self, residual: FloatArray) -> FloatArray:
        n, c, p = self.shape
        matrix = self.values.reshape(n * c, p)
        if residual.ndim == 3:
            return residual.reshape(len(residual), n * c).astype(np.float32) @ matrix
        return residual.reshape(n * c).astype(np.float32) @ matrix


@dataclass(frozen=True)
class StackedJacobian:
    """Dense Jacobians stacked along the sample axis block by block, never copied into one (sum N, C, p) array.

    The neighbourhood's projected Jacobian is the replies stacked; on a board the copy would cost as much memory
    as the replies themselves (33 MB at the edge setting), so the kernel and the pull-back work per block.
    """

    parts: tuple[DenseJacobian, ...]

    def __post_init__(self) -> None:
        if not self.parts or len({part.shape[1:] for part in self.parts}) != 1:
            raise ValueError("stacked Jacobians need at least one part, all with the same (C, p)")

    @property
    def shape(self) -> tuple[int, int, int]:
        _, c, p = self.parts[0].shape
        return (sum(part.shape[0] for part in self.parts), c, p)

    @property
    def size(self) -> int:
        return sum(part.size for part in self.parts)

    def _edges(self) -> list[int]:
        return np.cumsum([0] + [part.shape[0] for part in self.parts]).tolist()

    def kernel(self) -> FloatArray:
        n, c, p = self.shape
        edges = self._edges()
        flats = [part.values.reshape(part.shape[0], c * p) for part in self.parts]
        h = np.empty((n, n), dtype=np.float64)
        for i, left in enumerate(flats):
            for j in range(i, len(flats)):
                block = (left @ flats[j].T).astype(np.float64) / c
                h[edges[i]:edges[i + 1], edges[j]:edges[j + 1]] = block
                h[edges[j]:edges[j + 1], edges[i]:edges[i + 1]] = block.T
        return h

    def pull_back(self, residual: FloatArray) -> FloatArray:
        edges = self._edges()
        pieces = [part.pull_back(residual[..., start:stop, :])
                  for part, start, stop in zip(self.parts, edges, edges[1:], strict=False)]
        return functools.reduce(np.add, pieces)


def mlp_jacobian(spec: LayeredSpec, w: FloatArray, x: FloatArray) -> tuple[FactoredJacobian, FloatArray]:
    """Factored per-sample Jacobian of the logits at weights `w` on inputs `x` (N, in), and the logits (N, C)."""
    layers = spec.layers(w)
    inputs: list[FloatArray] = []
    masks: list[FloatArray] = []
    h = x.astype(np.float32)
    for index, (weight, bias) in enumerate(layers):
        inputs.append(h)
        h = h @ weight.T + bias
        if index < len(layers) - 1:
            masks.append((h > 0).astype(np.float32))
            h = h * masks[-1]
    logits = h
    n, c = logits.shape
    grads: list[FloatArray] = [np.broadcast_to(np.eye(c, dtype=np.float32), (n, c, c))]
    for index in range(len(layers) - 1, 0, -1):
        weight = layers[index][0]  # (out_l+1, out_l)
        grads.append((grads[-1] @ weight) * masks[index - 1][:, None, :])
    return FactoredJacobian(spec, tuple(inputs), tuple(reversed(grads))), logits


def stack_jacobians(parts: Sequence[FactoredJacobian]) -> FactoredJacobian:
    """Concatenate factored Jacobians along the sample axis (the neighbourhood's stacked J)."""
    spec = parts[0].spec
    inputs = tuple(np.concatenate([p.inputs[i] for p in parts]) for i in range(spec.num_layers))
    grads = tuple(np.concatenate([p.output_grads[i] for p in parts]) for i in range(spec.num_layers))
    return FactoredJacobian(spec, inputs, grads)

"""The board-side kernels behind one interface (forward, projected Jacobian, candidate losses) and their backends.

A neighbour runs three kernels per round: the logits of its data, the tensorsketch-projected Jacobian J P of its
data at the requester's average (with those logits), and the summed cross-entropy of each candidate. `numpy` is the
reference built on edge_agent.learning; `torch` runs the explicit-matmul torch modules of torch_kernels; and
`onnxruntime` runs their ONNX exports with numpy and onnxruntime alone (a 512 MB board). Projection state crosses
into a kernel as the seed-derived bucket and sign arrays of a TensorSketchProjection (`SketchState`), never as a
seed: no graph draws random numbers. Importing this module imports neither torch nor onnxruntime, and no backend
module: the torch and ONNX Runtime backends import it, and runtime/select.py picks and builds one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt
from threadpoolctl import ThreadpoolController

from edge_agent.learning.jacobian import FactoredJacobian, mlp_jacobian
from edge_agent.learning.mlp import FloatArray, MLPSpec, cross_entropy_sum, forward
from edge_agent.learning.projection import TensorSketchProjection

BackendName = Literal["numpy", "torch", "onnxruntime"]
IntArray = npt.NDArray[np.int64]
BlockLayout = tuple[int, int, int, int, int]  # (layer, o0, o1, k0, k1): units [o0, o1) hashed into buckets [k0, k1)
TORCH_EXTRA = "pip install 'edge-agent[torch]'"


class BackendUnavailableError(RuntimeError):
    """The chosen backend cannot run on this machine (a library or an ONNX export is missing); says what to do."""


@dataclass(frozen=True, eq=False)
class SketchBlock:
    """One block of a tensorsketch: units [o0, o1) of `layer`, each entry (o, i) hashed into buckets [k0, k1)."""

    layout: BlockLayout
    bucket: IntArray  # (o1 - o0, in + 1): bucket - k0 of augmented entry (o, i); column `in` is the bias
    sign: FloatArray  # (o1 - o0, in + 1) float32, +-1


@dataclass(frozen=True, eq=False)
class SketchState:
    """The seed-derived arrays of one round's TensorSketchProjection, block by block (about 1 MB at d = 79,510)."""

    dim: int
    blocks: tuple[SketchBlock, ...]

    @classmethod
    def from_projection(cls, projection: TensorSketchProjection) -> SketchState:
        """Per block its bucket and sign arrays, read from the projection's flat (d,) hash in the MLPSpec layout."""
        spec = projection.spec
        edges, flat_bucket, flat_sign = projection.block_edges, projection.bucket, projection.sign
        blocks = []
        for layer, ((w_b, b_b), (w_s, b_s)) in enumerate(zip(spec.layers(flat_bucket), spec.layers(flat_sign),
                                                              strict=True)):
            bucket = np.concatenate([w_b, b_b[:, None]], axis=1).astype(np.int64)  # (out, in + 1)
            sign = np.concatenate([w_s, b_s[:, None]], axis=1).astype(np.float32)
            for o0, o1, k0, k1 in edges[layer]:
                blocks.append(SketchBlock((layer, o0, o1, k0, k1), np.ascontiguousarray(bucket[o0:o1] - k0),
                                          np.ascontiguousarray(sign[o0:o1])))
        return cls(projection.dim, tuple(blocks))

    @property
    def layout(self) -> tuple[BlockLayout, ...]:
        """The static block structure (a function of spec and dim only): what an exported graph is built for."""
        return tuple(block.layout for block in self.blocks)

    def feeds(self) -> dict[str, np.ndarray]:
        """The graph inputs: "bucket" (E,) int64 and "sign" (E,) float32, every block's (units, in + 1) raveled."""
        return {"bucket": np.concatenate([block.bucket.ravel() for block in self.blocks]),
                "sign": np.concatenate([block.sign.ravel() for block in self.blocks])}


class KernelBackend(Protocol):
    """The board-side kernels of one round, for an MLP with flat float32 weights."""

    def logits(self, w: FloatArray, x: FloatArray) -> FloatArray:
        """f(x; w): (N, C) float32 for w (d,) and x (N, in)."""
        ...

    def projected_jacobian(self, w: FloatArray, x: FloatArray, state: SketchState) -> tuple[FloatArray, FloatArray]:
        """(J P (N, C, m) float32, logits (N, C) float32) at weights w on inputs x, with the sketch `state`."""
        ...

    def loss_sums(self, w: FloatArray, updates: FloatArray, x: FloatArray, y: np.ndarray) -> FloatArray:
        """(T,) float64: summed cross-entropy on (x, y) of each candidate w + updates[t], updates (T, d) lifted."""
        ...


def augmented(a: FloatArray) -> FloatArray:
    """[a, 1]: (N, in) -> (N, in + 1) float32."""
    return np.concatenate([a, np.ones((len(a), 1), dtype=np.float32)], axis=1, dtype=np.float32)


def count_sketch(a_aug_t: FloatArray, block: SketchBlock) -> FloatArray:
    """The block's per-unit CountSketch of the augmented inputs a_aug_t (in + 1, N): (N, units, buckets)."""
    _, o0, o1, k0, k1 = block.layout
    units, width, buckets = o1 - o0, block.bucket.shape[1], k1 - k0
    key = (np.arange(units, dtype=np.int64)[:, None] * buckets + block.bucket).ravel()
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    values = a_aug_t[order % width] * block.sign.ravel()[order, None]  # (entries, N), grouped by key
    sketch = np.zeros((units * buckets, a_aug_t.shape[1]), dtype=np.float32)
    sketch[sorted_key[starts]] = np.add.reduceat(values, starts, axis=0)
    return sketch.reshape(units, buckets, -1).transpose(2, 0, 1)


def sketch_jacobian(jac: FactoredJacobian, state: SketchState) -> FloatArray:
    """J P (N, C, m) of a factored Jacobian: per block, CountSketch of [a, 1] times the output-side factor."""
    n, c, _ = jac.shape
    out = np.zeros((n, c, state.dim), dtype=np.float32)
    inputs_t = [np.ascontiguousarray(augmented(a).T) for a in jac.inputs]
    for block in state.blocks:
        layer, o0, o1, k0, k1 = block.layout
        out[:, :, k0:k1] += np.matmul(jac.output_grads[layer][:, :, o0:o1], count_sketch(inputs_t[layer], block))
    return out


class NumpyBackend:
    """The reference: edge_agent.learning's numpy forward pass, factored Jacobian and cross-entropy.

    `threads` caps the BLAS threads during each kernel (threadpoolctl); None leaves the library's default.
    """

    def __init__(self, spec: MLPSpec, threads: int | None = None) -> None:
        self.spec, self.threads = spec, threads
        self._controller = ThreadpoolController() if threads is not None else None

    def _limit(self) -> AbstractContextManager[object]:
        return nullcontext() if self._controller is None else self._controller.limit(limits=self.threads,
                                                                                       user_api="blas")

    def logits(self, w: FloatArray, x: FloatArray) -> FloatArray:
        with self._limit():
            return forward(self.spec, w, x).astype(np.float32)

    def projected_jacobian(self, w: FloatArray, x: FloatArray, state: SketchState) -> tuple[FloatArray, FloatArray]:
        with self._limit():
            jac, logits = mlp_jacobian(self.spec, w, x)
            return sketch_jacobian(jac, state), logits.astype(np.float32)

    def loss_sums(self, w: FloatArray, updates: FloatArray, x: FloatArray, y: np.ndarray) -> FloatArray:
        with self._limit():
            return np.array([cross_entropy_sum(forward(self.spec, w + step, x), y) for step in updates])


def rows_in_chunks(count: int, chunk: int, compute: Callable[[slice], tuple[FloatArray, FloatArray]]
                   ) -> tuple[FloatArray, FloatArray]:
    """The two results of compute(rows) over `count` rows, `chunk` rows at a time, as two (count, ...) arrays.

    Each part is copied into place as it comes, so at most one chunk's output exists twice (not the whole result).
    """
    if count <= chunk:
        return compute(slice(0, count))
    first, second = np.empty(0, dtype=np.float32), np.empty(0, dtype=np.float32)
    for start in range(0, count, chunk):
        rows = slice(start, min(start + chunk, count))
        part_first, part_second = compute(rows)
        if start == 0:
            first = np.empty((count, *part_first.shape[1:]), dtype=part_first.dtype)
            second = np.empty((count, *part_second.shape[1:]), dtype=part_second.dtype)
        first[rows], second[rows] = part_first, part_second
    return first, second


class ChunkedBackend:
    """Runs another backend's per-sample kernels `chunk` samples at a time, bounding their working memory.

    Only the result (N rows) grows with N; the kernels' intermediates are one chunk's.
    """

    def __init__(self, inner: KernelBackend, chunk: int) -> None:
        if chunk < 1:
            raise ValueError(f"jacobian chunk must be >= 1, got {chunk}")
        self.inner, self.chunk = inner, chunk

    def _starts(self, x: FloatArray) -> Sequence[int]:
        return range(0, max(len(x), 1), self.chunk)

    def logits(self, w: FloatArray, x: FloatArray) -> FloatArray:
        return np.concatenate([self.inner.logits(w, x[s : s + self.chunk]) for s in self._starts(x)])

    def projected_jacobian(self, w: FloatArray, x: FloatArray, state: SketchState) -> tuple[FloatArray, FloatArray]:
        return rows_in_chunks(len(x), self.chunk, lambda rows: self.inner.projected_jacobian(w, x[rows], state))

    def loss_sums(self, w: FloatArray, updates: FloatArray, x: FloatArray, y: np.ndarray) -> FloatArray:
        parts = [self.inner.loss_sums(w, updates, x[s : s + self.chunk], y[s : s + self.chunk])
                 for s in self._starts(x)]
        total: FloatArray = np.sum(parts, axis=0)
        return total

"""Adapts a runtime kernel backend (numpy, torch, ONNX Runtime) to the neighbour side of SPARK's exchange."""

from __future__ import annotations

import threading

import numpy as np

from edge_agent.learning.mlp import FloatArray, MLPSpec
from edge_agent.learning.models.contract import Projection
from edge_agent.learning.projection import TensorSketchProjection
from edge_agent.runtime.backend import ChunkedBackend, KernelBackend, NumpyBackend, SketchState, rows_in_chunks


class BackendKernels:
    """BoardKernels over a KernelBackend; the round's sketch state is extracted once per projection."""

    def __init__(self, backend: KernelBackend) -> None:
        self.backend = backend
        self.chunk: int | None = getattr(backend, "chunk", None)  # a ChunkedBackend's samples per kernel call
        self._state: tuple[Projection, SketchState] | None = None
        self._lock = threading.Lock()

    def projected_jacobian(self, w: FloatArray, x: FloatArray, projection: Projection) -> tuple[FloatArray, FloatArray]:
        return self.backend.projected_jacobian(w, x, self._sketch(projection))

    def loss_sums(self, w: FloatArray, steps: FloatArray, x: FloatArray, y: np.ndarray) -> FloatArray:
        return self.backend.loss_sums(w, steps, x, y)

    def _sketch(self, projection: Projection) -> SketchState:
        if not isinstance(projection, TensorSketchProjection):
            raise TypeError(f"board kernels need the tensorsketch projection, got {type(projection).__name__}")
        with self._lock:
            if self._state is None or self._state[0] is not projection:
                self._state = (projection, SketchState.from_projection(projection))
            return self._state[1]


class ChunkedReferenceKernels:
    """The simulator's own numpy neighbour side (factored Jacobian, projection.project, cross-entropy), `chunk`
    samples at a time: the same per-sample arithmetic, so agents still match the simulator, in bounded memory."""

    def __init__(self, spec: MLPSpec, chunk: int) -> None:
        self.scoring = ChunkedBackend(NumpyBackend(spec), chunk)  # checks the chunk; scores as the simulator does
        self.spec, self.chunk = spec, chunk

    def projected_jacobian(self, w: FloatArray, x: FloatArray, projection: Projection) -> tuple[FloatArray, FloatArray]:
        return rows_in_chunks(len(x), self.chunk, lambda rows: self.spec.projected_jacobian(w, x[rows], projection))

    def loss_sums(self, w: FloatArray, steps: FloatArray, x: FloatArray, y: np.ndarray) -> FloatArray:
        """(T,) summed cross-entropy of each candidate w + steps[t] on (x, y)."""
        return self.scoring.loss_sums(w, steps, x, y)

"""Adapts a runtime kernel backend (numpy, torch, ONNX Runtime) to the neighbour side of SPARK's exchange."""

from __future__ import annotations

import threading

import numpy as np

from edge_agent.learning.mlp import FloatArray
from edge_agent.learning.projection import Projection, TensorSketchProjection
from edge_agent.runtime.backend import KernelBackend, SketchState


class BackendKernels:
    """BoardKernels over a KernelBackend; the round's sketch state is extracted once per projection."""

    def __init__(self, backend: KernelBackend) -> None:
        self.backend = backend
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

"""What SPARK, NTK-DFL and DFedAvg need of a model: one flat float32 parameter vector and products with its Jacobian.

A method never looks inside a model. The MLP (learning/mlp.py) answers with exact numpy kernels; any torch module
answers through torch.func (models/torch_module.py). Both take the round's projection P and return J P without
forming the (N C, d) Jacobian of all samples at once.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from edge_agent.learning.jacobian import FactoredJacobian, FloatArray, JacobianOperator

IntArray = npt.NDArray[np.int64]


class ModelError(ValueError):
    """`--model` names nothing that builds a model; the message says what is wrong in one line."""


class Projection(Protocol):
    """A d x m matrix P applied to Jacobians from the right and to R^m vectors from the left."""

    @property
    def dim(self) -> int:
        """m, the projected dimension (d for identity)."""
        ...

    def project(self, jac: FactoredJacobian) -> FloatArray:
        """J P of an MLP's factored Jacobian: (N, C, m) float32."""
        ...

    def lift(self, z: FloatArray) -> FloatArray:
        """P z: (m,) -> (d,) or (T, m) -> (T, d), float32."""
        ...


@runtime_checkable
class CountSketch(Protocol):
    """A projection with one +-1 per parameter in one bucket: P[i, bucket[i]] = sign[i]. Any model can apply it."""

    @property
    def dim(self) -> int: ...

    @property
    def bucket(self) -> IntArray:
        """(d,) each parameter's bucket in [0, m), in the model's flat layout."""
        ...

    @property
    def sign(self) -> FloatArray:
        """(d,) float32, +-1."""
        ...


class Model(Protocol):
    """A classifier with flat float32 weights w (d,) on flattened inputs x (N, prod(input_shape))."""

    @property
    def num_params(self) -> int:
        """d."""
        ...

    @property
    def num_classes(self) -> int:
        """C, the logits per sample."""
        ...

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's shape before flattening (what a factory is given)."""
        ...

    def identity(self) -> dict[str, Any]:
        """What must agree across a run's agents (name, a digest of the source, parameter shapes), as JSON values."""
        ...

    def init_weights(self, seed: int) -> FloatArray:
        """Initial weights (d,) float32, the same from the same seed on every machine."""
        ...

    def logits(self, w: FloatArray, x: FloatArray) -> FloatArray:
        """f(x; w): (N, C) float32."""
        ...

    def jvp(self, w: FloatArray, x: FloatArray, v: FloatArray) -> FloatArray:
        """J v: (N, C) for a direction v (d,) in weight space."""
        ...

    def vjp(self, w: FloatArray, x: FloatArray, u: FloatArray) -> FloatArray:
        """J^T u = sum_n,c u[n, c] d f_c(x_n) / d w: (d,) for u (N, C)."""
        ...

    def jacobian(self, w: FloatArray, x: FloatArray) -> tuple[JacobianOperator, FloatArray]:
        """The exact per-sample Jacobian (N, C, d) as an operator, and the logits (N, C)."""
        ...

    def projected_jacobian(self, w: FloatArray, x: FloatArray, projection: Projection
                           ) -> tuple[FloatArray, FloatArray]:
        """(J P (N, C, m) float32, logits (N, C) float32) at weights w on inputs x."""
        ...

"""The MLP as one flat float32 parameter vector: layout, seeded initialisation, forward pass, loss (numpy only).

MLPSpec serves the model contract (learning/models/contract.py) with exact kernels: the factored Jacobian of
learning/jacobian.py, whose structure every projection family uses to form J P cheaply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.learning.jacobian import FloatArray as FloatArray
from edge_agent.learning.jacobian import JacobianOperator, mlp_jacobian
from edge_agent.learning.models.contract import Projection

# The MLP of the published runs: a fleet on it keeps the run identity it had before models could be chosen.
DEFAULT_SIZES = (784, 100, 10)
HIDDEN = 100  # the hidden width `--model mlp` gives any data


@dataclass(frozen=True)
class MLPSpec:
    """Layer sizes of a ReLU MLP; the flat layout is (W1, b1, W2, b2, ...) like torch's nn.Sequential."""

    sizes: tuple[int, ...] = DEFAULT_SIZES

    def __post_init__(self) -> None:
        if len(self.sizes) < 2 or min(self.sizes) < 1:
            raise ValueError(f"an MLP needs at least two positive layer sizes, got {self.sizes}")

    @property
    def num_classes(self) -> int:
        return self.sizes[-1]

    @property
    def num_layers(self) -> int:
        return len(self.sizes) - 1

    @property
    def num_params(self) -> int:
        return sum(o * i + o for i, o in zip(self.sizes[:-1], self.sizes[1:], strict=True))

    def layers(self, w: FloatArray) -> list[tuple[FloatArray, FloatArray]]:
        """Views (W (out, in), b (out,)) into a flat vector (or a stack (..., d) of them)."""
        views = []
        start = 0
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            weight = w[..., start : start + fan_out * fan_in].reshape(*w.shape[:-1], fan_out, fan_in)
            start += fan_out * fan_in
            bias = w[..., start : start + fan_out]
            start += fan_out
            views.append((weight, bias))
        return views

    @classmethod
    def for_data(cls, input_shape: tuple[int, ...], num_classes: int) -> MLPSpec:
        """The one-hidden-layer MLP (in, 100, C) for flattened samples of `input_shape` and C classes."""
        return cls((math.prod(input_shape), HIDDEN, num_classes))

    # --- the model contract ----------------------------------------------------------------------------------

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.sizes[0],)

    def identity(self) -> dict[str, Any]:
        return {"name": "mlp", "sizes": list(self.sizes)}

    def init_weights(self, seed: int) -> FloatArray:
        return init_weights(self, seed)

    def logits(self, w: FloatArray, x: FloatArray) -> FloatArray:
        return forward(self, w, x)

    def jvp(self, w: FloatArray, x: FloatArray, v: FloatArray) -> FloatArray:
        """J v from the factors: per layer, the output-side factor times the layer's response to v, (N, C)."""
        jac, _ = mlp_jacobian(self, w, x)
        out = np.zeros(jac.output_grads[0].shape[:2], dtype=np.float64)
        for a, g, (weight, bias) in zip(jac.inputs, jac.output_grads, self.layers(v.astype(np.float32)),
                                        strict=True):
            out += np.einsum("nco,no->nc", g, a @ weight.T + bias)
        return out.astype(np.float32)

    def vjp(self, w: FloatArray, x: FloatArray, u: FloatArray) -> FloatArray:
        jac, _ = mlp_jacobian(self, w, x)
        pulled: FloatArray = jac.pull_back(u)
        return pulled

    def jacobian(self, w: FloatArray, x: FloatArray) -> tuple[JacobianOperator, FloatArray]:
        return mlp_jacobian(self, w, x)

    def projected_jacobian(self, w: FloatArray, x: FloatArray, projection: Projection
                           ) -> tuple[FloatArray, FloatArray]:
        jac, logits = mlp_jacobian(self, w, x)
        return projection.project(jac), logits


def init_weights(spec: MLPSpec, seed: int) -> FloatArray:
    """Kaiming-normal weights (fan_in, ReLU gain: std sqrt(2 / fan_in)) and zero biases, from `seed`."""
    rng = np.random.default_rng(seed)
    w = np.zeros(spec.num_params, dtype=np.float32)
    for weight, _bias in spec.layers(w):
        fan_in = weight.shape[1]
        weight[...] = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=weight.shape)
    return w


def forward(spec: MLPSpec, w: FloatArray, x: FloatArray) -> FloatArray:
    """Logits (N, C) of the model with flat weights `w` on inputs `x` (N, in)."""
    h = x
    layers = spec.layers(w)
    for index, (weight, bias) in enumerate(layers):
        h = h @ weight.T + bias
        if index < len(layers) - 1:
            h = np.maximum(h, 0.0)
    return h


def log_softmax(logits: FloatArray) -> FloatArray:
    """Row-wise log-softmax, stable for large logits."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(logits: FloatArray) -> FloatArray:
    """Row-wise softmax, stable for large logits."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def cross_entropy_sum(logits: FloatArray, labels: np.ndarray) -> float:
    """Sum over samples of the cross-entropy of `logits` (N, C) against integer `labels` (N,)."""
    logp = log_softmax(logits.astype(np.float64))
    return float(-logp[np.arange(len(labels)), labels].sum())


def accuracy(logits: FloatArray, labels: np.ndarray) -> float:
    """Fraction of rows whose arg-max matches the label."""
    return float((logits.argmax(axis=-1) == labels).mean())


def one_hot(labels: np.ndarray, num_classes: int) -> FloatArray:
    """(N, C) float64 one-hot targets."""
    return np.eye(num_classes, dtype=np.float64)[labels]

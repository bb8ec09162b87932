"""Torch reference of the board-side kernels, written as explicit matmuls (no torch.func) so that they export to ONNX.

The Jacobian back-propagates the output-side factor G_l = d f / d pre-activation_l (N, C, out_l) layer by layer,
and projects each Linear block without forming J: per sketch block, the augmented inputs [a, 1] are scatter-added
(index_add, exported as ScatterND with reduction "add") into one CountSketch per output unit, then multiplied by
G's columns for those units. The bucket and sign arrays are graph inputs, so one export serves every round.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from edge_agent.learning.mlp import FloatArray, MLPSpec
from edge_agent.runtime.backend import BlockLayout, SketchState


def _layer_views(spec: MLPSpec, w: Tensor) -> list[tuple[Tensor, Tensor]]:
    """(W (..., out, in), b (..., out)) per layer of flat weights w (..., d), as in MLPSpec.layers."""
    views, start = [], 0
    for fan_in, fan_out in zip(spec.sizes[:-1], spec.sizes[1:], strict=True):
        weight = w[..., start : start + fan_out * fan_in].reshape(*w.shape[:-1], fan_out, fan_in)
        start += fan_out * fan_in
        views.append((weight, w[..., start : start + fan_out]))
        start += fan_out
    return views


def _forward_with_inputs(spec: MLPSpec, w: Tensor, x: Tensor) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """(logits (N, C), each layer's input (N, in_l), each hidden layer's ReLU mask (N, out_l))."""
    layers = _layer_views(spec, w)
    inputs, masks, h = [], [], x
    for index, (weight, bias) in enumerate(layers):
        inputs.append(h)
        h = h @ weight.t() + bias
        if index < len(layers) - 1:
            masks.append((h > 0).to(h.dtype))
            h = h * masks[-1]
    return h, inputs, masks


class Logits(nn.Module):
    """logits = f(x; w): w (d,), x (N, in) -> (N, C)."""

    def __init__(self, spec: MLPSpec) -> None:
        super().__init__()
        self.spec = spec

    def forward(self, w: Tensor, x: Tensor) -> Tensor:
        return _forward_with_inputs(self.spec, w, x)[0]


class ProjectedJacobian(nn.Module):
    """(J P (N, C, m), logits (N, C)) from w (d,), x (N, in) and SketchState.feeds(): bucket, sign (E,)."""

    def __init__(self, spec: MLPSpec, dim: int, layout: Sequence[BlockLayout]) -> None:
        super().__init__()
        self.spec, self.dim, self.layout = spec, dim, tuple(layout)
        for layer in range(spec.num_layers):  # each layer's blocks must tile the buckets [0, m) in order
            ranges = [(k0, k1) for index, _, _, k0, k1 in self.layout if index == layer]
            if [k0 for k0, _ in ranges] != [0] + [k1 for _, k1 in ranges[:-1]] or ranges[-1][1] != dim:
                raise ValueError(f"layer {layer}'s sketch blocks {ranges} do not tile the buckets [0, {dim})")

    def forward(self, w: Tensor, x: Tensor, bucket: Tensor, sign: Tensor) -> tuple[Tensor, Tensor]:
        layers = _layer_views(self.spec, w)
        logits, inputs, masks = _forward_with_inputs(self.spec, w, x)
        classes = self.spec.num_classes
        grads = [torch.eye(classes, dtype=x.dtype, device=x.device)]  # output layer: G = I (C, C) for every sample
        for index in range(len(layers) - 1, 0, -1):
            grads.append((grads[-1] @ layers[index][0]) * masks[index - 1].unsqueeze(1))  # (N, C, out)
        grads.reverse()
        inputs_t = [torch.cat([a, torch.ones_like(a[:, :1])], dim=1).t() for a in inputs]  # (in + 1, N)
        parts: list[list[Tensor]] = [[] for _ in layers]  # per layer, its blocks' bucket ranges in order
        start = 0
        for layer, o0, o1, k0, k1 in self.layout:
            shape = (o1 - o0, inputs_t[layer].shape[0])  # the block's (units, in + 1) slice of the flat inputs
            stop = start + shape[0] * shape[1]
            block_bucket, block_sign = bucket[start:stop].reshape(shape), sign[start:stop].reshape(shape)
            sketched = _count_sketch(inputs_t[layer], block_bucket, block_sign, k1 - k0)  # (N, units, buckets)
            start = stop
            parts[layer].append(grads[layer][..., o0:o1] @ sketched)  # (N, C, buckets)
        total = torch.zeros(x.shape[0], classes, self.dim, dtype=x.dtype, device=x.device)
        for layer_parts in parts:
            total = total + torch.cat(layer_parts, dim=2)
        return total, logits


def _count_sketch(a_aug_t: Tensor, bucket: Tensor, sign: Tensor, buckets: int) -> Tensor:
    """Per unit o, sum_i sign[o, i] a_aug[:, i] into bucket[o, i]: (in + 1, N) -> (N, units, buckets)."""
    units, width = bucket.shape
    key = (torch.arange(units, dtype=bucket.dtype, device=bucket.device).unsqueeze(1) * buckets + bucket).reshape(-1)
    values = (a_aug_t.unsqueeze(0) * sign.unsqueeze(2)).reshape(units * width, -1)  # (entries, N)
    sketch = torch.zeros(units * buckets, a_aug_t.shape[1], dtype=a_aug_t.dtype,
                         device=a_aug_t.device).index_add(0, key, values)
    return sketch.reshape(units, buckets, -1).permute(2, 0, 1).contiguous()  # strided bmm is 100x slower


class LossSums(nn.Module):
    """Summed cross-entropy (T,) float64 of candidates w + updates[t]: w (d,), updates (T, d), x (N, in), y (N,)."""

    def __init__(self, spec: MLPSpec) -> None:
        super().__init__()
        self.spec = spec

    def forward(self, w: Tensor, updates: Tensor, x: Tensor, y: Tensor) -> Tensor:
        layers = _layer_views(self.spec, w + updates)  # (T, out, in), (T, out)
        h = x
        for index, (weight, bias) in enumerate(layers):
            h = torch.matmul(h, weight.transpose(1, 2)) + bias.unsqueeze(1)  # (T, N, out)
            if index < len(layers) - 1:
                h = torch.relu(h)
        logp = torch.log_softmax(h.to(torch.float64), dim=-1)  # float64 like cross_entropy_sum
        picked = torch.gather(logp, 2, y.reshape(1, -1, 1).expand(logp.shape[0], -1, 1))
        return -picked.sum(dim=(1, 2))


class TorchBackend:
    """The torch reference backend: the modules above, run under no_grad on one device."""

    def __init__(self, spec: MLPSpec, device: str = "cpu", threads: int | None = None) -> None:
        self.spec, self.device = spec, torch.device(device)
        if threads is not None:
            torch.set_num_threads(threads)
        self._logits, self._losses = Logits(spec), LossSums(spec)
        self._jacobians: dict[tuple[int, tuple[BlockLayout, ...]], ProjectedJacobian] = {}

    def _tensor(self, array: np.ndarray, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.as_tensor(np.ascontiguousarray(array), dtype=dtype, device=self.device)

    def logits(self, w: FloatArray, x: FloatArray) -> FloatArray:
        with torch.no_grad():
            logits: Tensor = self._logits(self._tensor(w), self._tensor(x))
        return logits.cpu().numpy()

    def projected_jacobian(self, w: FloatArray, x: FloatArray, state: SketchState) -> tuple[FloatArray, FloatArray]:
        key = (state.dim, state.layout)
        module = self._jacobians.setdefault(key, ProjectedJacobian(self.spec, state.dim, state.layout))
        feeds = state.feeds()
        with torch.no_grad():
            jt, logits = module(self._tensor(w), self._tensor(x), self._tensor(feeds["bucket"], torch.int64),
                                self._tensor(feeds["sign"]))
        return jt.cpu().numpy(), logits.cpu().numpy()

    def loss_sums(self, w: FloatArray, updates: FloatArray, x: FloatArray, y: np.ndarray) -> FloatArray:
        with torch.no_grad():
            sums: Tensor = self._losses(self._tensor(w), self._tensor(updates), self._tensor(x),
                                        self._tensor(y, torch.int64))
        return sums.cpu().numpy()

"""Per-sample Jacobians (and their CountSketch) of a network of Linear and Conv layers from C backward passes.

A layer's weight Jacobian for one sample is its output-side gradient times its input (for a convolution, summed
over the output positions against the input's unfolded patches). Samples never mix inside such a network, so one
backward pass of class c over the batch gives every sample's output-side gradients at once: C passes in all,
where vmap over jacrev runs C N of them. Modules with any other kind of parameter fall back to the generic path
(models/torch_module.py); the two agree to float rounding (tests/learning/models/test_layer_jacobian.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional

Layer = nn.Linear | nn.Conv1d | nn.Conv2d


@dataclass(frozen=True)
class LayerPlan:
    """Which layer owns each parameter (by name), in the module's parameter order."""

    layers: dict[str, Layer]  # layer name -> layer
    owners: list[tuple[str, str, str]]  # per parameter in order: (parameter name, layer name, "weight" or "bias")


def plan_layers(module: nn.Module) -> LayerPlan | None:
    """The plan when every parameter is the weight or bias of a Linear, Conv1d or Conv2d with numeric padding, zero
    padding mode and one group; None otherwise (the generic path serves it)."""
    layers: dict[str, Layer] = {}
    for name, child in module.named_modules():
        if isinstance(child, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            if isinstance(child, (nn.Conv1d, nn.Conv2d)) and (
                    isinstance(child.padding, str) or child.padding_mode != "zeros" or child.groups != 1):
                return None
            layers[name] = child
    owners = []
    for parameter_name, _ in module.named_parameters():
        layer_name, _, kind = parameter_name.rpartition(".")
        if layer_name not in layers or kind not in ("weight", "bias"):
            return None
        owners.append((parameter_name, layer_name, kind))
    return LayerPlan(layers, owners) if owners else None


def per_sample_jacobian(plan: LayerPlan, forward: Callable[[Tensor], Tensor], x: Tensor, num_classes: int) -> Tensor:
    """(n, C, d) float32: d f_c(x_i) / d w in the module's flat parameter order, by C backward passes of the batch.

    `forward` runs the module (with the weights to differentiate at) on x; hooks catch each layer's input and
    output on the way.
    """
    io = _layer_io(plan, forward, x, num_classes)
    return torch.cat([_layer_block(plan.layers[layer], *io[layer], kind).reshape(len(x), num_classes, -1)
                      for _, layer, kind in plan.owners], dim=2)


def projected_jacobian(plan: LayerPlan, forward: Callable[[Tensor], Tensor], x: Tensor, num_classes: int,
                       bucket: Tensor, sign: Tensor, dim: int) -> Tensor:
    """(n, C, m) float32: J P for the CountSketch P[i, bucket[i]] = sign[i], without forming J.

    A Linear weight's block is sketched from its factors: each sample's input is scattered into the buckets of each
    output unit (n, out, m), then multiplied by the output-side gradients (n, C, out); J of an (out, in) weight
    would be C times larger. Other blocks (biases, convolutions) are formed per layer and summed into their buckets.
    """
    io = _layer_io(plan, forward, x, num_classes)
    n = len(x)
    out = torch.zeros((n, num_classes, dim), dtype=torch.float32)
    start = 0
    for _parameter, layer_name, kind in plan.owners:
        layer = plan.layers[layer_name]
        size = getattr(layer, kind).numel()
        b, s = bucket[start : start + size], sign[start : start + size]
        start += size
        a, g = io[layer_name]
        if kind == "weight" and isinstance(layer, nn.Linear) and a.ndim == 2:
            fan_out, fan_in = layer.weight.shape
            key = (torch.arange(fan_out)[:, None] * dim + b.view(fan_out, fan_in)).reshape(-1)
            values = a.repeat(1, fan_out) * s  # (n, out * in): entry (o, i) is a[:, i] * s[o, i]
            sketched = torch.zeros((n, fan_out * dim), dtype=torch.float32).index_add_(1, key, values)
            out += torch.bmm(g, sketched.view(n, fan_out, dim))
            continue
        out.index_add_(2, b, _layer_block(layer, a, g, kind).reshape(n, num_classes, -1) * s)
    return out


def _layer_io(plan: LayerPlan, forward: Callable[[Tensor], Tensor], x: Tensor, num_classes: int
              ) -> dict[str, tuple[Tensor, Tensor]]:
    """Per layer (in forward order): its input (n, ...) and the gradients of each class's logit with respect to
    its output (n, C, ...)."""
    inputs: dict[str, Tensor] = {}
    outputs: dict[str, Tensor] = {}
    handles = [layer.register_forward_hook(_catcher(name, inputs, outputs)) for name, layer in plan.layers.items()]
    try:
        with torch.enable_grad():
            logits = forward(x)
            names = list(outputs)
            grads: dict[str, list[Tensor]] = {name: [] for name in names}
            for c in range(num_classes):
                picked = torch.zeros_like(logits)
                picked[:, c] = 1.0
                for name, grad in zip(names, torch.autograd.grad(logits, [outputs[n] for n in names], picked,
                                                                 retain_graph=c < num_classes - 1), strict=True):
                    grads[name].append(grad.detach())
    finally:
        for handle in handles:
            handle.remove()
    return {name: (inputs[name].detach(), torch.stack(grads[name], dim=1)) for name in names}


def _catcher(name: str, inputs: dict[str, Tensor], outputs: dict[str, Tensor]
             ) -> Callable[[nn.Module, tuple[Tensor, ...], Tensor], None]:
    def catch(_module: nn.Module, args: tuple[Tensor, ...], output: Tensor) -> None:
        inputs[name], outputs[name] = args[0], output
    return catch


def _layer_block(layer: Layer, a: Tensor, g: Tensor, kind: str) -> Tensor:
    """The layer's per-sample `kind` (weight or bias) Jacobian from its input a (n, ...) and its output gradients
    g (n, C, ...)."""
    n, c = g.shape[:2]
    if isinstance(layer, nn.Linear):
        if a.ndim != 2:
            raise ValueError("a Linear layer over more than one axis of a sample")
        return g if kind == "bias" else g[:, :, :, None] * a[:, None, None, :]
    if isinstance(layer, nn.Conv1d):  # as a 2-D convolution of height 1
        a, g = a[:, :, None, :], g[:, :, :, None, :]
        kernel, padding = (1, *layer.kernel_size), (0, *layer.padding)
        stride, dilation = (1, *layer.stride), (1, *layer.dilation)
    else:
        assert not isinstance(layer.padding, str)  # plan_layers left string paddings to the generic path
        kernel, padding, stride, dilation = layer.kernel_size, layer.padding, layer.stride, layer.dilation
    g = g.reshape(n, c, g.shape[2], -1)  # (n, C, out, P)
    if kind == "bias":
        return g.sum(dim=3)
    patches = functional.unfold(a, kernel, dilation=dilation, padding=padding, stride=stride)  # (n, in*k, P)
    return torch.einsum("ncop,nip->ncoi", g, patches)

"""Generic per-sample Jacobians with torch.func for any nn.Module: the reference for the analytic MLP kernels."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from edge_agent.learning.mlp import FloatArray, MLPSpec


def torch_mlp(spec: MLPSpec) -> nn.Sequential:
    """The torch module whose parameter order matches MLPSpec's flat layout."""
    modules: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(zip(spec.sizes[:-1], spec.sizes[1:], strict=True)):
        modules.append(nn.Linear(fan_in, fan_out))
        if index < spec.num_layers - 1:
            modules.append(nn.ReLU())
    return nn.Sequential(*modules)


def unflatten_parameters(module: nn.Module, flat: FloatArray) -> dict[str, torch.Tensor]:
    """Split a flat float vector into the module's named parameters, in registration order."""
    params: dict[str, torch.Tensor] = {}
    start = 0
    for name, param in module.named_parameters():
        count = param.numel()
        params[name] = torch.as_tensor(flat[start : start + count], dtype=torch.float64).reshape(param.shape)
        start += count
    if start != flat.size:
        raise ValueError(f"flat vector has {flat.size} values, module has {start} parameters")
    return params


def autograd_jacobian(module: nn.Module, flat: FloatArray, x: FloatArray) -> FloatArray:
    """Per-sample Jacobian (N, C, d) of the module's outputs w.r.t. its flat parameters, in float64."""
    module = module.double()
    params = unflatten_parameters(module, flat)
    names = list(params)

    def single(values: tuple[torch.Tensor, ...], sample: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = functional_call(module, dict(zip(names, values, strict=True)), (sample[None],))
        return out[0]

    jac = vmap(jacrev(single), in_dims=(None, 0))(tuple(params.values()), torch.as_tensor(x, dtype=torch.float64))
    n = x.shape[0]
    blocks = [block.reshape(n, block.shape[1], -1) for block in jac]
    return torch.cat(blocks, dim=2).numpy()

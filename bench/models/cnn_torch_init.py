"""The reference CNN (`--model cnn`) with PyTorch's default initialisation instead of edge-agent's Kaiming-normal.

DFedAvg's local SGD at the reference constants (lr 0.1, batch 25, 20 epochs) diverges to NaN on 12 of the 60-client
proxy's clients from Kaiming-normal, and trains from this one (bench/results/cnn.md), so the CNN's DFedAvg figures
start here:

    python bench/bench_paper.py --model bench/models/cnn_torch_init.py:cnn --variants dfedavg-w8,dfedavg ...
"""

from __future__ import annotations

from torch import nn

from edge_agent.learning.models.cnn import reference_cnn


def cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """`reference_cnn` with each layer's own reset_parameters (Kaiming-uniform, a = sqrt(5); uniform biases)."""
    module = reference_cnn(input_shape, num_classes)
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            layer.reset_parameters()
    return module

"""The reference NTK-DFL code's CNN: two 3x3 'same' convolutions (32, 64) each with 2x2 max pooling, then fc 100.

For 28x28x1 input it has d = 333,526 parameters, 4.2x the 784-100-10 MLP: a DFedAvg round grows with d, a SPARK
reply does not. Its weights start as the MLP's do, Kaiming-normal with zero biases: from PyTorch's default (smaller)
initialisation SPARK's first round left it at chance on 10 clients of the published split, from this one at 0.29
(bench/results/cnn.md).
"""

from __future__ import annotations

from torch import nn

CHANNELS = (32, 64)
HIDDEN = 100


def reference_cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The CNN for images of `input_shape` (C, H, W), or (H, W) with one channel, each side at least 4."""
    if len(input_shape) not in (2, 3) or min(input_shape[-2:]) < 4:
        raise ValueError(f"the cnn model needs image samples (C, H, W) or (H, W), each side >= 4; the data's samples "
                         f"have shape {input_shape}")
    channels, height, width = (1, *input_shape) if len(input_shape) == 2 else input_shape
    module = nn.Sequential(
        nn.Unflatten(1, (1, height)) if len(input_shape) == 2 else nn.Identity(),  # (N, H, W) -> (N, 1, H, W)
        nn.Conv2d(channels, CHANNELS[0], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(CHANNELS[0], CHANNELS[1], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(CHANNELS[1] * (height // 4) * (width // 4), HIDDEN), nn.ReLU(),
        nn.Linear(HIDDEN, num_classes),
    )
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")  # std sqrt(2 / fan_in), as the MLP's
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module

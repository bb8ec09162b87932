"""A model of your own for `edge-agent --model examples/sensor_model.py:sensor_net`.

A factory takes one sample's shape and the class count and returns a torch.nn.Module mapping (N, *input_shape) to
logits (N, C). Every agent of a run must load the same file: its SHA-256 and the parameter shapes are part of the
run's identity. It runs on the torch backend (pip install 'edge-agent[torch]').
"""

from torch import nn


def sensor_net(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """A small 1-D convolution over a vector of sensor features, then two dense layers."""
    (features,) = input_shape
    return nn.Sequential(
        nn.Unflatten(1, (1, features)),  # (N, F) -> (N, 1, F)
        nn.Conv1d(1, 8, kernel_size=5, padding=2), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * features, 32), nn.ReLU(),
        nn.Linear(32, num_classes),
    )

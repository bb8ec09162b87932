"""The layer path (C backward passes, Linear weights sketched from their factors) against vmap over jacrev."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch import nn

from edge_agent.learning.models import layer_jacobian
from edge_agent.learning.models.torch_module import TorchModuleModel
from edge_agent.learning.projection import FlatSketchProjection


def conv1d_net(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    (features,) = input_shape
    return nn.Sequential(nn.Unflatten(1, (1, features)), nn.Conv1d(1, 3, 3, padding=1, stride=2), nn.Tanh(),
                         nn.Flatten(), nn.Linear(3 * ((features + 1) // 2), num_classes))


def normed_net(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Linear(input_shape[0], 6), nn.LayerNorm(6), nn.Linear(6, num_classes))


@pytest.mark.parametrize(("source", "shape"), [("cnn", (1, 12, 12)), (f"{__file__}:conv1d_net", (9,))])
def test_the_layer_path_equals_vmap_over_jacrev(source: str, shape: tuple[int, ...]) -> None:
    model = TorchModuleModel(source, shape, 4)
    assert model._plan is not None
    rng = np.random.default_rng(0)
    w = model.init_weights(3)
    x = rng.standard_normal((5, int(np.prod(shape)))).astype(np.float32)
    sketch = FlatSketchProjection(model.num_params, 64, (1, 2, 3))
    by_layers, _ = model.projected_jacobian(w, x, sketch)
    exact_by_layers, _ = model.jacobian(w, x)
    model._plan = None  # the generic path
    by_vmap, _ = model.projected_jacobian(w, x, sketch)
    exact_by_vmap, _ = model.jacobian(w, x)
    assert np.abs(by_layers - by_vmap).max() <= 1e-5 * np.abs(by_vmap).max()
    assert np.abs(exact_by_layers.values - exact_by_vmap.values).max() <= 1e-6 * np.abs(exact_by_vmap.values).max()


def test_a_module_with_other_parameters_takes_the_generic_path() -> None:
    assert layer_jacobian.plan_layers(normed_net((5,), 3)) is None
    assert layer_jacobian.plan_layers(nn.Conv2d(1, 2, 3, padding="same")) is None
    assert layer_jacobian.plan_layers(nn.Sequential(nn.Linear(3, 2))) is not None
    model = TorchModuleModel(f"{__file__}:normed_net", (5,), 3)
    assert model._plan is None
    w, x = model.init_weights(0), torch.randn(4, 5).numpy()
    projected, _ = model.projected_jacobian(w, x, FlatSketchProjection(model.num_params, 8, (0,)))
    assert projected.shape == (4, 3, 8)


def test_a_jacobian_is_not_spoiled_by_forward_passes_in_other_threads() -> None:
    """An agent computes replies and its test accuracy on several threads, all through one module: unless they take
    turns, a reply mixes in another computation's parameters or activations (functional_call and the layer path's
    hooks act on the shared module)."""
    model = TorchModuleModel(f"{__file__}:conv1d_net", (9,), 4)
    rng = np.random.default_rng(1)
    w, other = model.init_weights(3), model.init_weights(4)
    x, elsewhere = rng.standard_normal((2, 40, 9)).astype(np.float32)
    sketch = FlatSketchProjection(model.num_params, 64, (1, 2, 3))
    expected, _ = model.projected_jacobian(w, x, sketch)
    stop = threading.Event()

    def forward_passes() -> None:
        while not stop.is_set():
            model.logits(other, elsewhere)
    threads = [threading.Thread(target=forward_passes) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        spoiled = sum(not np.array_equal(model.projected_jacobian(w, x, sketch)[0], expected) for _ in range(60))
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert spoiled == 0

"""Tests for edge_agent/learning/algorithms/baselines.py: vectorised local SGD against a per-client torch loop."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch

from edge_agent.learning.algorithms.baselines import (
    BASELINES,
    LocalSGDConfig,
    cross_entropy_gradients,
    evaluate_accuracies,
    local_sgd,
)
from edge_agent.learning.mlp import MLPSpec, accuracy, cross_entropy_sum, forward, init_weights

SPEC = MLPSpec((20, 16, 5))
SIZES = (37, 50, 23)


def _clients(sizes: tuple[int, ...], seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(n, SPEC.sizes[0])).astype(np.float32), rng.integers(0, SPEC.num_classes, n))
            for n in sizes]


def _torch_local_sgd(w: np.ndarray, x: np.ndarray, y: np.ndarray, config: LocalSGDConfig,
                     rng: np.random.Generator) -> np.ndarray:
    """Straightforward per-client reference: torch autograd, torch.optim.SGD-style heavy-ball momentum."""
    params = [torch.tensor(array.copy(), requires_grad=True) for layer in SPEC.layers(w) for array in layer]
    buffers: list[torch.Tensor | None] = [None] * len(params)
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y).long()
    for _epoch in range(config.local_epochs):
        perm = rng.permutation(len(y))
        for start in range(0, len(y), config.batch_size):
            idx = torch.from_numpy(perm[start : start + config.batch_size])
            h = x_t[idx]
            for layer in range(SPEC.num_layers):
                h = h @ params[2 * layer].T + params[2 * layer + 1]
                if layer < SPEC.num_layers - 1:
                    h = torch.relu(h)
            loss = torch.nn.functional.cross_entropy(h, y_t[idx])
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for k, (param, grad) in enumerate(zip(params, grads, strict=True)):
                    if config.momentum > 0:
                        previous = buffers[k]
                        step = grad.clone() if previous is None else previous * config.momentum + grad
                        buffers[k] = step
                    else:
                        step = grad
                    param -= config.lr * step
    return np.concatenate([param.detach().numpy().ravel() for param in params])


CONFIGS = {
    "dfedavg": dataclasses.replace(BASELINES["dfedavg"], local_epochs=3),
    "dfedavgm": dataclasses.replace(BASELINES["dfedavgm"], local_epochs=3),
    "dpsgd": BASELINES["dpsgd"],
    # small batches with momentum: clients run out of batches at different steps while their buffers live on
    "momentum_small_batch": LocalSGDConfig(lr=0.05, batch_size=10, local_epochs=2, momentum=0.9),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_local_sgd_equals_per_client_torch_loop(name: str) -> None:
    config = CONFIGS[name]
    clients = _clients(SIZES)
    weights = np.stack([init_weights(SPEC, 10 + i) for i in range(len(SIZES))])
    seed, round_index = 7, 3
    result = local_sgd(SPEC, weights, clients, config, seed=seed, round_index=round_index)
    assert result.dtype == np.float32 and result.shape == weights.shape
    for client, (x, y) in enumerate(clients):
        expected = _torch_local_sgd(weights[client], x, y, config,
                                    np.random.default_rng([seed, round_index, client]))
        moved = np.linalg.norm(expected - weights[client])
        assert moved > 1e-3 * np.linalg.norm(weights[client])
        assert np.linalg.norm(result[client] - expected) <= 1e-5 * np.linalg.norm(expected)
        np.testing.assert_allclose(result[client], expected, rtol=1e-5, atol=1e-6)


def test_local_sgd_does_not_modify_input_and_depends_on_round() -> None:
    clients = _clients(SIZES)
    weights = np.stack([init_weights(SPEC, i) for i in range(len(SIZES))])
    before = weights.copy()
    first = local_sgd(SPEC, weights, clients, BASELINES["dpsgd"], seed=1, round_index=0)
    second = local_sgd(SPEC, weights, clients, BASELINES["dpsgd"], seed=1, round_index=1)
    np.testing.assert_array_equal(weights, before)
    assert not np.allclose(first, second)


def test_cross_entropy_gradients_equal_torch_autograd() -> None:
    rng = np.random.default_rng(3)
    num_models, batch = 4, 9
    weights = np.stack([init_weights(SPEC, i) for i in range(num_models)]).astype(np.float64)
    x = rng.normal(size=(num_models, batch, SPEC.sizes[0]))
    y = rng.integers(0, SPEC.num_classes, (num_models, batch))
    sample_weights = rng.random((num_models, batch)) * (rng.random((num_models, batch)) < 0.7)
    grads = cross_entropy_gradients(SPEC, weights, x, y, sample_weights)
    for m in range(num_models):
        w = torch.tensor(weights[m], requires_grad=True)
        h, start = torch.from_numpy(x[m]), 0
        for index, (fan_in, fan_out) in enumerate(zip(SPEC.sizes[:-1], SPEC.sizes[1:], strict=True)):
            weight = w[start : start + fan_out * fan_in].reshape(fan_out, fan_in)
            bias = w[start + fan_out * fan_in : start + fan_out * fan_in + fan_out]
            start += fan_out * fan_in + fan_out
            h = h @ weight.T + bias
            if index < SPEC.num_layers - 1:
                h = torch.relu(h)
        per_sample = torch.nn.functional.cross_entropy(h, torch.from_numpy(y[m]), reduction="none")
        (expected,) = torch.autograd.grad((per_sample * torch.from_numpy(sample_weights[m])).sum(), [w])
        np.testing.assert_allclose(grads[m], expected.numpy(), rtol=1e-9, atol=1e-12)


def test_evaluate_accuracies_equal_per_model_forward() -> None:
    rng = np.random.default_rng(5)
    num_models, n = 7, 53
    weights = np.stack([init_weights(SPEC, i) for i in range(num_models)])
    x = rng.normal(size=(n, SPEC.sizes[0])).astype(np.float32)
    y = rng.integers(0, SPEC.num_classes, n)
    expected = np.array([accuracy(forward(SPEC, weights[m], x), y) for m in range(num_models)])
    # a byte budget of three models' hidden layer forces chunks of 3, 3 and 1
    chunked = evaluate_accuracies(SPEC, weights, x, y, max_bytes=3 * n * 16 * 4)
    np.testing.assert_array_equal(chunked, expected)
    np.testing.assert_array_equal(evaluate_accuracies(SPEC, weights, x, y), expected)
    assert len(set(expected.tolist())) > 1


def test_local_sgd_reduces_loss_on_separable_problem() -> None:
    rng = np.random.default_rng(11)
    centres = rng.normal(scale=3.0, size=(SPEC.num_classes, SPEC.sizes[0]))
    clients = []
    for n in (60, 45):
        y = rng.integers(0, SPEC.num_classes, n)
        clients.append(((centres[y] + rng.normal(size=(n, SPEC.sizes[0]))).astype(np.float32), y))
    weights = np.stack([init_weights(SPEC, 0), init_weights(SPEC, 1)])

    def mean_losses(w: np.ndarray) -> np.ndarray:
        return np.array([cross_entropy_sum(forward(SPEC, w[i], x), y) / len(y) for i, (x, y) in enumerate(clients)])

    config = dataclasses.replace(BASELINES["dfedavg"], local_epochs=5)
    before = mean_losses(weights)
    after = mean_losses(local_sgd(SPEC, weights, clients, config, seed=0, round_index=0))
    assert np.all(after < 0.2 * before)
    assert np.all(after < 0.1)


def test_baselines_follow_spec_section_5() -> None:
    assert dict(BASELINES) == {
        "dfedavg": LocalSGDConfig(lr=0.1, batch_size=25, local_epochs=20, momentum=0.0),
        "dfedavgm": LocalSGDConfig(lr=0.01, batch_size=50, local_epochs=20, momentum=0.9),
        "dpsgd": LocalSGDConfig(lr=0.1, batch_size=10, local_epochs=1, momentum=0.0),
    }
    with pytest.raises(TypeError):
        BASELINES["dfedavg"] = BASELINES["dpsgd"]  # type: ignore[index]


@pytest.mark.parametrize("changes", [
    {"lr": 0.0}, {"lr": -0.1}, {"batch_size": 0}, {"local_epochs": 0}, {"momentum": 1.0}, {"momentum": -0.1},
])
def test_invalid_local_sgd_config_raises(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must"):
        dataclasses.replace(BASELINES["dfedavg"], **changes)


def test_local_sgd_rejects_weights_of_wrong_shape() -> None:
    with pytest.raises(ValueError, match="shape"):
        local_sgd(SPEC, np.zeros((2, SPEC.num_params), np.float32), _clients(SIZES), BASELINES["dpsgd"], 0, 0)


def test_client_without_data_keeps_its_weights() -> None:
    clients = _clients((37, 0, 23))
    weights = np.stack([init_weights(SPEC, i) for i in range(3)])
    result = local_sgd(SPEC, weights, clients, CONFIGS["momentum_small_batch"], seed=2, round_index=0)
    np.testing.assert_array_equal(result[1], weights[1])
    assert not np.allclose(result[0], weights[0])

"""One NTK-DFL round against a direct, hand-written computation of SPEC section 3."""

import numpy as np
import torch

from edge_agent.learning.algorithms.ntk_dfl import NTKDFLConfig
from edge_agent.learning.mlp import MLPSpec, init_weights
from edge_agent.learning.ntk import EvolutionConfig
from edge_agent.runtime.torch_autograd import autograd_jacobian, torch_mlp, unflatten_parameters
from edge_agent.sim.network import InMemoryNetwork
from edge_agent.sim.rounds import Client, ntk_dfl_round


def _clients(spec: MLPSpec) -> list[Client]:
    rng = np.random.default_rng(0)
    return [Client(f"c{i}", rng.normal(size=(3, spec.sizes[0])).astype(np.float32), rng.integers(0, 2, size=3))
            for i in range(3)]


def _hand_round(spec: MLPSpec, clients: list[Client], weights: np.ndarray, eta: float,
                taus: tuple[int, ...]) -> tuple[np.ndarray, list[int]]:
    """Three clients on a triangle: every neighbourhood is everyone, so every client does the same steps."""
    wbar = weights.astype(np.float64).mean(axis=0)
    x = np.concatenate([c.x for c in clients]).astype(np.float64)
    y = np.concatenate([c.y for c in clients])
    n, classes = len(y), spec.num_classes
    module = torch_mlp(spec).double()
    jac = autograd_jacobian(module, wbar, x)  # (N, C, d)
    kernel = sum(jac[:, c, :] @ jac[:, c, :].T for c in range(classes)) / classes
    targets = np.eye(classes)[y]
    f = torch.func.functional_call(module, unflatten_parameters(module, wbar), (torch.tensor(x),)).detach().numpy()
    softmaxes = []
    for _ in range(max(taus)):
        probs = np.exp(f) / np.exp(f).sum(axis=1, keepdims=True)
        softmaxes.append(probs)
        f = f - eta * kernel @ (probs - targets) / n
    losses, candidates = [], []
    for tau in taus:
        residual = sum(softmaxes[:tau]) - tau * targets
        w = wbar - eta / n * sum(jac[:, c, :].T @ residual[:, c] for c in range(classes))
        out = torch.func.functional_call(module, unflatten_parameters(module, w), (torch.tensor(x),))
        losses.append(float(torch.nn.functional.cross_entropy(out, torch.tensor(y), reduction="sum")))
        candidates.append(w)
    best = int(np.argmin(losses))
    return np.stack([candidates[best]] * 3), [taus[best]] * 3


def test_ntk_dfl_round_equals_hand_computation() -> None:
    spec = MLPSpec((6, 5, 2))
    clients = _clients(spec)
    rng = np.random.default_rng(1)
    weights = np.stack([init_weights(spec, 0) + 0.3 * rng.normal(size=spec.num_params).astype(np.float32)
                        for _ in clients])
    taus = (1, 3, 8)
    config = NTKDFLConfig(eta0=0.5, gamma=0.0, evolution=EvolutionConfig(taus=taus, solver="euler"))
    graph = {"c0": ("c1", "c2"), "c1": ("c0", "c2"), "c2": ("c0", "c1")}
    got, got_taus = ntk_dfl_round(spec, clients, weights, graph, InMemoryNetwork(), config, round_index=0)
    expected, expected_taus = _hand_round(spec, clients, weights, 0.5, taus)
    assert got_taus == expected_taus
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)

"""The generic torch.func model against the MLP's exact kernels, and the contract's products against a dense J."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch import nn

from edge_agent.learning.algorithms import spark
from edge_agent.learning.jacobian import DenseJacobian, StackedJacobian
from edge_agent.learning.mlp import MLPSpec, one_hot
from edge_agent.learning.models import torch_module
from edge_agent.learning.models.torch_module import TorchModuleModel
from edge_agent.learning.ntk import EvolutionConfig, candidate_updates
from edge_agent.learning.projection import FlatSketchProjection, ProjectionConfig, make_projection

SPEC = MLPSpec((784, 100, 10))


def sequential_mlp(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Linear(input_shape[0], 100), nn.ReLU(), nn.Linear(100, num_classes))


@pytest.fixture(scope="module")
def generic_mlp() -> TorchModuleModel:
    return TorchModuleModel(f"{__file__}:sequential_mlp", (784,), 10)


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_the_generic_path_keeps_the_mlp_layout(generic_mlp: TorchModuleModel) -> None:
    assert generic_mlp.num_params == SPEC.num_params == 79_510
    w = SPEC.init_weights(4)
    x = np.random.default_rng(0).random((7, 784), dtype=np.float32)
    assert relative(generic_mlp.logits(w, x), SPEC.logits(w, x)) < 1e-5


def test_projected_jacobian_and_candidate_updates_match_the_fast_kernels(generic_mlp: TorchModuleModel) -> None:
    rng = np.random.default_rng(1)
    w, x = SPEC.init_weights(2), rng.random((40, 784), dtype=np.float32)
    y = rng.integers(0, 10, 40)
    projection = make_projection(ProjectionConfig("tensorsketch", 256, seed=5), SPEC, 3)
    fast, fast_logits = SPEC.projected_jacobian(w, x, projection)
    generic, generic_logits = generic_mlp.projected_jacobian(w, x, projection)
    assert relative(generic, fast) < 1e-5
    assert relative(generic_logits, fast_logits) < 1e-5
    evolution = EvolutionConfig()
    updates = [candidate_updates(StackedJacobian((DenseJacobian(values),)), logits.astype(np.float64),
                                 one_hot(y, 10), 0.01, evolution)
               for values, logits in ((fast, fast_logits), (generic, generic_logits))]
    assert relative(updates[1], updates[0]) < 1e-5


def test_jvp_vjp_and_the_exact_jacobian_agree_with_each_other() -> None:
    model = TorchModuleModel("cnn", (1, 8, 8), 3)
    rng = np.random.default_rng(2)
    w, x = model.init_weights(1), rng.standard_normal((5, 64)).astype(np.float32)
    dense, logits = model.jacobian(w, x)
    assert isinstance(dense, DenseJacobian) and dense.shape == (5, 3, model.num_params)
    v = rng.standard_normal(model.num_params).astype(np.float32)
    u = rng.standard_normal((5, 3)).astype(np.float32)
    assert relative(model.jvp(w, x, v), dense.values @ v) < 1e-4
    assert relative(model.vjp(w, x, u), np.einsum("nc,ncd->d", u, dense.values)) < 1e-4
    sketch = FlatSketchProjection(model.num_params, 32, (0, 1, 4))
    projected, _ = model.projected_jacobian(w, x, sketch)
    p = sketch.lift(np.eye(32, dtype=np.float32)).T  # (d, m)
    assert relative(projected, dense.values @ p) < 1e-4
    assert relative(model.logits(w, x), logits) < 1e-6


def test_the_chunked_jacobian_equals_one_chunk(monkeypatch: pytest.MonkeyPatch, generic_mlp: TorchModuleModel) -> None:
    w, x = SPEC.init_weights(3), np.random.default_rng(3).random((9, 784), dtype=np.float32)
    projection = make_projection(ProjectionConfig("tensorsketch", 64, seed=1), SPEC, 0)
    whole, _ = generic_mlp.projected_jacobian(w, x, projection)
    monkeypatch.setattr(torch_module, "JACOBIAN_CHUNK_BYTES", 10 * SPEC.num_params * 4 * 2)  # 2 samples a chunk
    chunked, _ = generic_mlp.projected_jacobian(w, x, projection)
    assert relative(chunked, whole) < 1e-6


def test_the_reference_cnn_has_the_reference_size_and_a_seeded_init() -> None:
    model = TorchModuleModel("cnn", (1, 28, 28), 10)
    assert model.num_params == 333_526
    assert np.array_equal(model.init_weights(7), model.init_weights(7))
    assert not np.array_equal(model.init_weights(7), model.init_weights(8))
    before = torch.random.get_rng_state()
    model.init_weights(9)
    assert torch.equal(before, torch.random.get_rng_state())  # the caller's torch seed is left alone


def test_spark_rounds_run_on_a_generic_model_with_a_kernel_sketch() -> None:
    model = TorchModuleModel(f"{__file__}:sequential_mlp", (12,), 4)
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((30, 12)).astype(np.float32), rng.integers(0, 4, 30)
    config = spark.SparkConfig(projection=ProjectionConfig("tensorsketch", 64, seed=2), kernel_dim=16)
    projection = make_projection(config.projection, model, 0)
    w = model.init_weights(0)
    rows = spark.rows_to_send(model, w, x, y, spark.SparkConfig(residual_share=0.5), (1, 2))
    assert rows is not None and len(rows.rows) < 30
    with pytest.raises(ValueError, match="needs the MLP"):
        make_projection(ProjectionConfig("gaussian", 64), model, 0)
    assert projection.lift(np.ones(64, dtype=np.float32)).shape == (model.num_params,)


def test_a_model_pickles_as_its_source_and_comes_back_the_same() -> None:
    model = TorchModuleModel(f"{__file__}:sequential_mlp", (12,), 4)
    again = pickle.loads(pickle.dumps(model))
    x = np.random.default_rng(5).standard_normal((3, 12)).astype(np.float32)
    w = model.init_weights(1)
    assert again.identity() == model.identity()
    assert np.array_equal(again.logits(w, x), model.logits(w, x))

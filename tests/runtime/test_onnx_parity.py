"""ONNX Runtime vs torch vs the numpy reference on the board-side kernels, and the export manifest's checks.

One export (dynamic batch) serves every N. Relative error is max |got - want| / max |want| over the whole tensor.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_agent.learning.data import load_fashion_mnist
from edge_agent.learning.jacobian import mlp_jacobian
from edge_agent.learning.mlp import MLPSpec, cross_entropy_sum, forward, init_weights
from edge_agent.learning.projection import ProjectionConfig, TensorSketchProjection, make_projection
from edge_agent.runtime.backend import KernelBackend, SketchState
from edge_agent.runtime.onnx_backend import OnnxBackend, cache_directory, ensure_exported
from edge_agent.runtime.onnx_export import MANIFEST, check_exports
from edge_agent.runtime.select import make_backend

SPEC = MLPSpec()
DIM = 1024
TOLERANCE = 1e-4
SIZES = [1, 7, 200]


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    assert got.shape == want.shape
    return float(np.abs(got.astype(np.float64) - want).max() / np.abs(want).max())


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def export_dir(cache_home: Path) -> Path:
    """The kernels exported on first use into the per-spec cache (XDG_CACHE_HOME pointed at a temporary dir)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(cache_home))
        return ensure_exported(SPEC, DIM)


@pytest.fixture(scope="module")
def backends(export_dir: Path) -> dict[str, KernelBackend]:
    return {"torch": make_backend("torch", SPEC, threads=2),
            "onnxruntime": make_backend("onnxruntime", SPEC, directory=export_dir, threads=2, dim=DIM)}


@pytest.fixture(scope="module")
def fashion() -> tuple[np.ndarray, np.ndarray]:
    _, test = load_fashion_mnist()
    return test.x[:200], test.y[:200]


def _case(kind: str, n: int, fashion: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(w, x, y): random weights and inputs, or perturbed initial weights on real test images."""
    rng = np.random.default_rng(n)
    if kind == "random":
        w = rng.normal(0, 0.05, SPEC.num_params).astype(np.float32)
        return w, rng.normal(size=(n, SPEC.sizes[0])).astype(np.float32), rng.integers(0, 10, n)
    w = init_weights(SPEC, 0) + rng.normal(0, 0.01, SPEC.num_params).astype(np.float32)
    return w, fashion[0][:n], fashion[1][:n]


def _projection(round_index: int) -> TensorSketchProjection:
    projection = make_projection(ProjectionConfig("tensorsketch", DIM, seed=11), SPEC, round_index)
    assert isinstance(projection, TensorSketchProjection)
    return projection


@pytest.mark.parametrize("kind", ["random", "fashion"])
@pytest.mark.parametrize("n", SIZES)
def test_projected_jacobian_and_logits_match_the_numpy_projection(
        backends: dict[str, KernelBackend], fashion: tuple[np.ndarray, np.ndarray], kind: str, n: int) -> None:
    w, x, _ = _case(kind, n, fashion)
    projection = _projection(round_index=n)
    jac, logits = mlp_jacobian(SPEC, w, x)
    expected = projection.project(jac)
    state = SketchState.from_projection(projection)
    numpy_jt, _ = make_backend("numpy", SPEC).projected_jacobian(w, x, state)
    assert relative_error(numpy_jt, expected) <= TOLERANCE
    results = {name: backend.projected_jacobian(w, x, state) for name, backend in backends.items()}
    for name, (jt, got_logits) in results.items():
        assert jt.dtype == np.float32 and jt.shape == (n, SPEC.num_classes, DIM), name
        assert relative_error(jt, expected) <= TOLERANCE, name
        assert relative_error(got_logits, logits) <= TOLERANCE, name
        assert relative_error(backends[name].logits(w, x), forward(SPEC, w, x)) <= TOLERANCE, name
    assert relative_error(results["onnxruntime"][0], results["torch"][0]) <= TOLERANCE


@pytest.mark.parametrize("kind", ["random", "fashion"])
@pytest.mark.parametrize("n", SIZES)
def test_loss_sums_match_the_cross_entropy_of_each_candidate(
        backends: dict[str, KernelBackend], fashion: tuple[np.ndarray, np.ndarray], kind: str, n: int) -> None:
    w, x, y = _case(kind, n, fashion)
    z = np.random.default_rng(n + 1).normal(0, 0.02, (4, DIM)).astype(np.float32)
    updates = _projection(round_index=0).lift(z)  # (T, d): the steps a neighbour scores
    expected = np.array([cross_entropy_sum(forward(SPEC, w + step, x), y) for step in updates])
    assert relative_error(make_backend("numpy", SPEC).loss_sums(w, updates, x, y), expected) <= TOLERANCE
    sums = {name: backend.loss_sums(w, updates, x, y) for name, backend in backends.items()}
    for name, got in sums.items():
        assert got.shape == (4,), name
        assert relative_error(got, expected) <= TOLERANCE, name
    assert relative_error(sums["onnxruntime"], sums["torch"]) <= TOLERANCE


def test_first_use_exports_into_the_spec_cache_and_later_uses_reuse_it(
        export_dir: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    assert export_dir == cache_directory(SPEC, DIM)
    assert export_dir.parent == cache_home / "edge-agent" / "onnx"
    assert cache_directory(SPEC, 512) != export_dir and cache_directory(MLPSpec((784, 50, 10)), DIM) != export_dir
    stamp = (export_dir / MANIFEST).stat().st_mtime_ns
    backend = make_backend("onnxruntime", SPEC, dim=DIM)
    assert isinstance(backend, OnnxBackend) and backend.directory == export_dir
    assert (export_dir / MANIFEST).stat().st_mtime_ns == stamp
    assert sorted(p.name for p in export_dir.parent.iterdir()) == [export_dir.name]  # no staging left behind


def test_export_manifest_records_spec_projection_names_and_hashes(export_dir: Path) -> None:
    manifest = check_exports(export_dir, SPEC, DIM)
    body = json.loads((export_dir / MANIFEST).read_text())
    assert body["format_version"] == manifest.format_version and body["sizes"] == [784, 100, 10]
    assert manifest.dim == DIM and manifest.layout == SketchState.from_projection(_projection(0)).layout
    assert manifest.kernels["projected_jacobian"].inputs == ("w", "x", "bucket", "sign")
    assert manifest.kernels["loss_sums"].outputs == ("loss_sums",)


def _copy(export_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(export_dir, copy)
    return copy


def test_check_exports_detects_a_modified_file(export_dir: Path, tmp_path: Path) -> None:
    copy = _copy(export_dir, tmp_path)
    with (copy / "loss_sums.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ValueError, match=r"loss_sums.onnx does not match the sha256"):
        check_exports(copy, SPEC, DIM)
    with pytest.raises(ValueError, match="sha256"):
        make_backend("onnxruntime", SPEC, directory=copy, dim=DIM)


def test_check_exports_refuses_a_stale_version_spec_or_dimension(export_dir: Path, tmp_path: Path) -> None:
    copy = _copy(export_dir, tmp_path)
    with pytest.raises(ValueError, match=r"MLP \(784, 100, 10\), not \(784, 50, 10\)"):
        check_exports(copy, MLPSpec((784, 50, 10)))
    with pytest.raises(ValueError, match="m = 1024, not 512"):
        check_exports(copy, SPEC, 512)
    body = json.loads((copy / MANIFEST).read_text())
    body["format_version"] = 0
    (copy / MANIFEST).write_text(json.dumps(body))
    with pytest.raises(ValueError, match="format version 0"):
        check_exports(copy, SPEC)
    (copy / MANIFEST).unlink()
    with pytest.raises(ValueError, match=r"manifest\.json is missing"):
        check_exports(copy, SPEC)


def test_onnx_backend_refuses_a_sketch_state_of_another_layout(backends: dict[str, KernelBackend]) -> None:
    other = SketchState.from_projection(TensorSketchProjection(SPEC, 512, (0, 0, 4)))
    w, x = np.zeros(SPEC.num_params, dtype=np.float32), np.zeros((2, SPEC.sizes[0]), dtype=np.float32)
    with pytest.raises(ValueError, match="does not match the export"):
        backends["onnxruntime"].projected_jacobian(w, x, other)

"""Seeded Jacobian projections: equal to their explicit matrix, reproducible, unbiased, and faithful on real data."""

from collections.abc import Iterator

import numpy as np
import pytest

from edge_agent.learning import projection as projection_module
from edge_agent.learning.data import load_fashion_mnist
from edge_agent.learning.jacobian import DenseJacobian, FactoredJacobian, mlp_jacobian
from edge_agent.learning.mlp import MLPSpec, init_weights
from edge_agent.learning.projection import Projection, ProjectionConfig, dense_matrix, make_projection

SMALL = MLPSpec((12, 7, 4))  # d = 123
M_SMALL = 32
RANDOM_CASES = [("gaussian", 1), ("sparse", 1), ("kron", 1), ("kron", 3), ("tensorsketch", 1)]
ALL_CASES = [("identity", 1), *RANDOM_CASES]


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _small_jacobian(n: int = 9, seed: int = 0) -> FactoredJacobian:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, SMALL.sizes[0])).astype(np.float32)
    return mlp_jacobian(SMALL, init_weights(SMALL, seed), x)[0]


def _small(family: str, rank: int = 1, seed: int = 5, round_index: int = 2) -> Projection:
    return make_projection(ProjectionConfig(family, M_SMALL, rank, seed), SMALL, round_index)  # type: ignore[arg-type]


@pytest.fixture(params=[False, True], ids=["one-chunk", "many-chunks"])
def chunking(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run with the default working-set budgets, or with tiny ones so the blocked and chunked paths all run."""
    if request.param:
        monkeypatch.setattr(projection_module, "_GAUSSIAN_BLOCK_FLOATS", 2 * 13 * M_SMALL)
        monkeypatch.setattr(projection_module, "_SPARSE_CHUNK_FLOATS", 9 * (M_SMALL + 1))
        monkeypatch.setattr(projection_module, "_UNITS_PER_BLOCK", 2)  # tensorsketch: 3 and 2 unit blocks
    yield


@pytest.mark.parametrize(("family", "rank"), ALL_CASES)
@pytest.mark.usefixtures("chunking")
def test_project_and_lift_equal_the_explicit_matrix(family: str, rank: int) -> None:
    proj = _small(family, rank)
    p = dense_matrix(proj, SMALL).astype(np.float64)  # (d, m)
    jac = _small_jacobian()
    z = np.random.default_rng(1).normal(size=(3, proj.dim)).astype(np.float32)
    projected = proj.project(jac)
    assert projected.shape == (9, 4, proj.dim) and projected.dtype == np.float32
    assert _relative(projected, jac.dense().astype(np.float64) @ p) < 1e-5
    lifted = proj.lift(z)
    assert lifted.shape == (3, SMALL.num_params) and lifted.dtype == np.float32
    assert _relative(lifted, z @ p.T) < 1e-5
    assert _relative(proj.lift(z[1]), p @ z[1]) < 1e-5


def test_identity_is_the_identity_matrix() -> None:
    proj = _small("identity")
    assert proj.dim == SMALL.num_params
    np.testing.assert_array_equal(dense_matrix(proj, SMALL), np.eye(SMALL.num_params, dtype=np.float32))


def test_entries_have_each_familys_structure() -> None:
    m, d = M_SMALL, SMALL.num_params
    tensorsketch = dense_matrix(_small("tensorsketch"), SMALL)
    assert np.all((tensorsketch != 0).sum(axis=1) == 1)  # one bucket per parameter
    assert set(np.unique(tensorsketch)) == {-1.0, 0.0, 1.0}
    sparse = dense_matrix(_small("sparse"), SMALL)
    np.testing.assert_allclose(np.abs(sparse[sparse != 0]), np.sqrt(np.sqrt(d) / m), rtol=1e-6)
    assert 0.5 < (sparse != 0).mean() * np.sqrt(d) < 1.5  # density 1/s
    gaussian = dense_matrix(_small("gaussian"), SMALL)
    assert abs(gaussian.std() * np.sqrt(m) - 1.0) < 0.05 and abs(gaussian.mean()) < 0.01
    kron = dense_matrix(_small("kron", rank=3), SMALL)
    first_layer = kron[: 7 * 12 + 7]  # W1 rows then b1: (7, 13) augmented block per column
    for k in range(m):
        block = np.concatenate([first_layer[: 7 * 12, k].reshape(7, 12), first_layer[7 * 12 :, k, None]], axis=1)
        assert np.linalg.matrix_rank(block.astype(np.float64)) <= 3


def _augmented_blocks(p: np.ndarray, spec: MLPSpec) -> list[np.ndarray]:
    """P's rows regrouped per layer as (out, in + 1, m): W rows, then the bias as the last input."""
    blocks, start = [], 0
    for fan_in, fan_out in zip(spec.sizes[:-1], spec.sizes[1:], strict=True):
        weight = p[start : start + fan_out * fan_in].reshape(fan_out, fan_in, -1)
        bias = p[start + fan_out * fan_in : start + fan_out * (fan_in + 1), None, :]
        blocks.append(np.concatenate([weight, bias], axis=1))
        start += fan_out * (fan_in + 1)
    return blocks


@pytest.mark.parametrize("units_per_block", [25, 2])
def test_tensorsketch_hashes_every_entry_independently_into_its_units_bucket_range(
    units_per_block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(projection_module, "_UNITS_PER_BLOCK", units_per_block)
    spec, m = MLPSpec((40, 8, 5)), 64
    counts = [np.zeros((8, 41, m)), np.zeros((5, 9, m))]
    draws = 300
    for seed in range(draws):
        p = dense_matrix(make_projection(ProjectionConfig("tensorsketch", m, 1, seed), spec, 0), spec)
        for count, block in zip(counts, _augmented_blocks(p, spec), strict=True):
            count += block != 0
        if seed == 0:
            buckets = [np.argmax(np.abs(block), axis=2) for block in _augmented_blocks(p, spec)]
            # Not a factored hash (h1[o] + h2[i]) mod m: unit rows are not shifted copies of one another.
            offsets = (buckets[0] - buckets[0][:, :1]) % m
            assert len({tuple(row) for row in offsets}) == 8
    for count, fan_out in zip(counts, (8, 5), strict=True):
        blocks = max(1, fan_out // units_per_block)
        for b in range(blocks):  # units [b out / G, (b + 1) out / G) own buckets [b m / G, (b + 1) m / G)
            o0, o1, k0, k1 = b * fan_out // blocks, (b + 1) * fan_out // blocks, b * m // blocks, (b + 1) * m // blocks
            assert count[o0:o1, :, :k0].sum() == 0 and count[o0:o1, :, k1:].sum() == 0
            # Uniform over the range: each unit's bucket counts are draws * (in + 1) / (k1 - k0) up to binomial noise.
            share = count[o0:o1, :, k0:k1].sum(axis=1)
            expected = draws * count.shape[1] / (k1 - k0)
            assert np.abs(share - expected).max() < 6 * np.sqrt(expected)


@pytest.mark.parametrize(("family", "rank"), RANDOM_CASES)
def test_matrix_is_a_pure_function_of_seed_and_round(family: str, rank: int) -> None:
    first = dense_matrix(_small(family, rank, seed=3, round_index=7), SMALL)
    np.testing.assert_array_equal(first, dense_matrix(_small(family, rank, seed=3, round_index=7), SMALL))
    assert not np.allclose(first, dense_matrix(_small(family, rank, seed=3, round_index=8), SMALL))
    assert not np.allclose(first, dense_matrix(_small(family, rank, seed=4, round_index=7), SMALL))


@pytest.mark.usefixtures("chunking")
def test_a_gaussian_that_keeps_its_drawn_blocks_is_the_same_matrix() -> None:
    config = ProjectionConfig("gaussian", M_SMALL, 1, 3)
    kept = make_projection(config, SMALL, 7, keep_drawn=True)
    drawn = make_projection(config, SMALL, 7)
    jac = _small_jacobian()
    z = np.random.default_rng(2).normal(size=(3, M_SMALL)).astype(np.float32)
    for _ in range(2):  # the first call draws and keeps the blocks, the second reuses them
        np.testing.assert_array_equal(kept.project(jac), drawn.project(jac))
        np.testing.assert_array_equal(kept.lift(z), drawn.lift(z))
    assert kept._kept is not None and drawn._kept is None  # type: ignore[attr-defined]


def test_a_gaussian_too_large_to_keep_is_drawn_per_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(projection_module, "_GAUSSIAN_KEEP_FLOATS", SMALL.num_params * M_SMALL - 1)
    config = ProjectionConfig("gaussian", M_SMALL, 1, 3)
    large = make_projection(config, SMALL, 7, keep_drawn=True)
    jac = _small_jacobian()
    np.testing.assert_array_equal(large.project(jac), make_projection(config, SMALL, 7).project(jac))
    assert large._kept is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(("family", "rank"), RANDOM_CASES)
def test_p_times_p_transpose_is_the_identity_in_expectation(family: str, rank: int) -> None:
    draws, d = 600, SMALL.num_params
    total = np.zeros((d, d))
    squares = np.zeros((d, d))
    diagonal_means = np.empty(draws)
    for seed in range(draws):
        p = dense_matrix(_small(family, rank, seed=seed, round_index=seed % 5), SMALL).astype(np.float64)
        outer = p @ p.T
        total += outer
        squares += outer**2
        diagonal_means[seed] = np.trace(outer) / d
    mean = total / draws
    se = np.sqrt(np.maximum(squares / draws - mean**2, 0.0) / (draws - 1))  # standard error of each entry's mean
    diagonal_se = diagonal_means.std(ddof=1) / np.sqrt(draws)
    assert abs(diagonal_means.mean() - 1.0) <= 4 * diagonal_se + 1e-6
    assert abs(np.diag(mean) - 1.0).max() <= 6 * np.diag(se).max() + 1e-6
    off = ~np.eye(d, dtype=bool)
    assert (np.abs(mean[off]) <= 6 * se[off] + 1e-9).all()
    # Unbiased: the off-diagonal means are as large as their noise alone makes them, no larger.
    assert 0.9 < (mean[off] ** 2).sum() / (se[off] ** 2).sum() < 1.1


def test_invalid_configurations_are_rejected_with_one_line() -> None:
    for kwargs in ({"dim": 0}, {"rank": 0}, {"family": "hadamard"}, {"seed": -1}):
        with pytest.raises(ValueError) as caught:
            ProjectionConfig(**kwargs)
        assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match="round index"):
        make_projection(ProjectionConfig(), SMALL, -1)
    proj = _small("tensorsketch")
    with pytest.raises(ValueError, match="lift expects"):
        proj.lift(np.zeros(M_SMALL + 1, dtype=np.float32))
    with pytest.raises(ValueError, match="built for"):
        proj.project(mlp_jacobian(MLPSpec((5, 3)), init_weights(MLPSpec((5, 3)), 0), np.ones((2, 5)))[0])


# --- the real model on real Fashion-MNIST ------------------------------------------------------------------

REAL = MLPSpec()
# Kernel-error bounds at m = 1024 on 200 training samples, seed 0 (measured: gaussian 0.034, sparse 0.034,
# kron r=1 0.058, kron r=4 0.044, tensorsketch 0.033; the old factored-hash tensorsketch measured 0.070).
KERNEL_BOUNDS = {("gaussian", 1): 0.045, ("sparse", 1): 0.045, ("kron", 1): 0.08, ("kron", 4): 0.055,
                 ("tensorsketch", 1): 0.05}  # fmt: skip
# Dense Gaussian's kernel error averaged over seeds 0-3 (measured 0.0333); tensorsketch must stay within 1.3x.
GAUSSIAN_MEAN_ERROR = 0.0333


@pytest.fixture(scope="module")
def real_jacobian() -> FactoredJacobian:
    train, _ = load_fashion_mnist()
    return mlp_jacobian(REAL, init_weights(REAL, 0), train.x[:200])[0]


@pytest.fixture(scope="module")
def real_projected(real_jacobian: FactoredJacobian) -> dict[tuple[str, int], tuple[Projection, np.ndarray]]:
    out = {}
    for family, rank in KERNEL_BOUNDS:
        proj = make_projection(ProjectionConfig(family, 1024, rank, 0), REAL, 0)  # type: ignore[arg-type]
        out[family, rank] = (proj, proj.project(real_jacobian))
    return out


def _jvp(jac: FactoredJacobian, v: np.ndarray) -> np.ndarray:
    """J v (N, C) in float64 from the factors, without forming J."""
    total = np.zeros(jac.output_grads[-1].shape[:2])
    for a, g, (weight, bias) in zip(jac.inputs, jac.output_grads, REAL.layers(v.astype(np.float64)), strict=True):
        total += np.einsum("nco,no->nc", g, a @ weight.T + bias)
    return total


@pytest.mark.parametrize(("family", "rank"), list(KERNEL_BOUNDS))
def test_projected_kernel_is_close_on_fashion_mnist(
    family: str,
    rank: int,
    real_jacobian: FactoredJacobian,
    real_projected: dict[tuple[str, int], tuple[Projection, np.ndarray]],
) -> None:
    _, projected = real_projected[family, rank]
    assert projected.shape == (200, 10, 1024)
    kernel = real_jacobian.kernel()
    error = _relative(DenseJacobian(projected).kernel(), kernel)
    print(f"{family} r={rank}: kernel error {error:.4f}")
    assert error < KERNEL_BOUNDS[family, rank]


@pytest.mark.parametrize(("family", "rank"), list(KERNEL_BOUNDS))
def test_lift_is_the_adjoint_of_project_on_the_real_model(
    family: str,
    rank: int,
    real_jacobian: FactoredJacobian,
    real_projected: dict[tuple[str, int], tuple[Projection, np.ndarray]],
) -> None:
    proj, projected = real_projected[family, rank]
    z = np.random.default_rng(0).normal(size=1024).astype(np.float32)
    lifted = proj.lift(z)
    assert lifted.shape == (REAL.num_params,) and lifted.dtype == np.float32
    # (J P) z == J (P z) for every sample and class.
    assert _relative(projected.astype(np.float64) @ z, _jvp(real_jacobian, lifted)) < 1e-5


def test_tensorsketch_is_as_faithful_as_gaussian_over_seeds(real_jacobian: FactoredJacobian) -> None:
    kernel = real_jacobian.kernel()
    errors = [
        _relative(DenseJacobian(make_projection(ProjectionConfig("tensorsketch", 1024, 1, seed), REAL, 0).project(
            real_jacobian)).kernel(), kernel)
        for seed in range(4)
    ]  # fmt: skip
    print(f"tensorsketch kernel errors {np.round(errors, 4)}")  # measured 0.033 0.042 0.038 0.038
    assert np.mean(errors) < 1.3 * GAUSSIAN_MEAN_ERROR

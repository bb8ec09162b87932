"""Seeded random projections P_k (d x m) of MLP Jacobians: J P without forming J, and P z back to weights.

SPEC 4.1. Every process derives the same P_k from (seed, round, spec); nothing about P is ever sent. All
families satisfy E[P P^T] = I, so the projected kernel (1/C) sum_c Jt_c Jt_c^T and the lifted update P dz are
unbiased. Each Linear layer's (W, b) is treated as one augmented block of shape (out, in + 1) whose per-sample
Jacobian is the outer product g (x) [a, 1]; P's rows for that block are indexed (o, i) and `lift` maps them back
to the flat layout (W rows, then b). The layers' blocks are stacked rows of one P, so J P sums over layers.
`tensorsketch` (the default) is a CountSketch with an independent bucket and sign for every parameter, the
buckets of a layer split into ranges by blocks of output units; the textbook factored hash (h1[o] + h2[i]) mod m
was measured twice as far from the exact kernel as dense Gaussian (see TensorSketchProjection).
numpy only: this runs on boards.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from edge_agent.learning.jacobian import FactoredJacobian
from edge_agent.learning.mlp import FloatArray, MLPSpec
from edge_agent.learning.models.contract import Model, Projection

Family = Literal["identity", "gaussian", "sparse", "kron", "tensorsketch"]
FAMILIES: tuple[str, ...] = get_args(Family)
# Mixed into every seed so that two families never share a random stream. Never renumber: it would change P.
_FAMILY_TAGS = {"identity": 0, "gaussian": 1, "sparse": 2, "kron": 3, "tensorsketch": 4}
# Seeds the kernel sketch (`kernel_sketch`) apart from every family's stream. Never change: it would change Q.
_KERNEL_SKETCH_TAG = 16
# Working-set budgets in float32 elements (4 bytes each): one dense Gaussian block, one chunk of sparse work.
_GAUSSIAN_BLOCK_FLOATS = 1 << 22
# The most a kept dense Gaussian P may hold (2 GiB per process: m up to 6,752 at d = 79,510); a larger one is
# drawn per use.
_GAUSSIAN_KEEP_FLOATS = 1 << 29
_SPARSE_CHUNK_FLOATS = 1 << 22
# tensorsketch: output units per block (see TensorSketchProjection).
_UNITS_PER_BLOCK = 25
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ProjectionConfig:
    """Which projection to use: family, projected dimension m, rank (kron only), and the shared seed."""

    family: Family = "tensorsketch"
    dim: int = 1024
    rank: int = 1  # kron only: rank-one terms per column
    seed: int = 0

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown projection family {self.family!r}; choose one of {', '.join(FAMILIES)}")
        if self.dim < 1:
            raise ValueError(f"projection dim must be >= 1, got {self.dim}")
        if self.rank < 1:
            raise ValueError(f"projection rank must be >= 1, got {self.rank}")
        if self.seed < 0:
            raise ValueError(f"projection seed must be >= 0, got {self.seed}")


def make_projection(config: ProjectionConfig, spec: Model, round_index: int, keep_drawn: bool = False) -> Projection:
    """P_k for round `round_index`: a pure function of (config, model, round_index).

    `keep_drawn`: a dense `gaussian` P keeps its blocks once drawn (see GaussianProjection); the structured
    families hold their few MB of state anyway. A model other than the MLP has no layers to structure P by: its
    `tensorsketch` is a CountSketch over the flat parameters (FlatSketchProjection), and only that and `identity`
    serve it.
    """
    if round_index < 0:
        raise ValueError(f"round index must be >= 0, got {round_index}")
    seed = (config.seed, round_index, _FAMILY_TAGS[config.family])
    if config.family == "identity":
        return IdentityProjection(spec)
    if not isinstance(spec, MLPSpec):
        if config.family != "tensorsketch":
            raise ValueError(f"projection family {config.family!r} needs the MLP; other models take tensorsketch "
                             "or identity")
        return FlatSketchProjection(spec.num_params, config.dim, seed)
    if config.family == "gaussian":
        return GaussianProjection(spec, config.dim, seed, keep_drawn)
    if config.family == "sparse":
        return SparseProjection(spec, config.dim, seed)
    if config.family == "kron":
        return KronProjection(spec, config.dim, config.rank, seed)
    return TensorSketchProjection(spec, config.dim, seed)


def kernel_sketch(dim: int, sketch_dim: int, seed: int, round_index: int) -> FloatArray:
    """Q_k (m, m'): a CountSketch from R^m to R^m' drawn from (seed, round), one +-1 per row in a uniform bucket.

    E[Q Q^T] = I, so the kernel of Jt Q is an unbiased estimate of the kernel of the projected Jacobian Jt; a
    neighbour sends Jt Q for the evolution and keeps Jt for the update (SPARK's kernel sketch)."""
    if not 1 <= sketch_dim <= dim:
        raise ValueError(f"kernel sketch dimension must lie in 1..{dim}, got {sketch_dim}")
    rng = np.random.default_rng([seed, round_index, _KERNEL_SKETCH_TAG])
    q = np.zeros((dim, sketch_dim), dtype=np.float32)
    q[np.arange(dim), rng.integers(0, sketch_dim, size=dim)] = _rademacher(rng, (dim,))
    return q


def dense_matrix(projection: Projection, spec: MLPSpec) -> FloatArray:
    """The explicit (d, m) matrix P, built by lifting the unit vectors; for tests at small sizes."""
    p = projection.lift(np.eye(projection.dim, dtype=np.float32)).T
    if p.shape[0] != spec.num_params:
        raise ValueError(f"projection lifts to {p.shape[0]} parameters, the spec has {spec.num_params}")
    return np.ascontiguousarray(p)


# --- shared helpers ----------------------------------------------------------------------------------------


def _augmented(a: FloatArray) -> FloatArray:
    """[a, 1]: (N, in) -> (N, in + 1) float32."""
    augmented = np.empty((len(a), a.shape[1] + 1), dtype=np.float32)
    augmented[:, :-1] = a
    augmented[:, -1] = 1.0
    return augmented


def _layer_shapes(spec: MLPSpec) -> list[tuple[int, int]]:
    """(out, in + 1) of each augmented Linear block."""
    return [(fan_out, fan_in + 1) for fan_in, fan_out in zip(spec.sizes[:-1], spec.sizes[1:], strict=True)]


def _flatten_blocks(spec: MLPSpec, blocks: list[FloatArray]) -> FloatArray:
    """Per-layer augmented blocks (T, out, in + 1) -> flat weights (T, d) float32 in the MLPSpec layout."""
    flat = np.empty((blocks[0].shape[0], spec.num_params), dtype=np.float32)
    for (weight, bias), block in zip(spec.layers(flat), blocks, strict=True):
        weight[...] = block[..., :-1]
        bias[...] = block[..., -1]
    return flat


def _flat_index(spec: MLPSpec, layer: int, o: IntArray, i: IntArray) -> IntArray:
    """Flat parameter index of augmented entry (o, i) of `layer` (i == in is the bias)."""
    start = sum(fo * fi + fo for fi, fo in zip(spec.sizes[:layer], spec.sizes[1 : layer + 1], strict=True))
    fan_in, fan_out = spec.sizes[layer], spec.sizes[layer + 1]
    return np.where(i < fan_in, start + o * fan_in + i, start + fan_out * fan_in + o).astype(np.int64)


def _as_batch(z: FloatArray, dim: int) -> tuple[FloatArray, bool]:
    """(T, m) float32 view of z and whether z was already batched."""
    if z.ndim not in (1, 2) or z.shape[-1] != dim:
        raise ValueError(f"lift expects shape ({dim},) or (T, {dim}), got {z.shape}")
    batched = z.ndim == 2
    return np.asarray(z if batched else z[None], dtype=np.float32), batched


def _check_spec(jac: FactoredJacobian, spec: MLPSpec) -> None:
    if jac.spec.sizes != spec.sizes:
        raise ValueError(f"Jacobian of an MLP {jac.spec.sizes} given to a projection built for {spec.sizes}")


def _rademacher(rng: np.random.Generator, shape: tuple[int, ...]) -> FloatArray:
    return (rng.integers(0, 2, size=shape, dtype=np.int8) * 2 - 1).astype(np.float32)


# --- families ----------------------------------------------------------------------------------------------


class IdentityProjection:
    """P = I_d: the unprojected Jacobian, for equivalence with NTK-DFL."""

    def __init__(self, spec: Model) -> None:
        self.spec = spec

    @property
    def dim(self) -> int:
        return self.spec.num_params

    def project(self, jac: FactoredJacobian) -> FloatArray:
        if not isinstance(self.spec, MLPSpec):
            raise TypeError("a factored Jacobian is an MLP's; this identity projection serves another model")
        _check_spec(jac, self.spec)
        return jac.dense()

    def lift(self, z: FloatArray) -> FloatArray:
        batch, batched = _as_batch(z, self.dim)
        return batch.copy() if batched else batch[0].copy()


class GaussianProjection:
    """Dense N(0, 1/m) entries, regenerated block by block from child seeds and never stored (slow reference).

    Block b of layer l covers output units [b * rows, (b + 1) * rows) and is drawn as an (in + 1, rows, m) array
    from default_rng([seed, round, tag, l, b]), so any block can be regenerated on its own. With `keep`, the
    blocks drawn on first use are kept (4 d m bytes, 0.33 GB at m = 1024; not beyond _GAUSSIAN_KEEP_FLOATS): the
    same numbers, for a simulator whose every client answers with one round's P; drawing them takes most of a
    request's time.
    """

    def __init__(self, spec: MLPSpec, dim: int, seed: tuple[int, ...], keep: bool = False) -> None:
        self.spec, self._dim, self._seed = spec, dim, seed
        self._keep = keep and spec.num_params * dim <= _GAUSSIAN_KEEP_FLOATS
        self._kept: list[tuple[int, int, int, FloatArray]] | None = None

    @property
    def dim(self) -> int:
        return self._dim

    def _blocks(self) -> Iterator[tuple[int, int, int, FloatArray]]:
        """(layer, o0, o1, P block (in + 1, o1 - o0, m)) over the whole matrix."""
        if not self._keep:
            return self._draw_blocks()
        if self._kept is None:
            self._kept = list(self._draw_blocks())
        return iter(self._kept)

    def _draw_blocks(self) -> Iterator[tuple[int, int, int, FloatArray]]:
        m = self._dim
        for layer, (fan_out, width) in enumerate(_layer_shapes(self.spec)):
            rows = max(1, _GAUSSIAN_BLOCK_FLOATS // (width * m))
            for index, o0 in enumerate(range(0, fan_out, rows)):
                o1 = min(o0 + rows, fan_out)
                rng = np.random.default_rng([*self._seed, layer, index])
                block = rng.standard_normal((width, o1 - o0, m), dtype=np.float32)
                block *= np.float32(1.0 / math.sqrt(m))
                yield layer, o0, o1, block

    def project(self, jac: FactoredJacobian) -> FloatArray:
        _check_spec(jac, self.spec)
        n, c, _ = jac.shape
        out = np.zeros((n, c, self._dim), dtype=np.float32)
        augmented = [_augmented(a) for a in jac.inputs]
        for layer, o0, o1, block in self._blocks():
            t = augmented[layer] @ block.reshape(block.shape[0], -1)  # (N, (o1 - o0) * m)
            g = np.ascontiguousarray(jac.output_grads[layer][:, :, o0:o1])
            out += np.matmul(g, t.reshape(n, o1 - o0, self._dim))
        return out

    def lift(self, z: FloatArray) -> FloatArray:
        batch, batched = _as_batch(z, self._dim)
        blocks = [np.empty((len(batch), o, w), dtype=np.float32) for o, w in _layer_shapes(self.spec)]
        for layer, o0, o1, block in self._blocks():
            part = block.reshape(-1, self._dim) @ batch.T  # ((in + 1) * rows, T)
            blocks[layer][:, o0:o1, :] = part.reshape(block.shape[0], o1 - o0, -1).transpose(2, 1, 0)
        flat = _flatten_blocks(self.spec, blocks)
        return flat if batched else flat[0]


@dataclass(frozen=True)
class _SparseLayer:
    """One layer's +-1 nonzeros at (o, i, k), as key = o * m + k and the row of [a_aug, -a_aug]^T they read.

    row is i for a +1 and in + 1 + i for a -1, so scattering needs no multiply. Sorted by (level, key), where
    level counts the earlier nonzeros with the same key: within one level the keys are distinct, so a level can be
    scattered with one fancy-index add.
    """

    row: IntArray
    key: IntArray
    level_starts: IntArray  # (levels + 1,) offsets of each level's run


def _sparse_layer(o: IntArray, i: IntArray, k: IntArray, sign: FloatArray, width: int, dim: int) -> _SparseLayer:
    """Nonzeros sign at (o, i, k) of a block with `width` = in + 1 inputs and `dim` buckets per output unit."""
    key = o * dim + k
    by_key = np.argsort(key, kind="stable")
    sorted_key = key[by_key]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    level = np.empty(len(key), dtype=np.int64)
    level[by_key] = np.arange(len(key)) - np.repeat(starts, np.diff(np.r_[starts, len(key)]))
    order = np.lexsort((key, level))
    counts = np.bincount(level, minlength=1)
    row = np.where(sign < 0, i + width, i)
    return _SparseLayer(row[order], key[order], np.r_[0, np.cumsum(counts)].astype(np.int64))


def _signed_inputs(a: FloatArray) -> FloatArray:
    """[a_aug, -a_aug]^T: (2 * (in + 1), N) float32, the rows a sign-folded scatter reads."""
    augmented_t = _augmented(a).T
    return np.ascontiguousarray(np.concatenate([augmented_t, -augmented_t]))


def _add_sparse_product(out: FloatArray, signed_t: FloatArray, g: FloatArray, nz: _SparseLayer) -> None:
    """out (N, C, m) += J P for one layer's +-1 nonzeros `nz` (keys o * m + k), without forming J.

    signed_t is _signed_inputs(a); g (N, C, out). Chunked over output units; out may be a view (a bucket range).
    """
    n, fan_out, m = len(out), g.shape[2], out.shape[2]
    rows = max(1, _SPARSE_CHUNK_FLOATS // (n * (m + math.ceil(len(nz.key) / fan_out))))
    for o0 in range(0, fan_out, rows):
        o1 = min(o0 + rows, fan_out)
        # B[(o, k), n] = sum over nonzeros (o, i, k) of sign * a_aug[n, i]: the sparse block times a_aug.
        b = np.zeros(((o1 - o0) * m, n), dtype=np.float32)
        for start, stop in zip(nz.level_starts[:-1], nz.level_starts[1:], strict=True):
            lo, hi = start + np.searchsorted(nz.key[start:stop], [o0 * m, o1 * m])
            b[nz.key[lo:hi] - o0 * m] += signed_t[nz.row[lo:hi]]
        b_per_sample = np.ascontiguousarray(b.reshape(o1 - o0, m, n).transpose(2, 0, 1))  # (N, rows, m)
        out += np.matmul(np.ascontiguousarray(g[:, :, o0:o1]), b_per_sample)


class SparseProjection:
    """Very sparse signs (Li, Hastie, Church 2006): +-sqrt(s/m) with probability 1/(2s) each, s = sqrt(d).

    Per layer the nonzero count is Binomial(rows * m, 1/s) and the positions are uniform without replacement,
    which is the same law as independent per-entry draws. Held as index lists (a few hundred thousand entries).
    """

    def __init__(self, spec: MLPSpec, dim: int, seed: tuple[int, ...]) -> None:
        self.spec, self._dim = spec, dim
        s = math.sqrt(spec.num_params)
        self._scale = np.float32(math.sqrt(s / dim))  # every nonzero is +-scale; project scatters signs only
        self._layers: list[_SparseLayer] = []
        flat_rows, columns, values = [], [], []
        for layer, (fan_out, width) in enumerate(_layer_shapes(spec)):
            rng = np.random.default_rng([*seed, layer])
            entries = fan_out * width * dim
            count = int(rng.binomial(entries, 1.0 / s))
            position = np.sort(rng.choice(entries, size=count, replace=False, shuffle=False)).astype(np.int64)
            sign = _rademacher(rng, (count,))
            row, k = np.divmod(position, dim)
            o, i = np.divmod(row, width)
            self._layers.append(_sparse_layer(o, i, k, sign, width, dim))
            flat_rows.append(_flat_index(spec, layer, o, i))
            columns.append(k)
            values.append(sign * self._scale)
        self._flat_rows = np.concatenate(flat_rows)
        self._columns = np.concatenate(columns)
        self._values = np.concatenate(values)

    @property
    def dim(self) -> int:
        return self._dim

    def project(self, jac: FactoredJacobian) -> FloatArray:
        _check_spec(jac, self.spec)
        n, c, _ = jac.shape
        out = np.zeros((n, c, self._dim), dtype=np.float32)
        for a, g, nz in zip(jac.inputs, jac.output_grads, self._layers, strict=True):
            _add_sparse_product(out, _signed_inputs(a), g, nz)
        out *= self._scale
        return out

    def lift(self, z: FloatArray) -> FloatArray:
        batch, batched = _as_batch(z, self._dim)
        d, t = self.spec.num_params, len(batch)
        weights = batch[:, self._columns] * self._values  # (T, nnz)
        index = (np.arange(t, dtype=np.int64)[:, None] * d + self._flat_rows).ravel()
        flat = np.bincount(index, weights=weights.ravel(), minlength=t * d).reshape(t, d).astype(np.float32)
        return flat if batched else flat[0]


class KronProjection:
    """Per layer, column k is sum_j u_kj (x) v_kj / sqrt(r m), with Rademacher u (out) and v (in + 1).

    A rank-one Jacobian block g (x) a projects to sum_j (g . u_kj)(a . v_kj) / sqrt(r m): J is never formed.
    """

    def __init__(self, spec: MLPSpec, dim: int, rank: int, seed: tuple[int, ...]) -> None:
        self.spec, self._dim, self._rank = spec, dim, rank
        self._scale = np.float32(1.0 / math.sqrt(rank * dim))
        self._factors: list[tuple[FloatArray, FloatArray]] = []  # per layer: U (out, r * m), V (in + 1, r * m)
        for layer, (fan_out, width) in enumerate(_layer_shapes(spec)):
            rng = np.random.default_rng([*seed, layer])
            self._factors.append((_rademacher(rng, (fan_out, dim * rank)), _rademacher(rng, (width, dim * rank))))

    @property
    def dim(self) -> int:
        return self._dim

    def project(self, jac: FactoredJacobian) -> FloatArray:
        _check_spec(jac, self.spec)
        n, c, _ = jac.shape
        out = np.zeros((n, c, self._dim), dtype=np.float32)
        for a, g, (u, v) in zip(jac.inputs, jac.output_grads, self._factors, strict=True):
            gu = (g.reshape(n * c, -1) @ u).reshape(n, c, -1)  # (N, C, r * m)
            gu *= (_augmented(a) @ v)[:, None, :]  # times AV (N, 1, r * m)
            out += gu.reshape(n, c, self._rank, self._dim).sum(axis=2)
        out *= self._scale
        return out

    def lift(self, z: FloatArray) -> FloatArray:
        batch, batched = _as_batch(z, self._dim)
        zr = np.tile(batch, self._rank) * self._scale  # (T, r * m): column j * m + k holds z_k
        blocks = []
        for u, v in self._factors:
            scaled_u = (u[None] * zr[:, None, :]).reshape(-1, u.shape[1])  # (T * out, r * m)
            blocks.append((v @ scaled_u.T).reshape(len(v), len(zr), len(u)).transpose(1, 2, 0))  # (T, out, in + 1)
        flat = _flatten_blocks(self.spec, blocks)
        return flat if batched else flat[0]


def _unit_blocks(fan_out: int, dim: int) -> tuple[IntArray, IntArray]:
    """Edges of one layer's tensorsketch blocks: output units and buckets, each (G + 1,) with G blocks."""
    blocks = max(1, min(fan_out // _UNITS_PER_BLOCK, dim))
    steps = np.arange(blocks + 1, dtype=np.int64)
    return steps * fan_out // blocks, steps * dim // blocks


class TensorSketchProjection:
    """A CountSketch of each augmented Linear block whose hash and sign are independent for every entry (o, i).

    The hash: a layer's output units are cut into G = max(1, out // 25) contiguous blocks, and the m buckets into
    G contiguous ranges; entry (o, i) of unit o's block b goes to a bucket drawn uniformly from range b, with its
    own Rademacher sign, independently of every other entry (default_rng([seed, round, tag, layer])). Each row of
    P is one +-1, so E[P P^T] = I exactly on the diagonal and the signs make every off-diagonal mean 0.

    Why not the factored hash (h1[o] + h2[i]) mod m, s1[o] s2[i] of a textbook TensorSketch: it sketches the
    layer input a once and only shifts that sketch per output unit, so a's bucket collisions are shared by every
    unit and every class; they never average out in the kernel (and in the output layer, where g is one-hot,
    the C class rows are shifted copies of one sketch). On Fashion-MNIST (784-100-10, m = 1024, 4 seeds) it gave
    kernel error 0.076 against dense Gaussian's 0.033; an independent hash per entry gives 0.033, and blocks of
    25 units give 0.038 (0.035 with 50, 0.045 with 12).

    Why blocks: J P of a block is a_aug scatter-added into one m / G bucket CountSketch per unit (N, units, m / G),
    then a batched matmul with g (N, C, units) into the block's bucket range, so G blocks cut that work and memory
    by G (784-100-10: 4 blocks of 256 buckets in the hidden layer, one block over all m for the 10 classes; about
    40 ms for N = 200, C = 10, m = 1024, as fast as the factored FFT; one block costs 2.5x). Fewer than 25 units
    per block leave the blocks' shares of the kernel too uneven. J P is scatter-adds and matmuls, P z a gather
    z[bucket] * sign: both export to ONNX as gathers.
    State: per parameter a bucket, a sign and its scatter row and key (about 2.5 MB at d = 79,510).
    """

    def __init__(self, spec: MLPSpec, dim: int, seed: tuple[int, ...]) -> None:
        self.spec, self._dim = spec, dim
        # Per layer, per block: units [o0, o1), buckets [k0, k1), and its nonzeros keyed (o - o0) * (k1 - k0) + k - k0.
        self._blocks: list[list[tuple[int, int, int, int, _SparseLayer]]] = []
        buckets, signs = [], []
        for layer, (fan_out, width) in enumerate(_layer_shapes(spec)):
            rng = np.random.default_rng([*seed, layer])
            unit_edges, bucket_edges = _unit_blocks(fan_out, dim)
            block_of_unit = np.repeat(np.arange(len(unit_edges) - 1), np.diff(unit_edges))
            low, high = bucket_edges[block_of_unit, None], bucket_edges[block_of_unit + 1, None]
            bucket = rng.integers(low, high, size=(fan_out, width), dtype=np.int64)  # (out, in + 1)
            sign = _rademacher(rng, (fan_out, width))
            layer_blocks = []
            for b in range(len(unit_edges) - 1):
                (o0, o1), (k0, k1) = unit_edges[b : b + 2].tolist(), bucket_edges[b : b + 2].tolist()
                o, i = np.divmod(np.arange((o1 - o0) * width, dtype=np.int64), width)
                local = _sparse_layer(o, i, bucket[o0:o1].ravel() - k0, sign[o0:o1].ravel(), width, k1 - k0)
                layer_blocks.append((o0, o1, k0, k1, local))
            self._blocks.append(layer_blocks)
            # Lift order: the flat MLPSpec layout (W rows, then b) of the augmented (out, in + 1) block.
            buckets.append(np.concatenate([bucket[:, :-1].ravel(), bucket[:, -1]]))
            signs.append(np.concatenate([sign[:, :-1].ravel(), sign[:, -1]]))
        self._bucket = np.concatenate(buckets)  # (d,)
        self._sign = np.concatenate(signs)  # (d,)

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def block_edges(self) -> tuple[tuple[tuple[int, int, int, int], ...], ...]:
        """Per layer, per block: (o0, o1, k0, k1), its output units [o0, o1) and its buckets [k0, k1)."""
        return tuple(tuple(block[:4] for block in layer) for layer in self._blocks)

    @property
    def bucket(self) -> IntArray:
        """Each parameter's bucket in [0, m), (d,) in the flat MLPSpec layout (read-only)."""
        view = self._bucket.view()
        view.flags.writeable = False
        return view

    @property
    def sign(self) -> FloatArray:
        """Each parameter's +-1 sign, (d,) in the flat MLPSpec layout (read-only)."""
        view = self._sign.view()
        view.flags.writeable = False
        return view

    def project(self, jac: FactoredJacobian) -> FloatArray:
        _check_spec(jac, self.spec)
        n, c, _ = jac.shape
        out = np.zeros((n, c, self._dim), dtype=np.float32)
        for a, g, blocks in zip(jac.inputs, jac.output_grads, self._blocks, strict=True):
            signed_t = _signed_inputs(a)
            for o0, o1, k0, k1, nz in blocks:
                _add_sparse_product(out[:, :, k0:k1], signed_t, g[:, :, o0:o1], nz)
        return out

    def lift(self, z: FloatArray) -> FloatArray:
        batch, batched = _as_batch(z, self._dim)
        flat: FloatArray = batch[:, self._bucket] * self._sign
        return flat if batched else flat[0]


class FlatSketchProjection:
    """A CountSketch over any model's flat parameters: parameter i goes to a uniform bucket with a uniform sign.

    The MLP's tensorsketch draws the same kind of hash but ranges its buckets by blocks of output units, which
    needs layers; a model seen only as d parameters gets this. The model computes J P itself from `bucket` and
    `sign` (Model.projected_jacobian), so `project` of an MLP's factored Jacobian is refused.
    """

    def __init__(self, num_params: int, dim: int, seed: tuple[int, ...]) -> None:
        rng = np.random.default_rng(list(seed))
        self._dim = dim
        self._bucket = rng.integers(0, dim, size=num_params, dtype=np.int64)
        self._sign = _rademacher(rng, (num_params,))
        self._bucket.flags.writeable = False
        self._sign.flags.writeable = False

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def bucket(self) -> IntArray:
        """Each parameter's bucket in [0, m), (d,) in the model's flat layout (read-only)."""
        return self._bucket

    @property
    def sign(self) -> FloatArray:
        """Each parameter's sign, (d,) float32 +-1 (read-only)."""
        return self._sign

    def project(self, jac: FactoredJacobian) -> FloatArray:
        raise TypeError("a flat sketch serves models other than the MLP; they apply it in projected_jacobian")

    def lift(self, z: FloatArray) -> FloatArray:
        batch, batched = _as_batch(z, self._dim)
        flat: FloatArray = batch[:, self._bucket] * self._sign
        return flat if batched else flat[0]

"""Which training samples each client holds: the papers' overlapping Dirichlet split, disjoint splits, files."""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

IndexArray = npt.NDArray[np.int64]
PartitionKind = Literal["dirichlet-overlap", "dirichlet-disjoint", "iid", "file"]
PARTITION_KINDS: tuple[PartitionKind, ...] = ("dirichlet-overlap", "dirichlet-disjoint", "iid", "file")

_CLIENT_KEY = re.compile(r"client_(\d{3,})")
_DISJOINT_ATTEMPTS = 1000


def class_pools(labels: npt.NDArray[np.integer], rng: np.random.Generator) -> list[IndexArray]:
    """For each distinct label, ascending, a shuffled array of the indices carrying it."""
    return [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]


def dirichlet_overlap_split(
    labels: npt.ArrayLike, clients: int, samples_per_client: int, alpha: float, seed: int
) -> list[IndexArray]:
    """The NTK-FL/NTK-DFL generator (SPEC section 2); clients may share samples.

    Per class a shuffled pool of its indices; for each client draw p ~ Dirichlet(alpha * 1_C),
    h_c = floor(S * p_c), take the first h_c indices of pool c, then reshuffle pool c.
    Flooring leaves a client with up to C - 1 fewer than S samples (about 197 at S = 200, alpha = 0.1).
    """
    rng = np.random.default_rng(seed)
    pools = class_pools(_labels_1d(labels), rng)
    split = []
    for _ in range(clients):
        proportions = rng.dirichlet(np.full(len(pools), alpha))
        counts = np.floor(samples_per_client * proportions).astype(np.int64)
        taken = []
        for c, count in enumerate(counts):
            taken.append(pools[c][:count])
            pools[c] = rng.permutation(pools[c])
        split.append(np.concatenate(taken).astype(np.int64))
    return split


def dirichlet_disjoint_split(labels: npt.ArrayLike, clients: int, alpha: float, seed: int) -> list[IndexArray]:
    """Classic disjoint Dirichlet split: each class's shuffled indices cut among clients by Dirichlet(alpha).

    Redrawn (same generator, up to 1000 times) until every client holds a sample, as common implementations
    do; if that never happens the last draw is returned and `make_partition` reports the empty client.
    """
    rng = np.random.default_rng(seed)
    y = _labels_1d(labels)
    split = _disjoint_draw(y, clients, alpha, rng)
    for _ in range(_DISJOINT_ATTEMPTS - 1):
        if min(len(part) for part in split) > 0:
            break
        split = _disjoint_draw(y, clients, alpha, rng)
    return split


def _disjoint_draw(
    labels: npt.NDArray[np.integer], clients: int, alpha: float, rng: np.random.Generator
) -> list[IndexArray]:
    parts: list[list[IndexArray]] = [[] for _ in range(clients)]
    for pool in class_pools(labels, rng):
        proportions = rng.dirichlet(np.full(clients, alpha))
        cuts = (np.cumsum(proportions)[:-1] * len(pool)).astype(np.int64)
        for part, piece in zip(parts, np.split(pool, cuts), strict=True):
            part.append(piece)
    return [np.concatenate(part).astype(np.int64) for part in parts]


def iid_split(n: int, clients: int, samples_per_client: int, seed: int) -> list[IndexArray]:
    """Disjoint random clients of `samples_per_client` samples each out of `n`."""
    if clients * samples_per_client > n:
        raise ValueError(
            f"an IID split of {clients} clients x {samples_per_client} samples needs {clients * samples_per_client}"
            f" samples, only {n} exist"
        )
    order = np.random.default_rng(seed).permutation(n).astype(np.int64)
    return [order[i * samples_per_client : (i + 1) * samples_per_client] for i in range(clients)]


def load_partition(path: Path, clients: int | None, *, n_train: int) -> list[IndexArray]:
    """The first `clients` (all if None) index arrays client_000, client_001, ... of an npz split file, each index
    checked to lie in a training set of `n_train` samples."""
    arrays = _read_npz(path)
    keys = sorted(arrays, key=lambda k: int(k.removeprefix("client_")))
    expected = [f"client_{i:03d}" for i in range(len(keys))]
    if keys != expected:
        raise ValueError(f"{path}: expected arrays client_000 .. client_{len(keys) - 1:03d}, got {keys[:5]} ...")
    wanted = len(keys) if clients is None else clients
    if wanted < 1 or wanted > len(keys):
        raise ValueError(f"{path} holds {len(keys)} clients, asked for {wanted}")
    return [_checked_indices(path, key, arrays[key], n_train) for key in keys[:wanted]]


def _read_npz(path: Path) -> dict[str, npt.NDArray[np.generic]]:
    """All arrays of an npz file by name; ValueError if it is not one or a name is not client_NNN."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not named client arrays")
        with loaded as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is not a readable npz partition file ({err})") from err
    bad = [key for key in arrays if not _CLIENT_KEY.fullmatch(key)]
    if bad or not arrays:
        raise ValueError(f"{path}: arrays must be named client_000, client_001, ...; found {bad or 'none'}")
    return arrays


def _checked_indices(path: Path, key: str, indices: npt.NDArray[np.generic], n_train: int) -> IndexArray:
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"{path}: {key} must be a 1-D integer array, got {indices.dtype} {indices.shape}")
    if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= n_train):
        raise ValueError(f"{path}: {key} has an index outside [0, {n_train})")
    return indices.astype(np.int64)


@dataclass(frozen=True)
class PartitionConfig:
    """How to split the training set among clients."""

    kind: PartitionKind
    clients: int
    samples_per_client: int
    alpha: float
    seed: int
    path: Path | None = None

    @classmethod
    def for_run(cls, clients: int, samples_per_client: int, alpha: float, seed: int,
                path: Path | None = None) -> PartitionConfig:
        """A run's split: read from `path` when given, else the SPEC's overlapping Dirichlet generator."""
        return cls("file" if path else "dirichlet-overlap", clients, samples_per_client, alpha, seed, path)

    def __post_init__(self) -> None:
        if self.kind not in PARTITION_KINDS:
            raise ValueError(f"partition kind must be one of {', '.join(PARTITION_KINDS)}, got {self.kind!r}")
        if self.clients < 1:
            raise ValueError(f"clients must be at least 1, got {self.clients}")
        if self.samples_per_client < 1:
            raise ValueError(f"samples per client must be at least 1, got {self.samples_per_client}")
        if not self.alpha > 0:
            raise ValueError(f"Dirichlet alpha must be positive, got {self.alpha}")
        if self.kind == "file" and self.path is None:
            raise ValueError("partition kind 'file' needs a path to an npz file (--partition FILE)")


def make_partition(config: PartitionConfig, labels: npt.ArrayLike) -> list[IndexArray]:
    """Each client's training-set indices under `config`; ValueError if a client ends up with none."""
    y = _labels_1d(labels)
    _check_enough_samples(config, len(y))
    split = _split_for(config, y)
    empty = [i for i, part in enumerate(split) if len(part) == 0]
    if empty:
        raise ValueError(
            f"{config.kind} split gave client {empty[0]} no samples ({len(empty)} empty of {config.clients});"
            f" raise alpha (now {config.alpha}) or samples per client, use fewer clients, or change the seed"
        )
    return split


def _check_enough_samples(config: PartitionConfig, n: int) -> None:
    """ValueError when a training set of `n` samples cannot give `config`'s clients what its split draws."""
    if config.kind == "iid":
        needed, why = config.clients * config.samples_per_client, "disjoint clients of samples_per_client each"
    elif config.kind == "dirichlet-overlap":
        needed, why = config.samples_per_client, "samples_per_client drawn by each client (they may overlap)"
    elif config.kind == "dirichlet-disjoint":
        needed, why = config.clients, "at least one per client"
    else:
        return  # a file's indices are checked against n as they are read
    if n < needed:
        raise ValueError(f"the training set has {n} samples, fewer than the {needed} a {config.kind} split of "
                         f"{config.clients} clients x {config.samples_per_client} samples needs ({why}); use fewer "
                         "clients or samples per client (--clients, --samples or the setting)")


def _split_for(config: PartitionConfig, labels: npt.NDArray[np.integer]) -> list[IndexArray]:
    if config.kind == "dirichlet-overlap":
        return dirichlet_overlap_split(labels, config.clients, config.samples_per_client, config.alpha, config.seed)
    if config.kind == "dirichlet-disjoint":
        return dirichlet_disjoint_split(labels, config.clients, config.alpha, config.seed)
    if config.kind == "iid":
        return iid_split(len(labels), config.clients, config.samples_per_client, config.seed)
    assert config.path is not None  # checked in PartitionConfig
    return load_partition(config.path, config.clients, n_train=len(labels))


def _labels_1d(labels: npt.ArrayLike) -> npt.NDArray[np.integer]:
    y = np.asarray(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got {y.dtype} {y.shape}")
    return y

"""Tests for edge_agent.learning.partition: the overlapping Dirichlet generator, disjoint splits, split files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_agent.learning.partition import (
    PartitionConfig,
    dirichlet_disjoint_split,
    dirichlet_overlap_split,
    iid_split,
    load_partition,
    make_partition,
)

# The published split, vendored with the benchmarks (bench/data/README.md).
PUBLISHED_SPLIT = Path(__file__).resolve().parents[2] / "bench" / "data" / "fmnist300-alpha0.1-split0.npz"


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    """Stand-in for the training labels: 6,000 of each of 10 classes in a seeded random order."""
    return np.random.default_rng(123).permutation(np.repeat(np.arange(10), 6_000)).astype(np.int64)


def max_class_fraction(labels: np.ndarray, split: list[np.ndarray]) -> float:
    return float(np.mean([np.bincount(labels[part], minlength=10).max() / len(part) for part in split]))


def test_overlap_split_floors_to_about_197_samples_per_client(labels: np.ndarray) -> None:
    split = dirichlet_overlap_split(labels, clients=300, samples_per_client=200, alpha=0.1, seed=0)
    sizes = np.array([len(part) for part in split])
    assert len(split) == 300
    assert 195 < sizes.mean() < 199
    assert sizes.max() <= 200 and sizes.min() >= 200 - 9


def test_overlap_split_shares_samples_between_clients_not_within(labels: np.ndarray) -> None:
    split = dirichlet_overlap_split(labels, clients=300, samples_per_client=200, alpha=0.1, seed=0)
    taken = np.concatenate(split)
    assert len(taken) > len(np.unique(taken))
    assert all(len(np.unique(part)) == len(part) for part in split)
    assert all(part.dtype == np.int64 for part in split)
    assert taken.min() >= 0 and taken.max() < len(labels)


def test_overlap_split_is_seed_deterministic(labels: np.ndarray) -> None:
    first = dirichlet_overlap_split(labels, 20, 200, 0.1, seed=7)
    again = dirichlet_overlap_split(labels, 20, 200, 0.1, seed=7)
    other = dirichlet_overlap_split(labels, 20, 200, 0.1, seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_overlap_split_follows_the_spec_generator_step_by_step() -> None:
    labels = np.array([0, 1, 0, 1, 2, 2, 0, 1, 2, 0], dtype=np.int64)
    rng = np.random.default_rng(5)
    pools = [rng.permutation(np.flatnonzero(labels == c)) for c in range(3)]
    expected = []
    for _ in range(4):
        counts = np.floor(6 * rng.dirichlet(np.full(3, 0.5))).astype(np.int64)
        taken = []
        for c in range(3):
            taken.append(pools[c][: counts[c]])
            pools[c] = rng.permutation(pools[c])
        expected.append(np.concatenate(taken))
    actual = dirichlet_overlap_split(labels, clients=4, samples_per_client=6, alpha=0.5, seed=5)
    assert [a.tolist() for a in actual] == [e.tolist() for e in expected]


def test_small_alpha_skews_label_histograms_and_large_alpha_evens_them(labels: np.ndarray) -> None:
    skewed = dirichlet_overlap_split(labels, 300, 200, alpha=0.1, seed=1)
    even = dirichlet_overlap_split(labels, 300, 200, alpha=100.0, seed=1)
    assert max_class_fraction(labels, skewed) > 0.6
    assert max_class_fraction(labels, even) < 0.4


def test_disjoint_dirichlet_split_covers_every_sample_once(labels: np.ndarray) -> None:
    split = dirichlet_disjoint_split(labels, clients=50, alpha=0.5, seed=2)
    taken = np.concatenate(split)
    assert len(taken) == len(labels) == len(np.unique(taken))
    assert min(len(part) for part in split) > 0
    assert max_class_fraction(labels, split) > 0.4


def test_iid_split_is_disjoint_with_equal_sizes() -> None:
    split = iid_split(1_000, clients=7, samples_per_client=100, seed=3)
    taken = np.concatenate(split)
    assert [len(part) for part in split] == [100] * 7
    assert len(np.unique(taken)) == 700


def test_iid_split_rejects_more_samples_than_exist() -> None:
    with pytest.raises(ValueError, match="only 100 exist"):
        iid_split(100, clients=3, samples_per_client=50, seed=0)


def test_published_split_file_has_the_documented_counts() -> None:
    split = load_partition(PUBLISHED_SPLIT, None, n_train=60_000)
    sizes = [len(part) for part in split]
    taken = np.concatenate(split)
    assert len(split) == 300
    assert min(sizes) >= 194 and max(sizes) <= 199
    assert len(taken) == 59_218
    assert len(np.unique(taken)) == 37_882
    assert taken.dtype == np.int64


def test_published_split_file_gives_its_first_clients() -> None:
    everyone = load_partition(PUBLISHED_SPLIT, None, n_train=60_000)
    first = load_partition(PUBLISHED_SPLIT, 10, n_train=60_000)
    assert len(first) == 10
    assert all(np.array_equal(a, b) for a, b in zip(first, everyone[:10], strict=True))


def save_split(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def test_load_partition_rejects_asking_for_more_clients_than_stored(tmp_path: Path) -> None:
    path = save_split(tmp_path / "s.npz", client_000=np.arange(3), client_001=np.arange(3, 6))
    assert len(load_partition(path, 2, n_train=60_000)) == 2
    with pytest.raises(ValueError, match="holds 2 clients, asked for 3"):
        load_partition(path, 3, n_train=60_000)


@pytest.mark.parametrize(
    "arrays",
    [
        {"client_000": np.arange(3), "weights": np.arange(3)},
        {"client_000": np.arange(3), "client_002": np.arange(3)},
        {"client_0": np.arange(3)},
    ],
)
def test_load_partition_rejects_malformed_keys(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    path = save_split(tmp_path / "s.npz", **arrays)
    with pytest.raises(ValueError, match="client_000"):
        load_partition(path, None, n_train=60_000)


@pytest.mark.parametrize("bad", [np.array([0, 60_000]), np.array([-1, 5]), np.array([0.5, 1.0])])
def test_load_partition_rejects_bad_indices(tmp_path: Path, bad: np.ndarray) -> None:
    path = save_split(tmp_path / "s.npz", client_000=np.arange(3), client_001=bad)
    with pytest.raises(ValueError, match="client_001"):
        load_partition(path, None, n_train=60_000)


def test_load_partition_rejects_a_file_that_is_not_npz(tmp_path: Path) -> None:
    path = tmp_path / "s.npz"
    path.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="not a readable npz"):
        load_partition(path, None, n_train=60_000)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"alpha": 0.0}, "alpha must be positive"),
        ({"alpha": -1.0}, "alpha must be positive"),
        ({"clients": 0}, "clients must be at least 1"),
        ({"samples_per_client": 0}, "samples per client must be at least 1"),
        ({"kind": "file"}, "needs a path"),
        ({"kind": "shards"}, "partition kind must be one of"),
    ],
)
def test_partition_config_rejects_bad_values(changes: dict[str, object], message: str) -> None:
    settings: dict[str, object] = {
        "kind": "dirichlet-overlap",
        "clients": 10,
        "samples_per_client": 200,
        "alpha": 0.1,
        "seed": 0,
    }
    settings.update(changes)
    with pytest.raises(ValueError, match=message):
        PartitionConfig(**settings)  # type: ignore[arg-type]


def test_make_partition_dispatches_on_kind(labels: np.ndarray, tmp_path: Path) -> None:
    overlap = PartitionConfig("dirichlet-overlap", clients=5, samples_per_client=200, alpha=0.1, seed=4)
    expected = dirichlet_overlap_split(labels, 5, 200, 0.1, 4)
    assert all(np.array_equal(a, b) for a, b in zip(make_partition(overlap, labels), expected, strict=True))
    iid = make_partition(PartitionConfig("iid", 4, 50, 1.0, 0), labels)
    assert [len(part) for part in iid] == [50] * 4
    disjoint = make_partition(PartitionConfig("dirichlet-disjoint", 4, 1, 1.0, 0), labels)
    assert sum(len(part) for part in disjoint) == len(labels)
    path = save_split(tmp_path / "s.npz", client_000=np.arange(3), client_001=np.arange(4))
    from_file = make_partition(PartitionConfig("file", 2, 1, 1.0, 0, path=path), labels)
    assert [part.tolist() for part in from_file] == [[0, 1, 2], [0, 1, 2, 3]]


def test_make_partition_rejects_a_client_with_no_samples(labels: np.ndarray) -> None:
    config = PartitionConfig("dirichlet-overlap", clients=50, samples_per_client=1, alpha=0.1, seed=0)
    with pytest.raises(ValueError, match="no samples"):
        make_partition(config, labels)


@pytest.mark.parametrize("kind", ["dirichlet-overlap", "dirichlet-disjoint", "iid"])
def test_every_split_works_for_five_classes_and_a_small_training_set(kind: str) -> None:
    five = np.arange(300) % 5  # 300 samples of 5 classes
    split = make_partition(PartitionConfig(kind, clients=6, samples_per_client=40, alpha=0.5, seed=1), five)  # type: ignore[arg-type]
    assert len(split) == 6 and all(0 < len(part) <= 300 for part in split)
    assert all(part.min() >= 0 and part.max() < 300 for part in split)
    if kind != "dirichlet-overlap":
        taken = np.concatenate(split)
        assert len(np.unique(taken)) == len(taken)  # disjoint
    else:
        assert all(len(part) >= 40 - 4 for part in split)  # flooring loses at most C - 1 = 4


@pytest.mark.parametrize(("kind", "clients", "samples", "needed"), [
    ("iid", 4, 30, 120), ("dirichlet-overlap", 4, 150, 150), ("dirichlet-disjoint", 120, 10, 120)])
def test_a_training_set_smaller_than_the_split_needs_is_refused(kind: str, clients: int, samples: int,
                                                                needed: int) -> None:
    config = PartitionConfig(kind, clients=clients, samples_per_client=samples, alpha=0.5, seed=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=f"has 100 samples, fewer than the {needed} a {kind} split"):
        make_partition(config, np.arange(100) % 5)


def test_a_partition_file_is_checked_against_the_training_set_it_splits(tmp_path: Path) -> None:
    path = tmp_path / "split.npz"
    np.savez(path, client_000=np.array([0, 99]), client_001=np.array([5]))
    assert [p.tolist() for p in load_partition(path, None, n_train=100)] == [[0, 99], [5]]
    with pytest.raises(ValueError, match=r"outside \[0, 99\)"):
        load_partition(path, None, n_train=99)

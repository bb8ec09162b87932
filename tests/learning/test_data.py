"""Tests for edge_agent.learning.data: lookup, IDX parsing, checksums and preprocessing on the real files."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_agent.learning import data
from edge_agent.learning.data import (
    CONTENT_SHA256,
    FILE_NAMES,
    SYSTEM_DATA_DIR,
    DataNotFoundError,
    Dataset,
    content_sha256,
    data_file,
    find_data_dir,
    load_fashion_mnist,
    read_uint8_idx,
    split_validation,
)

needs_installed_data = pytest.mark.skipif(
    not data.has_all_files(SYSTEM_DATA_DIR),
    reason=f"Fashion-MNIST not installed in {SYSTEM_DATA_DIR} (sudo apt-get install dataset-fashion-mnist)",
)


@pytest.fixture(scope="module")
def fashion() -> tuple[Dataset, Dataset]:
    if not data.has_all_files(SYSTEM_DATA_DIR):
        pytest.skip(f"Fashion-MNIST not installed in {SYSTEM_DATA_DIR}")
    return load_fashion_mnist(SYSTEM_DATA_DIR)


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGE_AGENT_DATA", raising=False)


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_load_gives_official_sizes_shapes_and_label_range(fashion: tuple[Dataset, Dataset]) -> None:
    train, test = fashion
    assert (len(train), len(test)) == (60_000, 10_000)
    assert train.x.shape == (60_000, 784) and test.x.shape == (10_000, 784)
    assert train.x.dtype == np.float32 and train.y.dtype == np.int64
    assert set(np.unique(train.y).tolist()) == set(range(10))
    assert set(np.unique(test.y).tolist()) == set(range(10))


def test_normalised_training_set_has_zero_mean_and_unit_std(fashion: tuple[Dataset, Dataset]) -> None:
    train, _ = fashion
    assert abs(float(train.x.mean(dtype=np.float64))) < 0.01
    assert abs(float(train.x.std(dtype=np.float64)) - 1.0) < 0.02


def test_preprocessing_is_divide_by_255_then_standardise(fashion: tuple[Dataset, Dataset]) -> None:
    train, _ = fashion
    raw = read_uint8_idx(data_file(SYSTEM_DATA_DIR, data.TRAIN_IMAGES) or Path("missing"))
    expected = (raw[:100].reshape(100, 784).astype(np.float64) / 255.0 - 0.2860) / 0.3530
    np.testing.assert_allclose(train.x[:100], expected, rtol=0, atol=1e-5)


@needs_installed_data
def test_installed_files_match_the_module_checksums() -> None:
    for name in FILE_NAMES:
        path = data_file(SYSTEM_DATA_DIR, name)
        assert path is not None
        assert content_sha256(path) == CONTENT_SHA256[name]
    assert all(data.verify_dir(SYSTEM_DATA_DIR).values())


def test_empty_env_dir_raises_with_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_AGENT_DATA", str(tmp_path))
    with pytest.raises(DataNotFoundError) as info:
        find_data_dir()
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "EDGE_AGENT_DATA" in message and "edge-agent data download" in message
    assert str(tmp_path) in message
    assert info.value.searched == (tmp_path,)


def test_env_dir_with_files_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in FILE_NAMES:
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setenv("EDGE_AGENT_DATA", str(tmp_path))
    assert find_data_dir() == tmp_path


def test_explicit_dir_wins_over_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit, env = tmp_path / "explicit", tmp_path / "env"
    for directory in (explicit, env):
        directory.mkdir()
        for name in FILE_NAMES:
            (directory / f"{name}.gz").write_bytes(b"")
    monkeypatch.setenv("EDGE_AGENT_DATA", str(env))
    assert find_data_dir(explicit) == explicit


def test_default_search_is_system_dir_then_xdg_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_env: None
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert data.candidate_dirs() == [SYSTEM_DATA_DIR, tmp_path / "edge-agent" / "fashion-mnist"]


def test_dir_missing_one_file_does_not_qualify(tmp_path: Path) -> None:
    for name in FILE_NAMES[:3]:
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(DataNotFoundError):
        find_data_dir(tmp_path)


@pytest.mark.parametrize("gzipped", [False, True])
def test_read_uint8_idx_streams_plain_and_gzipped_files(tmp_path: Path, gzipped: bool) -> None:
    array = np.random.default_rng(1).integers(0, 256, (3000, 28, 28), dtype=np.uint8)  # 2.2 MB: several reads
    path = tmp_path / "images"
    path.write_bytes(gzip.compress(idx_bytes(array)) if gzipped else idx_bytes(array))
    np.testing.assert_array_equal(read_uint8_idx(path), array)


def test_bad_magic_and_other_types_raise_value_error(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"\x12\x34\x08\x03" + bytes(12))
    with pytest.raises(ValueError, match="magic"):
        read_uint8_idx(path)
    path.write_bytes(b"\x00\x00\x0d\x01" + (4).to_bytes(4, "big") + b"\x00" * 16)  # a float32 IDX
    with pytest.raises(ValueError, match="not a uint8 IDX"):
        read_uint8_idx(path)


@pytest.mark.parametrize(("cut", "message"), [(1, "magic"), (9, "header is truncated"), (-1, "header says")])
def test_size_mismatch_raises_value_error(tmp_path: Path, cut: int, message: str) -> None:
    raw = idx_bytes(np.zeros((2, 3), dtype=np.uint8))
    path = tmp_path / "short"
    path.write_bytes(raw[:cut])
    with pytest.raises(ValueError, match=message):
        read_uint8_idx(path)
    path.write_bytes(raw + b"\x00")
    with pytest.raises(ValueError, match="header says"):
        read_uint8_idx(path)


def test_broken_gzip_raises_value_error(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(10, dtype=np.uint8)))[:-6])
    with pytest.raises(ValueError, match="gzip"):
        read_uint8_idx(path)


@needs_installed_data
def test_corrupt_file_in_data_dir_raises_value_error(tmp_path: Path) -> None:
    for name in FILE_NAMES:
        shutil.copy(data_file(SYSTEM_DATA_DIR, name) or Path("missing"), tmp_path)
    (tmp_path / f"{data.TRAIN_LABELS}.gz").write_bytes(gzip.compress(b"\x01\x02\x03\x04" + bytes(8)))
    with pytest.raises(ValueError, match="magic"):
        load_fashion_mnist(tmp_path)


def test_split_validation_halves_the_test_set_by_seed(fashion: tuple[Dataset, Dataset]) -> None:
    _, test = fashion
    validation, held_out = split_validation(test, seed=3)
    assert (len(validation), len(held_out)) == (5_000, 5_000)
    assert np.bincount(np.concatenate([validation.y, held_out.y])).tolist() == np.bincount(test.y).tolist()
    again, _ = split_validation(test, seed=3)
    other, _ = split_validation(test, seed=4)
    np.testing.assert_array_equal(again.y, validation.y)
    assert not np.array_equal(other.x, validation.x)


def test_subset_takes_rows_in_order() -> None:
    dataset = Dataset(np.arange(12, dtype=np.float32).reshape(4, 3), np.array([0, 1, 2, 3], dtype=np.int64))
    part = dataset.subset([3, 1])
    assert len(part) == 2
    assert part.y.tolist() == [3, 1]
    assert part.x[0].tolist() == [9.0, 10.0, 11.0]


def test_dataset_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError):
        Dataset(np.zeros((3, 784), dtype=np.float32), np.zeros(2, dtype=np.int64))


@needs_installed_data
def test_download_skips_a_mirror_with_wrong_content_and_keeps_no_partial_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad_mirror = tmp_path / "bad"
    bad_mirror.mkdir()
    for name in FILE_NAMES:
        (bad_mirror / f"{name}.gz").write_bytes(gzip.compress(b"not the dataset"))
    good_mirror = tmp_path / "good"
    good_mirror.mkdir()
    for name in FILE_NAMES:
        (good_mirror / f"{name}.gz").symlink_to(data_file(SYSTEM_DATA_DIR, name) or Path("missing"))
    monkeypatch.setattr(data, "MIRRORS", (bad_mirror.as_uri() + "/", good_mirror.as_uri() + "/"))
    dest = tmp_path / "cache"
    assert data.download_dataset(dest) == dest
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"{name}.gz" for name in FILE_NAMES)
    assert all(data.verify_dir(dest).values())


def test_download_with_no_good_mirror_raises_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data, "MIRRORS", ((tmp_path / "nowhere").as_uri() + "/",))
    dest = tmp_path / "cache"
    with pytest.raises(data.DownloadError, match="could not download"):
        data.download_dataset(dest)
    assert list(dest.iterdir()) == []

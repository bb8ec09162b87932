"""An npz of your own: both layouts load, uint8 is scaled, and every bad file is refused naming the key at fault."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.learning.datasets import npz
from edge_agent.learning.datasets.labelled import hold_out_sixth


def _save(tmp_path: Path, **arrays: Any) -> Path:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return path


def _good(n: int = 60, shape: tuple[int, ...] = (2, 3), classes: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x": rng.normal(size=(n, *shape)).astype(np.float32), "y": np.arange(n) % classes}


def test_without_a_test_split_a_seeded_sixth_is_held_out(tmp_path: Path) -> None:
    arrays = _good()
    data = npz.load(_save(tmp_path, **arrays))
    train_idx, test_idx = hold_out_sixth(60)
    assert (len(data.train), len(data.test)) == (50, 10)
    np.testing.assert_array_equal(data.train.x, arrays["x"][train_idx].reshape(50, 6))
    np.testing.assert_array_equal(data.test.y, arrays["y"][test_idx])
    assert (data.input_shape, data.num_classes, data.name) == ((2, 3), 3, "npz")
    assert data.train.x.dtype == np.float32 and data.train.y.dtype == np.int64


def test_a_given_test_split_is_kept_and_classes_count_to_the_largest_label(tmp_path: Path) -> None:
    arrays = _good(classes=5)
    path = _save(tmp_path, **arrays, x_test=arrays["x"][:7], y_test=np.array([0, 1, 2, 3, 4, 0, 1], dtype=np.uint8))
    data = npz.load(path)
    assert (len(data.train), len(data.test), data.num_classes, data.input_shape) == (60, 7, 5, (2, 3))
    np.testing.assert_array_equal(data.test.x, arrays["x"][:7].reshape(7, 6))


def test_uint8_pixels_are_scaled_by_one_over_255(tmp_path: Path) -> None:
    x = np.array([[0, 51, 255]] * 12, dtype=np.uint8)
    data = npz.load(_save(tmp_path, x=x, y=np.arange(12) % 2, x_test=x[:2], y_test=np.array([0, 1])))
    np.testing.assert_array_equal(data.train.x[0], np.array([0.0, 0.2, 1.0], dtype=np.float32))


def test_the_digest_follows_the_content_and_not_the_file(tmp_path: Path) -> None:
    arrays = _good()
    first = npz.load(_save(tmp_path, **arrays)).digest
    np.savez_compressed(tmp_path / "other.npz", **arrays)
    assert npz.load(tmp_path / "other.npz").digest == first
    arrays["y"] = arrays["y"][::-1].copy()
    assert npz.load(_save(tmp_path, **arrays)).digest != first


BAD = [
    ({"y": np.arange(10) % 2}, "missing key 'x'"),
    ({"x": np.zeros((10, 2), np.float32)}, "missing key 'y'"),
    ({**_good(), "x_test": np.zeros((3, 2, 3), np.float32)}, "missing key 'y_test'"),
    ({**_good(), "y_test": np.zeros(3, np.int64)}, "missing key 'x_test'"),
    ({**_good(), "X": np.zeros(3)}, "unknown key 'X'"),
    ({"x": np.zeros(10, np.float32), "y": np.arange(10) % 2}, "x: must be .* at least 2 dimensions"),
    ({"x": np.zeros((10, 2), np.float32), "y": np.zeros((10, 1), np.int64)}, "y: must be 1-D"),
    ({"x": np.zeros((10, 2), np.float32), "y": np.arange(9) % 2}, "y: 9 labels for the 10 samples of x"),
    ({"x": np.zeros((0, 2), np.float32), "y": np.zeros(0, np.int64)}, "x: holds no samples"),
    ({"x": np.zeros((10, 2), np.float32), "y": np.arange(10) % 2 * 1.0}, "y: labels must be integers"),
    ({"x": np.zeros((10, 2), np.float32), "y": np.arange(10) % 2 - 1}, "y: labels must be 0 or more"),
    ({"x": np.zeros((10, 2), np.float32), "y": np.zeros(10, np.int64)}, "y: a classifier needs at least 2 classes"),
    ({"x": np.zeros((10, 2), np.float64), "y": np.arange(10) % 2}, "x: must be float32 or uint8, got float64"),
    ({"x": np.full((10, 2), np.nan, np.float32), "y": np.arange(10) % 2}, "x: holds NaN or inf"),
    ({"x": np.full((10, 2), np.inf, np.float32), "y": np.arange(10) % 2}, "x: holds NaN or inf"),
    ({**_good(), "x_test": np.zeros((3, 3, 2), np.float32), "y_test": np.zeros(3, np.int64)},
     r"x_test: each sample must have x's shape \(2, 3\), got \(3, 2\)"),
    ({**_good(), "x_test": np.zeros((3, 2, 3), np.float32), "y_test": np.array([0, 1, 3])},
     "y_test: label 3 is outside the training labels 0..2"),
    ({**_good(), "x_test": np.zeros((3, 2, 3), np.float32), "y_test": np.array([0, -1, 1])},
     "y_test: labels must be 0 or more"),
    ({**_good(), "x_test": np.full((3, 2, 3), np.nan, np.float32), "y_test": np.array([0, 1, 1])},
     "x_test: holds NaN or inf"),
    ({"x": np.zeros((5, 2), np.float32), "y": np.arange(5) % 2}, "too few to hold out a sixth"),
]


@pytest.mark.parametrize(("arrays", "message"), BAD, ids=[message for _, message in BAD])
def test_bad_data_is_refused_naming_the_key(tmp_path: Path, arrays: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        npz.load(_save(tmp_path, **arrays))


def test_a_file_that_is_not_an_npz_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    path.write_text("x,y\n1,2\n")
    with pytest.raises(ValueError, match="is not a readable npz file") as raised:
        npz.load(path)
    assert "\n" not in str(raised.value)


def test_pickled_arrays_are_never_loaded(tmp_path: Path) -> None:
    path = _save(tmp_path, x=np.array([{"a": 1}] * 6, dtype=object), y=np.arange(6) % 2)
    with pytest.raises(ValueError, match="is not a readable npz file"):
        npz.load(path)

"""Your own data as an npz file: x (N, ...) float32 or uint8 and y (N,) integers, optionally x_test and y_test.

Read with allow_pickle=False and checked before use: every refusal is a ValueError naming the key and what is wrong.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge_agent.learning.data import Dataset
from edge_agent.learning.datasets.labelled import HOLDOUT_SEED, LabelledData, content_digest, hold_out_sixth

NAME = "npz"
KEYS = ("x", "y", "x_test", "y_test")
Arrays = dict[str, npt.NDArray[np.generic]]


def load(path: Path) -> LabelledData:
    """The file's train and test sets (a seeded sixth of x held out when it has no x_test); ValueError if refused.

    uint8 x is scaled by 1/255; float32 x is taken as it is (normalise it before saving). Classes: max label + 1.
    """
    arrays = read_arrays(path)
    x, y = _samples(arrays, "x", "y")
    if "x_test" in arrays:
        x_test, y_test = _samples(arrays, "x_test", "y_test")
        if x_test.shape[1:] != x.shape[1:]:
            raise ValueError(f"x_test: each sample must have x's shape {x.shape[1:]}, got {x_test.shape[1:]}")
        if int(y_test.max()) > int(y.max()):
            raise ValueError(f"y_test: label {int(y_test.max())} is outside the training labels 0..{int(y.max())}")
    else:
        if len(y) < 6:
            raise ValueError(f"x: {len(y)} samples are too few to hold out a sixth as test; add x_test and y_test")
        train_idx, test_idx = hold_out_sixth(len(y), HOLDOUT_SEED)
        x, y, x_test, y_test = x[train_idx], y[train_idx], x[test_idx], y[test_idx]
    classes = max(int(y.max()), int(y_test.max())) + 1
    train = Dataset(x.reshape(len(x), -1), y)
    test = Dataset(x_test.reshape(len(x_test), -1), y_test)
    digest = content_digest(train.x, train.y, test.x, test.y)
    return LabelledData(train, test, tuple(int(n) for n in x.shape[1:]), classes, NAME, digest)


def read_arrays(path: Path) -> Arrays:
    """The named arrays of an npz file; ValueError if it is not one, a key is missing or unknown, or x_test and
    y_test do not come together."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not named ones")
        with loaded as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (ValueError, EOFError, OSError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is not a readable npz file ({err})") from err
    unknown = sorted(set(arrays) - set(KEYS))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}: an npz holds x, y and optionally x_test and y_test")
    for key in ("x", "y"):
        if key not in arrays:
            raise ValueError(f"missing key {key!r}: an npz holds x (N, ...) and y (N,)")
    if ("x_test" in arrays) != ("y_test" in arrays):
        missing = "y_test" if "x_test" in arrays else "x_test"
        raise ValueError(f"missing key {missing!r}: x_test and y_test come together, or neither")
    return arrays


def _samples(arrays: Arrays, x_key: str, y_key: str) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """(x as float32 (N, ...), y as int64 (N,)) of one split, checked."""
    x, y = arrays[x_key], arrays[y_key]
    if x.ndim < 2:
        raise ValueError(f"{x_key}: must be (N, ...) with at least 2 dimensions, got shape {x.shape}")
    if y.ndim != 1:
        raise ValueError(f"{y_key}: must be 1-D (N,), got shape {y.shape}")
    if len(x) != len(y):
        raise ValueError(f"{y_key}: {len(y)} labels for the {len(x)} samples of {x_key}")
    if len(x) == 0:
        raise ValueError(f"{x_key}: holds no samples")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{y_key}: labels must be integers, got {y.dtype}")
    if int(y.min()) < 0:
        raise ValueError(f"{y_key}: labels must be 0 or more, got {int(y.min())}")
    if y_key == "y" and len(np.unique(y)) < 2:
        raise ValueError(f"{y_key}: a classifier needs at least 2 classes, all labels are {int(y[0])}")
    return _features(x_key, x), y.astype(np.int64)


def _features(key: str, x: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
    if x.dtype == np.uint8:
        return (x.astype(np.float32) / np.float32(255.0)).astype(np.float32)
    if x.dtype != np.float32:
        raise ValueError(f"{key}: must be float32 or uint8, got {x.dtype} (save x.astype(np.float32))")
    features: npt.NDArray[np.float32] = np.asarray(x, dtype=np.float32)
    if not np.isfinite(features).all():
        raise ValueError(f"{key}: holds NaN or inf values")
    return features

"""The vendored published split (bench/data): the file its README describes, byte for byte."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "bench" / "data"
SPLIT = DATA / "fmnist300-alpha0.1-split0.npz"


def test_vendored_split_has_the_digest_its_readme_gives() -> None:
    digest = hashlib.sha256(SPLIT.read_bytes()).hexdigest()
    stated = re.findall(r"\b[0-9a-f]{64}\b", (DATA / "README.md").read_text(encoding="utf-8"))
    assert stated == [digest]


def test_vendored_split_holds_300_clients_of_int32_training_indices() -> None:
    with np.load(SPLIT, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    assert sorted(arrays) == [f"client_{i:03d}" for i in range(300)]
    assert {array.dtype for array in arrays.values()} == {np.dtype(np.int32)}
    assert {array.ndim for array in arrays.values()} == {1}
    sizes = [len(array) for array in arrays.values()]
    taken = np.concatenate(list(arrays.values()))
    assert (min(sizes), max(sizes), len(taken), len(np.unique(taken))) == (194, 199, 59_218, 37_882)
    assert taken.min() >= 0 and taken.max() < 60_000

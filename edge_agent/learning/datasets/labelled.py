"""What every data source returns: train and test sets, flattened, with the per-sample shape, classes and a digest."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from edge_agent.learning.data import Dataset

DIGEST_HEX = 16
HOLDOUT_SEED = 0  # the seed of the sixth held out as test where a source has no test split (digits, npz without it)


class DataLayout(Protocol):
    """What a model needs to know of the data: the shape of one sample and the number of classes."""

    @property
    def input_shape(self) -> tuple[int, ...]: ...

    @property
    def num_classes(self) -> int: ...


@dataclass(frozen=True, eq=False)
class LabelledData:
    """A source's train and test sets, x flattened to (N, prod(input_shape)) float32 so partition, wire and methods
    see one layout; `input_shape` is what a model factory receives, `digest` a content hash for the run identity."""

    train: Dataset
    test: Dataset
    input_shape: tuple[int, ...]
    num_classes: int
    name: str
    digest: str

    def __post_init__(self) -> None:
        width = math.prod(self.input_shape)
        for split, data in (("train", self.train), ("test", self.test)):
            if data.x.shape[1] != width or data.x.dtype != np.float32:
                raise ValueError(f"{self.name} {split}: x must be float32 (N, {width}), got {data.x.dtype} "
                                 f"{data.x.shape}")
        if self.num_classes < 2:
            raise ValueError(f"{self.name}: a classifier needs at least 2 classes, got {self.num_classes}")


def content_digest(*arrays: npt.NDArray[np.generic]) -> str:
    """A short SHA-256 over the arrays' dtypes, shapes and bytes: equal data, equal digest, on any machine."""
    sha = hashlib.sha256()
    for array in arrays:
        contiguous = np.ascontiguousarray(array)
        sha.update(f"{contiguous.dtype.str}{contiguous.shape}".encode())
        sha.update(contiguous.tobytes())
    return sha.hexdigest()[:DIGEST_HEX]


def hold_out_sixth(n: int, seed: int = HOLDOUT_SEED) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(train, test) indices: a seeded sixth of range(n) held out as test, both in ascending order."""
    order = np.random.default_rng(seed).permutation(n).astype(np.int64)
    cut = n // 6
    return np.sort(order[cut:]), np.sort(order[:cut])

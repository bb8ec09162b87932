"""scikit-learn's bundled 8x8 digits (1,797 samples, 10 classes): a small second source that needs no download."""

from __future__ import annotations

import numpy as np

from edge_agent.learning.data import Dataset
from edge_agent.learning.datasets.labelled import HOLDOUT_SEED, LabelledData, content_digest, hold_out_sixth

NAME = "digits"
INPUT_SHAPE = (1, 8, 8)
PIXEL_LEVELS = 16.0  # load_digits' pixels are counts 0..16


class MissingExtraError(ImportError):
    """A source needs a package this machine lacks; the message says which extra installs it."""


def load() -> LabelledData:
    """Pixels scaled to [0, 1], a sixth held out as test (seed HOLDOUT_SEED), then standardised with the train split's
    single mean and std (a per-pixel std is 0 on the always-blank border)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise MissingExtraError("needs scikit-learn: pip install 'edge-agent[data]'") from None
    images, labels = load_digits(return_X_y=True)  # (1797, 64) float64 in 0..16, (1797,)
    x = (np.asarray(images, dtype=np.float64) / PIXEL_LEVELS).astype(np.float32)  # (N, 64)
    y = np.asarray(labels, dtype=np.int64)
    train_idx, test_idx = hold_out_sixth(len(y), HOLDOUT_SEED)
    mean, std = x[train_idx].mean(dtype=np.float64), x[train_idx].std(dtype=np.float64)
    x = ((x - np.float32(mean)) / np.float32(std)).astype(np.float32)
    train, test = Dataset(x[train_idx], y[train_idx]), Dataset(x[test_idx], y[test_idx])
    return LabelledData(train, test, INPUT_SHAPE, 10, NAME, content_digest(train.x, train.y, test.x, test.y))

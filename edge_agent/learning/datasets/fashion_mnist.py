"""Fashion-MNIST as labelled data: learning/data.py's loader and normalisation, unchanged."""

from __future__ import annotations

import hashlib
from pathlib import Path

from edge_agent.learning import data as fmnist
from edge_agent.learning.datasets.labelled import DIGEST_HEX, LabelledData

NAME = "fashion-mnist"
INPUT_SHAPE = (1, fmnist.IMAGE_SIDE, fmnist.IMAGE_SIDE)
# Its files are checked against CONTENT_SHA256 (`data check`), so the digest is theirs: nothing to hash at load.
DIGEST = hashlib.sha256("".join(fmnist.CONTENT_SHA256[name] for name in fmnist.FILE_NAMES).encode()
                        ).hexdigest()[:DIGEST_HEX]


class FashionMnistLayout:
    """Fashion-MNIST's per-sample shape and classes, known without reading it (the agent's lean path)."""

    input_shape = INPUT_SHAPE
    num_classes = fmnist.NUM_CLASSES


def load(data_dir: Path | None = None) -> LabelledData:
    """The 60,000 training and 10,000 test images, normalised as load_fashion_mnist does (DataNotFoundError)."""
    train, test = fmnist.load_fashion_mnist(data_dir)
    return LabelledData(train, test, INPUT_SHAPE, fmnist.NUM_CLASSES, NAME, DIGEST)

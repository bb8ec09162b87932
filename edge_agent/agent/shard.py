"""An agent's data: its shard of the training set (the run's split) and the test set, held lean for a board."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge_agent.agent.config import AgentConfig
from edge_agent.learning import data as fmnist
from edge_agent.learning.data import Dataset
from edge_agent.learning.mlp import FloatArray, MLPSpec, forward
from edge_agent.learning.partition import PartitionConfig, make_partition


@dataclass(frozen=True, eq=False)
class EvaluationImages:
    """The test set as uint8 pixels (7.8 MB; 31 MB as float32), normalised a batch at a time when scored."""

    pixels: npt.NDArray[np.uint8]  # (N, 28, 28)
    labels: npt.NDArray[np.int64]  # (N,)

    def __len__(self) -> int:
        return len(self.labels)

    def accuracy(self, spec: MLPSpec, w: FloatArray, batch: int = 1000) -> float:
        """Fraction of the images whose arg-max logit under weights `w` is their label."""
        hits = 0
        for start in range(0, len(self), batch):
            logits = forward(spec, w, fmnist.normalise_images(self.pixels[start : start + batch]))  # (batch, C)
            hits += int((logits.argmax(axis=-1) == self.labels[start : start + batch]).sum())
        return hits / len(self)


def load_shard(config: AgentConfig, data_dir: Path | None) -> tuple[Dataset, EvaluationImages]:
    """This agent's training shard (the simulator's split, client `shard`) and the test set.

    Only the shard's training images are normalised: all 60,000 as float32 would put 188 MB on a 512 MB board's
    peak only to be cut to a few hundred rows. As uint8, streamed from the file, they are 47 MB at the peak (a
    whole-file gunzip peaks near 130 MB). The values are load_fashion_mnist's.
    """
    directory = fmnist.find_data_dir(data_dir)
    (images, labels), (test_images, test_labels) = (
        _checked_split(directory, *names) for names in ((fmnist.TRAIN_IMAGES, fmnist.TRAIN_LABELS, fmnist.TRAIN_SIZE),
                                                         (fmnist.TEST_IMAGES, fmnist.TEST_LABELS, fmnist.TEST_SIZE)))
    partition = PartitionConfig.for_run(config.clients, config.samples_per_client, config.alpha, config.seed,
                                        config.partition_file)
    shard = make_partition(partition, labels)[config.shard]  # (samples,) training indices
    return Dataset(fmnist.normalise_images(images[shard]), labels[shard]), EvaluationImages(test_images, test_labels)


def _checked_split(directory: Path, images_name: str, labels_name: str, size: int
                   ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """(images (size, 28, 28) uint8, labels (size,) int64) of one split, shapes and label range checked."""
    images, labels = read_uint8_idx(_found(directory, images_name)), read_uint8_idx(_found(directory, labels_name))
    side = fmnist.IMAGE_SIDE
    if images.shape != (size, side, side) or labels.shape != (size,) or int(labels.max()) >= fmnist.NUM_CLASSES:
        raise ValueError(f"{images_name} and {labels_name} in {directory}: expected {size} 28x28 images and labels "
                         f"0..9, got {images.shape} and {labels.shape}")
    return images, labels.astype(np.int64)


def read_uint8_idx(path: Path) -> npt.NDArray[np.uint8]:
    """The uint8 array of an IDX file (plain or gzipped), streamed into place: no copy of the file is held."""
    with path.open("rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    with (gzip.open(path, "rb") if gzipped else path.open("rb")) as file:
        magic = file.read(4)
        if len(magic) < 4 or magic[:3] != b"\x00\x00\x08" or magic[3] == 0:
            raise ValueError(f"{path} is not a uint8 IDX file (magic number {magic.hex()})")
        shape = tuple(int.from_bytes(file.read(4), "big") for _ in range(magic[3]))
        array = np.empty(shape, dtype=np.uint8)
        view, filled = array.data.cast("B"), 0
        while filled < array.size:  # 1 MiB at a time: one big read would hold a second copy while it is copied
            got = file.readinto(view[filled : filled + (1 << 20)])
            if not got:
                break
            filled += got
        if filled != array.size or file.read(1):
            raise ValueError(f"{path}: the header says shape {shape}, the data does not match it")
    return array


def _found(directory: Path, name: str) -> Path:
    """`name` (plain or .gz) in `directory`; find_data_dir has checked that it is there."""
    path = fmnist.data_file(directory, name)
    if path is None:
        raise fmnist.DataNotFoundError([directory])
    return path

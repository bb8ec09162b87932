"""An agent's data: its shard of the training set (the run's split) and the test set, held lean for a board."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge_agent.agent.config import AgentConfig
from edge_agent.learning import data as fmnist
from edge_agent.learning.data import Dataset
from edge_agent.learning.mlp import FloatArray
from edge_agent.learning.models.contract import Model
from edge_agent.learning.partition import PartitionConfig, make_partition


@dataclass(frozen=True, eq=False)
class EvaluationImages:
    """The test set as uint8 pixels (7.8 MB; 31 MB as float32), normalised a batch at a time when scored."""

    pixels: npt.NDArray[np.uint8]  # (N, 28, 28)
    labels: npt.NDArray[np.int64]  # (N,)

    def __len__(self) -> int:
        return len(self.labels)

    def accuracy(self, spec: Model, w: FloatArray, batch: int = 1000) -> float:
        """Fraction of the images whose arg-max logit under weights `w` is their label."""
        hits = 0
        for start in range(0, len(self), batch):
            logits = spec.logits(w, fmnist.normalise_images(self.pixels[start : start + batch]))  # (batch, C)
            hits += int((logits.argmax(axis=-1) == self.labels[start : start + batch]).sum())
        return hits / len(self)


def load_shard(config: AgentConfig, data_dir: Path | None) -> tuple[Dataset, EvaluationImages]:
    """This agent's training shard (the simulator's split, client `shard`) and the test set.

    Only the shard's training images are normalised: all 60,000 as float32 would put 188 MB on a 512 MB board's
    peak only to be cut to a few hundred rows. The values are load_fashion_mnist's.
    """
    directory = fmnist.find_data_dir(data_dir)
    images, labels = fmnist.load_uint8_split(directory, fmnist.TRAIN_IMAGES, fmnist.TRAIN_LABELS, fmnist.TRAIN_SIZE)
    test_images, test_labels = fmnist.load_uint8_split(directory, fmnist.TEST_IMAGES, fmnist.TEST_LABELS,
                                                       fmnist.TEST_SIZE)
    partition = PartitionConfig.for_run(config.clients, config.samples_per_client, config.alpha, config.seed,
                                        config.partition_file)
    shard = make_partition(partition, labels)[config.shard]  # (samples,) training indices
    return Dataset(fmnist.normalise_images(images[shard]), labels[shard]), EvaluationImages(test_images, test_labels)

"""An agent's data: its shard of the training set (the run's split) and the test set, held lean for a board.

Fashion-MNIST stays uint8 until a shard or a test batch is normalised; other sources (digits, an npz) are small
and come already normalised from learning/datasets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from edge_agent.agent.config import AgentConfig
from edge_agent.learning import data as fmnist
from edge_agent.learning.algorithms.baselines import accuracy_in_chunks
from edge_agent.learning.data import Dataset
from edge_agent.learning.datasets import DEFAULT_SOURCE, LabelledData, load_data
from edge_agent.learning.mlp import FloatArray
from edge_agent.learning.models.contract import Model
from edge_agent.learning.partition import PartitionConfig, make_partition


class Evaluation(Protocol):
    """A test set the agent scores its weights on after every round."""

    def __len__(self) -> int: ...

    def accuracy(self, spec: Model, w: FloatArray, batch: int = 1000) -> float: ...


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


@dataclass(frozen=True, eq=False)
class EvaluationSet:
    """A test set already normalised (N, D) float32, as sources other than Fashion-MNIST give it."""

    x: npt.NDArray[np.float32]  # (N, D)
    y: npt.NDArray[np.int64]  # (N,)

    def __len__(self) -> int:
        return len(self.y)

    def accuracy(self, spec: Model, w: FloatArray, batch: int = 1000) -> float:
        """Fraction of the samples whose arg-max logit under weights `w` is their label."""
        return accuracy_in_chunks(spec, w, self.x, self.y, batch)


def shard_of(config: AgentConfig, data: LabelledData) -> tuple[Dataset, EvaluationSet]:
    """This agent's training shard of loaded data (the simulator's split, client `shard`) and its test set."""
    partition = PartitionConfig.for_run(config.clients, config.samples_per_client, config.alpha, config.seed,
                                        config.partition_file)
    shard = make_partition(partition, data.train.y)[config.shard]  # (samples,) training indices
    return data.train.subset(shard), EvaluationSet(data.test.x, data.test.y)


def load_shard(config: AgentConfig, data_dir: Path | None) -> tuple[Dataset, Evaluation]:
    """This agent's training shard (the simulator's split, client `shard`) and the test set of `config.data`.

    For Fashion-MNIST only the shard's training images are normalised: all 60,000 as float32 would put 188 MB on a
    512 MB board's peak only to be cut to a few hundred rows. The values are load_fashion_mnist's.
    """
    if config.data != DEFAULT_SOURCE:
        data = load_data(config.data, data_dir)
        if data.digest != config.data_digest:
            raise ValueError(f"{config.data} changed since the run's identity was taken (digest {data.digest}, "
                             f"not {config.data_digest})")
        return shard_of(config, data)
    directory = fmnist.find_data_dir(data_dir)
    images, labels = fmnist.load_uint8_split(directory, fmnist.TRAIN_IMAGES, fmnist.TRAIN_LABELS, fmnist.TRAIN_SIZE)
    test_images, test_labels = fmnist.load_uint8_split(directory, fmnist.TEST_IMAGES, fmnist.TEST_LABELS,
                                                       fmnist.TEST_SIZE)
    partition = PartitionConfig.for_run(config.clients, config.samples_per_client, config.alpha, config.seed,
                                        config.partition_file)
    shard = make_partition(partition, labels)[config.shard]  # (samples,) training indices
    return Dataset(fmnist.normalise_images(images[shard]), labels[shard]), EvaluationImages(test_images, test_labels)

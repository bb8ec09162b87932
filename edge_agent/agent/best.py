"""The best model an agent has seen, by its own measure: its test accuracy after each round, as its records give it.

A long-running agent (a service) keeps training, and its last weights need not be its best. The best ones are kept
beside the checkpoint (`<id>.best.npz`, replaced atomically when a round beats them) with the round and accuracy, and
every round record says which round holds them. The measure is the records' `test_accuracy` on the official test
set, so the best accuracy is an optimistic figure for those weights: the round is chosen on the data it is read on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.learning.mlp import FloatArray
from edge_agent.records import write_npz_atomic
from edge_agent.run_identity import RunIdentity


def best_path(directory: Path, agent_id: str) -> Path:
    return directory / f"{agent_id}.best.npz"


@dataclass
class BestModel:
    """The best round so far (None before the first) and its accuracy; written to `path` when there is one."""

    path: Path | None
    run: RunIdentity
    round: int | None = None
    accuracy: float = -1.0

    def resume(self, last_round: int | None) -> None:
        """Take the kept best of this run if it is from a round up to `last_round` (the checkpoint's); else forget
        it (a fresh start, or a file of another run or from a round that is to be trained again)."""
        if self.path is None or not self.path.exists():
            return
        try:
            with np.load(self.path) as data:
                ours = (str(data["run"]), str(data["fingerprint"])) == (self.run.run_id, self.run.fingerprint)
                kept_round, accuracy = int(data["round"]), float(data["test_accuracy"])
        except (OSError, KeyError, ValueError):
            ours = False
        if ours and last_round is not None and kept_round <= last_round:
            self.round, self.accuracy = kept_round, accuracy
        else:
            self.path.unlink(missing_ok=True)

    def offer(self, record: dict[str, Any], weights: FloatArray) -> None:
        """Keep `weights` if the round `record` describes beats the best so far, and add the best's round and
        accuracy to the record (`best_round`, `best_test_accuracy`)."""
        accuracy = float(record["test_accuracy"])
        if self.round is None or accuracy > self.accuracy:
            self.round, self.accuracy = int(record["round"]), accuracy
            if self.path is not None:
                write_npz_atomic(self.path, {"round": np.int64(self.round), "test_accuracy": np.float64(accuracy),
                                             "weights": weights, "run": np.str_(self.run.run_id),
                                             "fingerprint": np.str_(self.run.fingerprint)})
        record["best_round"], record["best_test_accuracy"] = self.round, self.accuracy

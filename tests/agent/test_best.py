"""The best model an agent keeps: the weights of its highest test accuracy so far, named in every record."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_agent.agent.best import BestModel, best_path
from edge_agent.run_identity import FINGERPRINT_HEX, RunIdentity

RUN = RunIdentity("lab", "f" * FINGERPRINT_HEX)


def record(round_index: int, accuracy: float) -> dict[str, object]:
    return {"round": round_index, "test_accuracy": accuracy}


def test_the_best_round_is_kept_and_named_in_each_record(tmp_path: Path) -> None:
    best = BestModel(best_path(tmp_path, "client-0"), RUN)
    seen = []
    for k, accuracy in enumerate([0.30, 0.45, 0.44, 0.45, 0.46, 0.40]):
        line = record(k, accuracy)
        best.offer(line, np.full(4, k, dtype=np.float32))
        seen.append((line["best_round"], line["best_test_accuracy"]))
    assert seen == [(0, 0.30), (1, 0.45), (1, 0.45), (1, 0.45), (4, 0.46), (4, 0.46)]  # a tie keeps the earlier
    with np.load(tmp_path / "client-0.best.npz") as kept:
        assert (int(kept["round"]), float(kept["test_accuracy"])) == (4, 0.46)
        assert np.array_equal(kept["weights"], np.full(4, 4, dtype=np.float32))


def test_a_restart_takes_the_kept_best_of_its_run_and_forgets_any_other(tmp_path: Path) -> None:
    path = best_path(tmp_path, "client-0")
    BestModel(path, RUN).offer(record(3, 0.5), np.zeros(4, dtype=np.float32))
    resumed = BestModel(path, RUN)
    resumed.resume(last_round=7)
    assert (resumed.round, resumed.accuracy) == (3, 0.5)
    ahead = BestModel(path, RUN)
    ahead.resume(last_round=2)  # round 3 is to be trained again: not a round this agent has kept
    assert ahead.round is None and not path.exists()
    BestModel(path, RUN).offer(record(3, 0.5), np.zeros(4, dtype=np.float32))
    fresh = BestModel(path, RUN)
    fresh.resume(last_round=None)  # no checkpoint of this run: a fresh start keeps nothing of an older one
    assert fresh.round is None and not path.exists()
    BestModel(path, RUN).offer(record(3, 0.5), np.zeros(4, dtype=np.float32))
    other = BestModel(path, RunIdentity("lab", "0" * FINGERPRINT_HEX))
    other.resume(last_round=7)  # another run's file
    assert other.round is None and not path.exists()

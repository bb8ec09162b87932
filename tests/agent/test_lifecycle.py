"""The round record and the checkpoint commit together: a restart never repeats or loses a line, a checkpoint of
another run is not resumed, and unwritable paths fail before anything starts."""

import json
from pathlib import Path

import numpy as np
import pytest

from edge_agent.agent.checkpoint import load_checkpoint
from edge_agent.agent.lifecycle import RoundJournal
from edge_agent.run_identity import RunIdentity

RUN = RunIdentity("lab", "0123456789ab")
D = 6


def _journal(tmp_path: Path, run: RunIdentity = RUN) -> RoundJournal:
    return RoundJournal(tmp_path / "m.jsonl", tmp_path / "ckpt", "a1", run, D)


def _commit(journal: RoundJournal, k: int) -> None:
    journal.commit({"round": k}, k, np.full(D, k, np.float32), np.zeros(D, np.float32), {})


def _rounds(path: Path) -> list[int]:
    return [json.loads(line)["round"] for line in path.read_text().splitlines()]


def test_a_line_written_after_the_last_checkpoint_is_dropped_on_restart(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    assert journal.open() is None
    for k in range(3):
        _commit(journal, k)
    journal.append({"round": 3})  # the process dies here: line written, checkpoint not
    journal.close()
    with (tmp_path / "m.jsonl").open("a") as torn:
        torn.write('{"round": 3, "tor')  # and a torn write after it
    restarted = _journal(tmp_path)
    resume = restarted.open()
    assert resume is not None and resume.round == 2 and resume.weights[0] == 2
    assert _rounds(tmp_path / "m.jsonl") == [0, 1, 2]
    _commit(restarted, 3)
    restarted.close()
    assert _rounds(tmp_path / "m.jsonl") == [0, 1, 2, 3]


def test_a_checkpoint_of_another_run_is_not_resumed_and_its_lines_are_replaced(tmp_path: Path) -> None:
    finished = _journal(tmp_path)
    finished.open()
    for k in range(5):
        _commit(finished, k)
    finished.close()
    other = _journal(tmp_path, RunIdentity("lab-2", "0123456789ab"))
    assert other.open() is None
    _commit(other, 0)
    other.close()
    assert _rounds(tmp_path / "m.jsonl") == [0]
    checkpoint = load_checkpoint(tmp_path / "ckpt", "a1", D)
    assert checkpoint is not None and checkpoint.run == "lab-2" and checkpoint.round == 0


@pytest.mark.parametrize("which", ["metrics", "checkpoint"])
def test_unwritable_paths_fail_on_open(tmp_path: Path, which: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    metrics = blocker / "m.jsonl" if which == "metrics" else tmp_path / "m.jsonl"
    checkpoints = blocker / "ckpt" if which == "checkpoint" else tmp_path / "ckpt"
    with pytest.raises(OSError):
        RoundJournal(metrics, checkpoints, "a1", RUN, D).open()

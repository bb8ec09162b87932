"""Checkpoints survive a round trip, are replaced atomically, and reject foreign files clearly."""

from pathlib import Path

import numpy as np
import pytest

from edge_agent.agent.checkpoint import Checkpoint, checkpoint_path, load_checkpoint, save_checkpoint


def test_checkpoint_round_trip_and_overwrite(tmp_path: Path) -> None:
    weights = np.arange(6, dtype=np.float32)
    save_checkpoint(tmp_path, "a1", Checkpoint(3, weights, -weights))
    save_checkpoint(tmp_path, "a1", Checkpoint(4, weights + 1, weights))
    loaded = load_checkpoint(tmp_path, "a1", 6)
    assert loaded is not None and loaded.round == 4
    np.testing.assert_array_equal(loaded.weights, weights + 1)
    np.testing.assert_array_equal(loaded.velocity, weights)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a1.npz"]  # no temporary files left behind


def test_the_robust_rules_strikes_survive_a_restart(tmp_path: Path) -> None:
    """A neighbour barred for contradicted replies stays barred when the agent that barred it restarts."""
    weights = np.arange(6, dtype=np.float32)
    save_checkpoint(tmp_path, "a1", Checkpoint(3, weights, -weights, strikes={"client-3": 2, "client-1": 1}))
    loaded = load_checkpoint(tmp_path, "a1", 6)
    assert loaded is not None and loaded.strikes == {"client-3": 2, "client-1": 1}
    save_checkpoint(tmp_path, "a1", Checkpoint(4, weights, weights))
    assert (reloaded := load_checkpoint(tmp_path, "a1", 6)) is not None and reloaded.strikes == {}


def test_missing_checkpoint_means_fresh_start(tmp_path: Path) -> None:
    assert load_checkpoint(tmp_path, "nobody", 6) is None


def test_corrupt_or_mismatched_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    checkpoint_path(tmp_path, "bad").write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="unreadable"):
        load_checkpoint(tmp_path, "bad", 6)
    save_checkpoint(tmp_path, "small", Checkpoint(0, np.zeros(3, np.float32), np.zeros(3, np.float32)))
    with pytest.raises(ValueError, match="holds 3 parameters"):
        load_checkpoint(tmp_path, "small", 6)

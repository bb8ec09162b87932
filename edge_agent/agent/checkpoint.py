"""Atomic per-round checkpoints of an agent's weights, momentum and --robust bars, so a restarted agent resumes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_agent.learning.mlp import FloatArray
from edge_agent.records import write_npz_atomic


@dataclass(frozen=True)
class Checkpoint:
    """The state after `round` completed (the next round to run is round + 1), the run it belongs to, and how
    long the metrics file was once that round's line was in it (so a restart drops any later, uncommitted line)."""

    round: int
    weights: FloatArray  # (d,)
    velocity: FloatArray  # (d,)
    run: str = ""
    fingerprint: str = ""
    metrics_bytes: int = -1  # -1: no metrics file
    strikes: Mapping[str, int] = field(default_factory=dict)  # --robust: neighbour -> rounds its replies contradicted


def checkpoint_path(directory: Path, agent_id: str) -> Path:
    return directory / f"{agent_id}.npz"


def save_checkpoint(directory: Path, agent_id: str, checkpoint: Checkpoint) -> Path:
    """Replace the agent's checkpoint atomically: a crash leaves the old one or the new one, never a torn file."""
    target = checkpoint_path(directory, agent_id)
    write_npz_atomic(target, {"round": np.int64(checkpoint.round), "weights": checkpoint.weights,
                              "velocity": checkpoint.velocity, "run": np.str_(checkpoint.run),
                              "fingerprint": np.str_(checkpoint.fingerprint),
                              "metrics_bytes": np.int64(checkpoint.metrics_bytes),
                              "strikes": np.str_(json.dumps(dict(checkpoint.strikes), sort_keys=True))})
    return target


def load_checkpoint(directory: Path, agent_id: str, num_params: int) -> Checkpoint | None:
    """The agent's last checkpoint, or None if there is none; a corrupt or mismatched file is a clear error."""
    path = checkpoint_path(directory, agent_id)
    if not path.exists():
        return None
    try:
        with np.load(path) as data:
            checkpoint = Checkpoint(int(data["round"]), data["weights"].astype(np.float32),
                                    data["velocity"].astype(np.float32),
                                    str(data["run"]) if "run" in data else "",
                                    str(data["fingerprint"]) if "fingerprint" in data else "",
                                    int(data["metrics_bytes"]) if "metrics_bytes" in data else -1,
                                    json.loads(str(data["strikes"])) if "strikes" in data else {})
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(f"checkpoint {path} is unreadable ({error}); move it away to start fresh") from error
    if checkpoint.weights.shape != (num_params,) or checkpoint.velocity.shape != (num_params,):
        raise ValueError(f"checkpoint {path} holds {checkpoint.weights.shape[0]} parameters, the model has "
                         f"{num_params}; move it away to start fresh")
    return checkpoint

"""A simulation's state after each round, saved atomically so an interrupted run continues where it stopped.

Everything else a round needs (graph, projection, local-SGD batches) is drawn from (seed, round), so the clients'
weights and momentum, the round counter and the bytes so far are the whole state. The resolved configuration is
saved beside them: continuing under different settings would silently mix two runs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.learning.algorithms.spark import SparkConfig
from edge_agent.learning.codec import CodecConfig
from edge_agent.learning.mlp import FloatArray
from edge_agent.records import write_npz_atomic

# Settings added after runs were saved without them, with the value those runs used.
_ADDED_LATER = {**{f"weights_codec.{key}": value for key, value in asdict(CodecConfig()).items()},
                "spark.residual_share": SparkConfig().residual_share, "spark.tail_rate": SparkConfig().tail_rate,
                "spark.schedule_rounds": SparkConfig().schedule_rounds}


@dataclass(frozen=True)
class SimulationState:
    """Where a run stands after `rounds_done` rounds."""

    rounds_done: int
    weights: FloatArray  # (M, d)
    velocity: FloatArray  # (M, d)
    cumulative_bytes_per_client: float


def save_state(path: Path, state: SimulationState, config: dict[str, Any]) -> None:
    """Replace the saved state atomically, with the configuration it belongs to."""
    write_npz_atomic(path, {
        "rounds_done": np.int64(state.rounds_done), "weights": state.weights, "velocity": state.velocity,
        "cumulative_bytes_per_client": np.float64(state.cumulative_bytes_per_client),
        "config": np.array(json.dumps(config, sort_keys=True)),
    })


def load_state(path: Path, config: dict[str, Any], fork: bool = False) -> SimulationState | None:
    """The state saved at `path` if there is one; a state of another configuration or a broken file is an error.

    With `fork`, the state may also come from a run whose settings differ only in switches that have not acted
    yet in its saved rounds (`dormant_switches`): up to there the two runs are the same run.
    """
    if not path.exists():
        return None
    try:
        with np.load(path) as data:
            saved_config = json.loads(str(data["config"]))
            state = SimulationState(int(data["rounds_done"]), data["weights"].astype(np.float32),
                                    data["velocity"].astype(np.float32), float(data["cumulative_bytes_per_client"]))
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(f"saved state {path} is unreadable ({error}); remove it to start the run afresh") from error
    differences = config_differences(saved_config, config)
    if fork:
        dormant = dormant_switches(saved_config, state.rounds_done)
        differences = [line for line in differences if line.split(":")[0] not in dormant]
    if differences:
        hint = ("a fork may differ only in switches that have not acted yet" if fork
                else "use another output directory or the same settings")
        saved_schedule = _with_schedule(_flatten(saved_config)).get("spark.schedule_rounds")
        if any(line.startswith("spark.schedule_rounds:") for line in differences) and saved_schedule:
            hint += f" (--schedule-rounds {saved_schedule} keeps its stage schedule over more rounds)"
        raise ValueError(f"{path} belongs to a run with other settings ({'; '.join(differences)}); {hint}")
    if state.rounds_done > config["rounds"]:
        raise ValueError(f"{path} has {state.rounds_done} rounds done, more than the {config['rounds']} asked for")
    return state


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """'key: saved -> current' for each setting that differs. Rounds may grow: SPARK's stage schedule is compared
    as the rounds it is spread over, so a longer run on the same schedule is the same run continued."""
    after = _with_schedule(_flatten(json.loads(json.dumps(current))))
    before = _with_schedule({**{key: value for key, value in _ADDED_LATER.items() if key in after}, **_flatten(saved)})
    keys = sorted((set(before) | set(after)) - {"rounds"})
    return [f"{key}: {before.get(key)!r} -> {after.get(key)!r}" for key in keys if before.get(key) != after.get(key)]


def _with_schedule(flat: dict[str, Any]) -> dict[str, Any]:
    """SPARK's spark.schedule_rounds resolved (0 means the run's rounds), so equal schedules compare equal."""
    if flat.get("algorithm") == "spark" and not flat.get("spark.schedule_rounds"):
        return {**flat, "spark.schedule_rounds": flat.get("rounds")}
    return flat


def dormant_switches(config: dict[str, Any], rounds_done: int) -> set[str]:
    """SPARK's ablation switches (momentum, the soft-label target) that did nothing in a run's first rounds."""
    if config.get("algorithm") != "spark":
        return set()
    stages = SparkConfig(stage_lambdas=tuple(config["spark"]["stage_lambdas"]),
                         momentum_from_stage=config["spark"]["momentum_from_stage"],
                         schedule_rounds=config["spark"].get("schedule_rounds", 0))
    rounds = range(rounds_done)
    dormant = set()
    if all(stages.momentum_beta(r, config["rounds"]) == 0.0 for r in rounds):
        dormant.add("spark.momentum")
    if all(stages.soft_label_weight(r, config["rounds"]) == 0.0 for r in rounds):
        dormant.add("spark.distill")
    return dormant


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys (spark.projection.dim), so a difference names the one setting."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat

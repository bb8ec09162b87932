"""A simulation's state after each round, saved atomically so an interrupted run continues where it stopped.

Everything else a round needs (graph, projection, local-SGD batches) is drawn from (seed, round), so the clients'
weights and momentum, the round counter and the bytes so far are the whole state. The resolved configuration is
saved beside them: continuing under different settings would silently mix two runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.learning.algorithms.spark import SparkConfig
from edge_agent.learning.codec import CodecConfig
from edge_agent.learning.datasets import fashion_mnist
from edge_agent.learning.mlp import FloatArray
from edge_agent.records import write_npz_atomic

# Settings added after runs were saved without them, with the value those runs used.
_ADDED_LATER = {**{f"{codec}.{key}": value for codec in ("weights_codec", "spark.candidates_codec")
                   for key, value in asdict(CodecConfig()).items()},
                "spark.residual_share": SparkConfig().residual_share, "spark.tail_rate": SparkConfig().tail_rate,
                "spark.schedule_rounds": SparkConfig().schedule_rounds,
                "spark.momentum_after_schedule": SparkConfig().momentum_after_schedule,
                "data": fashion_mnist.NAME, "data_digest": fashion_mnist.DIGEST}

# SPARK's settings that act only through its per-round coefficients: a fork may differ in them while those agree.
_SCHEDULE_FIELDS = ("distill", "stage_lambdas", "temperature", "momentum", "beta", "momentum_from_stage",
                    "schedule_rounds", "momentum_after_schedule")
_SCHEDULE_KEYS = {f"spark.{key}" for key in _SCHEDULE_FIELDS}


@dataclass(frozen=True)
class SimulationState:
    """Where a run stands after `rounds_done` rounds."""

    rounds_done: int
    weights: FloatArray  # (M, d)
    velocity: FloatArray  # (M, d)
    cumulative_bytes_per_client: float
    strikes: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # client -> neighbour -> rounds contradicted


def save_state(path: Path, state: SimulationState, config: dict[str, Any]) -> None:
    """Replace the saved state atomically, with the configuration it belongs to."""
    write_npz_atomic(path, {
        "rounds_done": np.int64(state.rounds_done), "weights": state.weights, "velocity": state.velocity,
        "cumulative_bytes_per_client": np.float64(state.cumulative_bytes_per_client),
        "strikes": np.array(json.dumps(state.strikes, sort_keys=True)),
        "config": np.array(json.dumps(config, sort_keys=True)),
    })


def load_state(path: Path, config: dict[str, Any], fork: bool = False) -> SimulationState | None:
    """The state saved at `path` if there is one; a state of another configuration or a broken file is an error.

    With `fork`, the state may also come from a run whose settings differ only in SPARK's schedule and ablation
    switches, where those gave its saved rounds the same coefficients (`same_schedule_so_far`).
    """
    if not path.exists():
        return None
    try:
        with np.load(path) as data:
            saved_config = json.loads(str(data["config"]))
            state = SimulationState(int(data["rounds_done"]), data["weights"].astype(np.float32),
                                    data["velocity"].astype(np.float32), float(data["cumulative_bytes_per_client"]),
                                    json.loads(str(data["strikes"])) if "strikes" in data else {})
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(f"saved state {path} is unreadable ({error}); remove it to start the run afresh") from error
    differences = config_differences(saved_config, config)
    if fork and same_schedule_so_far(saved_config, config, state.rounds_done):
        differences = [line for line in differences if line.split(":")[0] not in _SCHEDULE_KEYS]
    if differences:
        hint = ("a fork may differ only in schedule and switches that have not acted yet" if fork
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


def same_schedule_so_far(saved: dict[str, Any], current: dict[str, Any], rounds_done: int) -> bool:
    """Whether SPARK's per-round coefficients (soft-label weight and temperature, momentum beta) agree in the saved
    rounds: then schedule and ablation switches that differ have not acted yet, and the two runs are one run so far."""
    if saved.get("algorithm") != "spark" or current.get("algorithm") != "spark":
        return False
    return _coefficients(saved, rounds_done) == _coefficients(current, rounds_done)


def _coefficients(config: dict[str, Any], rounds_done: int) -> list[tuple[float, float, float]]:
    """(lambda_k, its temperature where lambda_k > 0, beta_k) for each saved round of a SPARK configuration."""
    spark = config.get("spark", {})
    settings: dict[str, Any] = {key: tuple(spark[key]) if key == "stage_lambdas" else spark[key]
                                for key in _SCHEDULE_FIELDS if key in spark}
    stages, rounds = SparkConfig(**settings), config["rounds"]
    lambdas = [stages.soft_label_weight(k, rounds) for k in range(rounds_done)]
    return [(lam, stages.temperature if lam > 0 else 0.0, stages.momentum_beta(k, rounds))
            for k, lam in enumerate(lambdas)]


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys (spark.projection.dim), so a difference names the one setting."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat

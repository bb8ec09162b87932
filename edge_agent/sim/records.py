"""Per-round records and the run summary the simulator writes (rounds.jsonl, summary.json)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["RoundRecord", "rounds_to_target", "summarize"]


@dataclass(frozen=True)
class RoundRecord:
    """What one round did: accuracies, bytes on the (simulated) wire, the taus chosen and the time taken."""

    round: int
    agg_accuracy: float
    mean_client_accuracy: float
    bytes_per_client: float
    cumulative_bytes_per_client: float
    bytes_by_kind: dict[str, int]
    learning_rate: float | None
    tau: dict[str, int] | None  # chosen tau -> number of clients
    seconds: float
    modelled_seconds: float | None = None  # on the run's link model (None without one)
    modelled_phase_seconds: dict[str, float] | None = None  # each phase's mean over the clients


SECONDARY_TARGET = 0.80  # reported beside 85%: reduced-client runs (first M of the split) plateau below 85%
LEVELS = (0.6, 0.7, 0.75, 0.8, 0.82, 0.84, 0.85)  # the accuracy levels the summary reports rounds, bytes, seconds to


def rounds_to_target(records: Sequence[RoundRecord], target: float) -> RoundRecord | None:
    """The first round whose aggregated accuracy reaches `target`, if any."""
    return next((record for record in records if record.agg_accuracy >= target), None)


def summarize(config: dict[str, Any], records: Sequence[RoundRecord], target: float) -> dict[str, Any]:
    """summary.json: the resolved configuration, rounds and bytes to the target (or null), final accuracies."""
    hit = rounds_to_target(records, target)
    last = records[-1]
    secondary = rounds_to_target(records, SECONDARY_TARGET)
    return {
        "config": config,
        "target_accuracy": target,
        "rounds_to_target": None if hit is None else hit.round + 1,
        "bytes_to_target": None if hit is None else hit.cumulative_bytes_per_client,
        "rounds_to_80": None if secondary is None else secondary.round + 1,
        "bytes_to_80": None if secondary is None else secondary.cumulative_bytes_per_client,
        "final_agg_accuracy": last.agg_accuracy,
        "final_mean_client_accuracy": last.mean_client_accuracy,
        "best_agg_accuracy": max(record.agg_accuracy for record in records),
        "rounds_run": len(records),
        "total_bytes_per_client": last.cumulative_bytes_per_client,
        "mean_seconds_per_round": sum(record.seconds for record in records) / len(records),
        "levels": levels_reached(records),
    }


def levels_reached(records: Sequence[RoundRecord], levels: Sequence[float] = LEVELS) -> dict[str, dict[str, Any]]:
    """Per accuracy level reached: rounds (1-based count), MB per client, and seconds so far, measured and
    modelled (null without a link model)."""
    reached: dict[str, dict[str, Any]] = {}
    for level in levels:
        hit = rounds_to_target(records, level)
        if hit is None:
            continue
        so_far = [record for record in records if record.round <= hit.round]
        modelled = [record.modelled_seconds for record in so_far]
        reached[f"{level:.2f}"] = {
            "rounds": hit.round + 1, "mb_per_client": hit.cumulative_bytes_per_client / 1e6,
            "seconds": sum(record.seconds for record in so_far),
            "modelled_seconds": None if None in modelled else sum(m for m in modelled if m is not None),
        }
    return reached

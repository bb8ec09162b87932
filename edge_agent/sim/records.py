"""Per-round records and the run summary the simulator writes (rounds.jsonl, summary.json)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


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


def rounds_to_target(records: Sequence[RoundRecord], target: float) -> RoundRecord | None:
    """The first round whose aggregated accuracy reaches `target`, if any."""
    return next((record for record in records if record.agg_accuracy >= target), None)


def summarize(config: dict[str, Any], records: Sequence[RoundRecord], target: float) -> dict[str, Any]:
    """summary.json: the resolved configuration, rounds and bytes to the target (or null), final accuracies."""
    hit = rounds_to_target(records, target)
    last = records[-1]
    return {
        "config": config,
        "target_accuracy": target,
        "rounds_to_target": None if hit is None else hit.round + 1,
        "bytes_to_target": None if hit is None else hit.cumulative_bytes_per_client,
        "final_agg_accuracy": last.agg_accuracy,
        "final_mean_client_accuracy": last.mean_client_accuracy,
        "best_agg_accuracy": max(record.agg_accuracy for record in records),
        "rounds_run": len(records),
        "total_bytes_per_client": last.cumulative_bytes_per_client,
        "mean_seconds_per_round": sum(record.seconds for record in records) / len(records),
    }


class RoundLog:
    """Appends one JSON line per round and flushes it, so a crash loses at most the round in flight."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("w", encoding="utf-8")

    def append(self, record: RoundRecord) -> None:
        self._file.write(json.dumps(asdict(record)) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON to a temporary sibling and rename it into place."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)

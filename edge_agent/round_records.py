"""The round records the agent and the simulator write (docs/records.md): kind, schema version, UTC time, reading back.

Every line of an agent's metrics file and of a simulation's rounds.jsonl starts with the same envelope:
`schema` (this version), `record` (its kind) and `time` (UTC, ISO 8601, when it was written). `round` is always
the 0-based index of the round the record describes. Lines written before the envelope existed are read as
schema 0 and their kind is told from their fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
AGENT_ROUND, AGENT_SUMMARY, SIM_ROUND = "agent-round", "agent-summary", "sim-round"
ENVELOPE = ("schema", "record", "time")


def utc_now() -> str:
    """Now, in UTC, as ISO 8601 with milliseconds and a `Z` (2026-12-03T19:40:00.123Z)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stamped(kind: str, fields: Mapping[str, Any], time: str | None = None) -> dict[str, Any]:
    """`fields` behind the envelope: schema version, record kind and UTC time (now unless given)."""
    body = {key: value for key, value in fields.items() if key not in ENVELOPE}
    return {"schema": SCHEMA_VERSION, "record": kind, "time": time or utc_now(), **body}


def without_envelope(record: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key not in ENVELOPE}


def record_kind(record: Mapping[str, Any]) -> str | None:
    """The record's kind; for a line without an envelope (schema 0), the kind its fields show, or None."""
    kind = record.get("record")
    if isinstance(kind, str):
        return kind
    if record.get("summary") is True:
        return AGENT_SUMMARY
    if "agg_accuracy" in record:
        return SIM_ROUND
    if "agent" in record and "round" in record:
        return AGENT_ROUND
    return None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The whole lines of a JSON-lines file that parse, in order; a line cut short by a crash ends the list."""
    records = []
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


def agent_rounds(path: Path) -> list[dict[str, Any]]:
    """An agent metrics file's round records written so far (whole lines only)."""
    return [record for record in read_jsonl(path) if record_kind(record) == AGENT_ROUND]


@dataclass(frozen=True)
class Curve:
    """Test accuracy and cumulative megabytes sent per client (or per agent), by 0-based round."""

    label: str
    rounds: list[int]
    accuracy: list[float]
    megabytes: list[float]


def simulation_curve(label: str, records: Iterable[Mapping[str, Any]]) -> Curve | None:
    """The aggregated model's accuracy and each client's cumulative MB from a simulation's round records."""
    rows = sorted((r for r in records if record_kind(r) == SIM_ROUND), key=lambda r: int(r["round"]))
    if not rows:
        return None
    return Curve(label, [int(r["round"]) for r in rows], [float(r["agg_accuracy"]) for r in rows],
                 [float(r["cumulative_bytes_per_client"]) / 1e6 for r in rows])


def fleet_curve(label: str, per_agent: Iterable[Iterable[Mapping[str, Any]]]) -> Curve | None:
    """Agents' mean test accuracy and mean cumulative payload MB sent per agent, over the rounds they trained."""
    accuracy: dict[int, list[float]] = {}
    sent: dict[int, list[float]] = {}
    for records in per_agent:
        total = 0.0
        for record in sorted((r for r in records if record_kind(r) == AGENT_ROUND), key=lambda r: int(r["round"])):
            if record.get("status") != "trained":
                continue
            total += float(record["payload_sent_bytes"]) / 1e6
            accuracy.setdefault(int(record["round"]), []).append(float(record["test_accuracy"]))
            sent.setdefault(int(record["round"]), []).append(total)
    if not accuracy:
        return None
    rounds = sorted(accuracy)
    return Curve(label, rounds, [sum(accuracy[k]) / len(accuracy[k]) for k in rounds],
                 [sum(sent[k]) / len(sent[k]) for k in rounds])


def find_curves(path: Path) -> list[Curve]:
    """Every curve at `path`: a rounds.jsonl or agent metrics file, or a directory holding VARIANT/rounds.jsonl
    (one curve each) or agent metrics files *.jsonl (one curve for the fleet). Empty when none holds a record."""
    if path.is_file():
        records = read_jsonl(path)
        curve = simulation_curve(path.parent.name, records) or fleet_curve(path.stem, [records])
        return [curve] if curve else []
    curves = [simulation_curve(f"{variant.parent.name} ({path.name})", read_jsonl(variant))
              for variant in sorted([*path.glob("rounds.jsonl"), *path.glob("*/rounds.jsonl")])]
    agents = [read_jsonl(file) for file in sorted(path.glob("*.jsonl")) if file.name != "rounds.jsonl"]
    curves.append(fleet_curve(f"agents ({path.name})", agents))
    return [curve for curve in curves if curve is not None]

"""What a fleet's round records say: accuracy by round, MB per agent and wall-clock seconds, and the cost to a level.

Pure functions over the agents' own records (round_records.agent_rounds), so the report's numbers are the records'.
- accuracy: the mean test accuracy of the agents that trained the round (round_records.fleet_curve);
- MB: cumulative payload megabytes (1e6 bytes) sent per agent (fleet_curve's mean over agents);
- seconds: wall clock from the moment the fleet's first round began (process start-up and discovery excluded) to
  the moment the last agent recorded the round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edge_agent.round_records import AGENT_ROUND, fleet_curve, record_kind

# Stacked parts of a round. An agent's record laps jacobian, evolve and score as wall time, and counts apart as
# transfer the part of the jacobian and score laps spent waiting on neighbours; the stack shows that wait once, as
# transfer, and the rest of those laps as own work ("jacobian+score"). "other": the total less all of them.
PHASES = ("train", "average", "transfer", "jacobian+score", "evolve", "other")
BYTE_KEYS = ("payload_sent", "payload_received", "wire_sent", "wire_received")
Records = Sequence[Sequence[Mapping[str, Any]]]  # per agent, its round records


@dataclass(frozen=True)
class FleetCurve:
    """One fleet's progress by round (0-based rounds that at least one agent trained)."""

    rounds: list[int]
    accuracy: list[float]
    megabytes: list[float]  # cumulative payload MB sent per agent
    seconds: list[float]  # wall clock since the first round began


def trained(per_agent: Records) -> list[list[Mapping[str, Any]]]:
    """Per agent, its records of rounds it trained (skipped rounds and other kinds left out), by round."""
    return [sorted((r for r in records if record_kind(r) == AGENT_ROUND and r.get("status") == "trained"),
                   key=lambda r: int(r["round"])) for records in per_agent]


def curve(per_agent: Records) -> FleetCurve:
    """Accuracy, MB per agent and seconds by round; empty lists when no round was trained."""
    rows = trained(per_agent)
    base = fleet_curve("fleet", rows)
    if base is None:
        return FleetCurve([], [], [], [])
    start = min(_time(r[0]) - float(r[0]["seconds"]["total"]) for r in rows if r)
    done: dict[int, float] = {}
    for records in rows:
        for record in records:
            k = int(record["round"])
            done[k] = max(done.get(k, 0.0), _time(record) - start)
    return FleetCurve(base.rounds, base.accuracy, base.megabytes, [done[k] for k in base.rounds])


def to_level(fleet: FleetCurve, level: float) -> dict[str, float] | None:
    """Rounds, MB per agent and seconds until the fleet's accuracy first reached `level`; None if it never did."""
    for index, accuracy in enumerate(fleet.accuracy):
        if accuracy >= level:
            return {"round": fleet.rounds[index], "rounds": fleet.rounds[index] + 1,
                    "megabytes": fleet.megabytes[index], "seconds": fleet.seconds[index]}
    return None


def byte_totals(per_agent: Records) -> dict[str, int]:
    """Bytes over all agents and trained rounds, as the records count them (`payload_sent`, ..., `wire_received`)."""
    rows = [record for records in trained(per_agent) for record in records]
    return {key: sum(int(record[f"{key}_bytes"]) for record in rows) for key in BYTE_KEYS}


def round_parts(seconds: Mapping[str, float]) -> dict[str, float]:
    """One record's `seconds` as the PHASES stack: parts that add up to the round's total."""
    lap = {name: float(seconds.get(name, 0.0)) for name in ("train", "average", "transfer", "jacobian", "score",
                                                            "evolve", "total")}
    parts = {"train": lap["train"], "average": lap["average"], "transfer": lap["transfer"],
             "jacobian+score": max(0.0, lap["jacobian"] + lap["score"] - lap["transfer"]), "evolve": lap["evolve"]}
    return {**parts, "other": max(0.0, lap["total"] - sum(parts.values()))}


def phase_seconds(per_agent: Records) -> dict[str, float]:
    """Mean seconds per round and agent of each part of PHASES; empty when no round was trained."""
    rows = [round_parts(record["seconds"]) for records in trained(per_agent) for record in records]
    return {phase: sum(r[phase] for r in rows) / len(rows) for phase in PHASES} if rows else {}


def fleet_summary(per_agent: Records, levels: Sequence[float]) -> dict[str, Any]:
    """The numbers summary.json keeps for one fleet (beside what ran it and why it stopped)."""
    fleet = curve(per_agent)
    agents = len(per_agent)
    totals = byte_totals(per_agent)
    return {
        "rounds_done": len(fleet.rounds),
        "final_accuracy": fleet.accuracy[-1] if fleet.accuracy else None,
        "best_accuracy": max(fleet.accuracy) if fleet.accuracy else None,
        "megabytes_per_agent": fleet.megabytes[-1] if fleet.megabytes else 0.0,
        "seconds": fleet.seconds[-1] if fleet.seconds else 0.0,
        "bytes": totals,
        "bytes_per_agent": {key: value / agents for key, value in totals.items()} if agents else {},
        "seconds_per_round": phase_seconds(per_agent),
        "to_level": {f"{level:g}": to_level(fleet, level) for level in levels},
        "curve": {"round": fleet.rounds, "accuracy": fleet.accuracy, "megabytes": fleet.megabytes,
                  "seconds": fleet.seconds},
    }


def _time(record: Mapping[str, Any]) -> float:
    """The record's UTC time as POSIX seconds (records write ISO 8601 with a `Z`)."""
    return datetime.fromisoformat(str(record["time"]).replace("Z", "+00:00")).timestamp()

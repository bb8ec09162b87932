"""Each agent's rounds as the dashboard plots them: one point per round record (docs/records.md), kept for the
latest rounds only."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

HISTORY_ROUNDS = 500  # rounds kept per agent: the page's curves and the JSON stay small on a long run


@dataclass(frozen=True)
class RoundPoint:
    """One round of one agent: its 0-based `round`, status, accuracy, seconds per phase, RSS and MB per link."""

    round: int
    status: str  # trained or skipped
    time: str
    accuracy: float | None
    seconds: dict[str, float]  # phase -> seconds, as recorded
    rss_mb: float | None  # resident memory at the round's end
    links_mb: dict[str, float]  # peer -> wire MB sent + received on that link this round

    def json(self) -> dict[str, Any]:
        return {"round": self.round, "status": self.status, "time": self.time, "accuracy": self.accuracy,
                "seconds": self.seconds, "rss_mb": self.rss_mb, "links_mb": self.links_mb}


def round_point(record: dict[str, Any]) -> RoundPoint:
    """The point of one round record; KeyError or ValueError when it is not one."""
    links = record.get("links") or {}
    return RoundPoint(
        round=int(record["round"]), status=str(record.get("status", "trained")), time=str(record.get("time", "")),
        accuracy=_float(record.get("test_accuracy")),
        seconds={str(phase): float(value) for phase, value in (record.get("seconds") or {}).items()},
        rss_mb=_float(record.get("rss_mb")),
        links_mb={str(peer): round((int(counts.get("wire_sent", 0)) + int(counts.get("wire_received", 0))) / 1e6, 6)
                  for peer, counts in links.items()})


def parse_records(lines: Iterable[str]) -> list[RoundPoint]:
    """The round records among JSON lines as a `Records` call returns them; lines that are not one are skipped."""
    points = []
    for line in lines:
        try:
            record = json.loads(line)
            if isinstance(record, dict) and "round" in record:
                points.append(round_point(record))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return points


class AgentHistory:
    """One agent's points by round, the latest `keep` rounds; a record of a round seen before replaces it."""

    def __init__(self, keep: int = HISTORY_ROUNDS) -> None:
        self.keep = keep
        self._points: dict[int, RoundPoint] = {}

    @property
    def last_round(self) -> int | None:
        return max(self._points) if self._points else None

    def add(self, points: Iterable[RoundPoint]) -> None:
        for point in points:
            self._points[point.round] = point
        for stale in sorted(self._points)[:-self.keep]:
            del self._points[stale]

    def points(self, after: int | None = None) -> list[RoundPoint]:
        """Oldest first; only rounds after `after` when given."""
        return [self._points[r] for r in sorted(self._points) if after is None or r > after]


def _float(value: Any) -> float | None:
    return None if value is None else float(value)

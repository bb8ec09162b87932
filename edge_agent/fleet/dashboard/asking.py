"""Ask agents what the dashboard shows, as `status` and `inspect` ask them: Status every refresh, and the round
records written since the last ask (read-only calls, over connections kept between refreshes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from edge_agent.fleet.dashboard.history import HISTORY_ROUNDS, RoundPoint, parse_records
from edge_agent.fleet.dial import Connection, Target, UnansweredError
from edge_agent.fleet.status import ask_status
from edge_agent.transport.status import MAX_RECORDS
from edge_agent.transport.tls import ClusterTls


@dataclass(frozen=True)
class Answer:
    """One agent's answer to one refresh: its status (`status --json`'s keys) and new rounds, or why it failed."""

    target: Target
    status: dict[str, Any] | None
    error: str | None
    points: list[RoundPoint]


class FleetAsker:
    """Asks every target at once (each call bounded by its timeout), keeping a connection per address."""

    def __init__(self, tls: ClusterTls | None, keep: int = HISTORY_ROUNDS, workers: int = 16) -> None:
        self.tls = tls
        self.keep = min(keep, MAX_RECORDS)
        self._connections: dict[str, Connection] = {}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dashboard-ask")

    def ask(self, targets: Sequence[Target], last_rounds: Mapping[str, int | None]) -> list[Answer]:
        """Every target's answer, in order; `last_rounds` (agent id -> last round held) says which records are new."""
        for address in set(self._connections) - {t.address for t in targets}:
            self._connections.pop(address).close()
        return list(self._pool.map(lambda target: self._ask(target, last_rounds), targets))

    def _ask(self, target: Target, last_rounds: Mapping[str, int | None]) -> Answer:
        try:
            status = ask_status(target, self.tls, self._connections)
            limit = self._records_wanted(status["last_round"], last_rounds.get(status["id"]))
            points: list[RoundPoint] = []
            if limit:
                connection = self._connections[target.address]
                points = parse_records(connection.ask(lambda client: client.records(limit,
                                                                                    timeout=connection.timeout)))
            return Answer(target, status, None, points)
        except UnansweredError as error:
            return Answer(target, None, str(error), [])
        except Exception as error:  # one agent's odd failure must not end the watch of the others
            return Answer(target, None, f"{target.name} could not be asked: {type(error).__name__}: {error}", [])

    def _records_wanted(self, last: int | None, held: int | None) -> int:
        """How many of the agent's latest records to fetch: none when nothing is new, all we keep when it starts
        over (a new life with fewer rounds than we hold)."""
        if last is None or last == held:
            return 0
        if held is None or last < held:
            return self.keep
        return min(self.keep, last - held)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

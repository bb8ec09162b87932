"""What the dashboard knows of the fleet between refreshes: the latest answers, the boards gone (and their last
answers), each agent's rounds; and the document `/api/fleet` serves and the page draws."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edge_agent.fleet.dashboard.asking import Answer
from edge_agent.fleet.dashboard.graph import graph_json, totals_json
from edge_agent.fleet.dashboard.history import HISTORY_ROUNDS, AgentHistory
from edge_agent.fleet.dial import Target
from edge_agent.fleet.status import Gone, report_json


@dataclass(frozen=True)
class Source:
    """Where the dashboard finds agents and how often it asks them."""

    run: str | None
    discovery: str  # "mdns" or "peers"
    interval_s: float


class FleetState:
    """The fleet as the latest refresh left it; an agent that stops answering is kept as gone with its last answer,
    until it answers again."""

    def __init__(self, source: Source, keep: int = HISTORY_ROUNDS) -> None:
        self.source = source
        self.keep = keep
        self.refreshes = 0
        self._answering: list[dict[str, Any]] = []
        self._last: dict[str, dict[str, Any]] = {}  # agent id -> its last status answer
        self._ids: dict[str, str] = {}  # address -> the agent id that last answered there
        self._gone: dict[str, Gone] = {}  # agent id (or address, for one never heard) -> since when and why
        self._history: dict[str, AgentHistory] = {}

    def last_rounds(self) -> dict[str, int | None]:
        """Agent id -> the last round its history holds (what the asker need not fetch again)."""
        return {agent: history.last_round for agent, history in self._history.items()}

    def unheard_members(self) -> set[str]:
        """Members the answering agents name that have never answered the dashboard."""
        return {member for agent in self._answering for member in agent["members"]} - set(self._last)

    def gone_count(self) -> int:
        return len(self._gone)

    def fold(self, answers: Sequence[Answer], now: datetime) -> None:
        """Apply one refresh: who answered, with what; who did not, since when and why."""
        answering = []
        for answer in answers:
            if answer.status is not None:
                status = answer.status
                agent = status["id"]
                answering.append(status)
                self._last[agent] = status
                self._ids[answer.target.address] = agent
                self._gone.pop(agent, None)
                self._gone.pop(answer.target.address, None)
                self._add_rounds(agent, status, answer)
            else:
                agent_id = answer.target.agent_id or self._ids.get(answer.target.address)
                key = agent_id or answer.target.address
                target = Target(answer.target.host, answer.target.port, agent_id)
                self._gone.setdefault(key, Gone(target, now, answer.error or "no answer"))
        answered = {a["id"] for a in answering}
        for key in answered:
            self._gone.pop(key, None)
        self._answering = sorted(answering, key=lambda a: (a["run"], a["shard"], a["id"]))
        self.refreshes += 1

    def _add_rounds(self, agent: str, status: dict[str, Any], answer: Answer) -> None:
        history = self._history.setdefault(agent, AgentHistory(self.keep))
        held = history.last_round
        if held is not None and status["last_round"] is not None and status["last_round"] < held:
            history = self._history[agent] = AgentHistory(self.keep)  # a new life that started over
        history.add(answer.points)

    def document(self, now: datetime, after: Mapping[str, int | None] | None = None) -> dict[str, Any]:
        """The fleet as JSON: `time`, `agents` and `gone` as `status --all --watch --json` has them, then `run`,
        `discovery`, `interval_s`, `graph`, `totals` and `history` (agent id -> its rounds, oldest first; only
        those after `after[id]` when given, for a page that holds the earlier ones)."""
        gone = sorted(self._gone.values(), key=lambda g: (g.target.agent_id or g.target.address))
        document = report_json(self._answering, now)
        document["gone"] = [g.json() for g in gone]
        gone_last = [self._last[g.target.agent_id] for g in gone if g.target.agent_id in self._last]
        document.update(
            run=self.source.run, discovery=self.source.discovery, interval_s=self.source.interval_s,
            refreshes=self.refreshes, graph=graph_json(self._answering, gone),
            totals=totals_json(self._answering, gone_last, len(gone)),
            last_answers={g.target.agent_id: self._last[g.target.agent_id] for g in gone
                          if g.target.agent_id in self._last},
            history={agent: [p.json() for p in history.points((after or {}).get(agent))]
                     for agent, history in sorted(self._history.items())})
        return document

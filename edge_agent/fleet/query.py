"""Find the agents on the network (mDNS browse) and fold what each sweep heard into online / stale / offline.

- online: answered an mDNS query during the latest sweep (its advert is live now);
- stale: answered an earlier sweep of this session, not the latest, and said no goodbye (crashed, frozen,
  unplugged, or its answer was lost);
- offline: said goodbye (an agent that stops cleanly unregisters) and has not answered since.

`since` is when the state last changed (for a first sighting: when it was first heard); `last_seen` when the agent
last answered. The JSON keys of `listing_json` are stable (docs/operator.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from edge_agent.discovery.peers import PeerRecord

State = Literal["online", "stale", "offline"]
JSON_KEYS = ("id", "run", "address", "host", "port", "shard", "protocol", "algorithm", "setting", "profile",
             "round", "samples", "state", "since", "last_seen")


@dataclass(frozen=True)
class AgentSighting:
    """One agent as `peers` shows it: its latest advert, its state, and when that state began."""

    name: str  # DNS-SD instance, <id>@<run>.<service type>
    record: PeerRecord
    state: State
    since: datetime
    last_seen: datetime


class FleetView:
    """Agents heard over a session of sweeps (of one run, when `run` is given), keyed by instance name."""

    def __init__(self, run: str | None = None) -> None:
        self.run = run
        self._agents: dict[str, AgentSighting] = {}

    def fold(self, sweep: Mapping[str, PeerRecord | None], now: datetime) -> list[AgentSighting]:
        """Apply one sweep (name -> record that answered, or None for a goodbye) heard up to `now`."""
        for name, seen in list(self._agents.items()):
            if name not in sweep and seen.state == "online":
                self._agents[name] = replace(seen, state="stale", since=now)
        for name, record in sweep.items():
            known = self._agents.get(name)
            if record is None:
                if known is not None and known.state != "offline":
                    self._agents[name] = replace(known, state="offline", since=now)
            elif self.run is None or record.run == self.run:
                since = known.since if known is not None and known.state == "online" else now
                self._agents[name] = AgentSighting(name, record, "online", since, now)
        return self.agents()

    def agents(self) -> list[AgentSighting]:
        """Ordered by run, shard, then id."""
        return sorted(self._agents.values(), key=lambda a: (a.record.run, a.record.shard, a.record.agent_id))


def sighting_json(agent: AgentSighting) -> dict[str, Any]:
    """One agent under the stable keys of JSON_KEYS; times in UTC ISO 8601."""
    record = agent.record
    values: dict[str, Any] = {
        "id": record.agent_id, "run": record.run, "address": record.address, "host": record.host,
        "port": record.port, "shard": record.shard, "protocol": record.protocol, "algorithm": record.algorithm,
        "setting": record.setting, "profile": record.profile, "round": record.round, "samples": record.samples,
        "state": agent.state, "since": _iso(agent.since), "last_seen": _iso(agent.last_seen)}
    return {key: values[key] for key in JSON_KEYS}


def listing_json(agents: Sequence[AgentSighting], service_type: str, run: str | None, now: datetime) -> dict[str, Any]:
    return {"time": _iso(now), "service_type": service_type, "run": run,
            "agents": [sighting_json(agent) for agent in agents]}


def listing_table(agents: Sequence[AgentSighting], now: datetime) -> str:
    """A fixed-width table: one line per agent, its state and how long it has been in it."""
    header = ("ID", "RUN", "ADDRESS", "SHARD", "PROTOCOL", "ALGORITHM", "PROFILE", "ROUND", "STATE", "SINCE")
    rows = [header]
    for agent in agents:
        r = agent.record
        rows.append((r.agent_id, r.run, r.address, str(r.shard), r.protocol, r.algorithm, r.profile, str(r.round),
                     agent.state, f"{agent.since:%H:%M:%S}Z ({_ago(now - agent.since)})"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def _ago(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"

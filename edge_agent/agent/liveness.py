"""Who takes part in a round: the fixed roster of M shards, the members that fill it, and those found dead.

Every round's graph is drawn over the roster of all M shard slots (`client_ids(M)`), a pure function of
(seed, round), so agents agree on it without a coordinator whoever is up. A slot's neighbour is reached through
the member that advertises that shard; a slot nobody fills, or whose member failed a call, stalled or sent no
weights in time, is skipped for the round and recorded as missing with the reason. A member marked down is
back as soon as it shows life: any message from it, or a change in what it advertises (a new round or address).
When each member last showed life is kept too: rounds wait for a neighbour that is behind but alive, and an agent
ahead of the fleet waits for the members that are alive.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edge_agent.discovery.peers import PeerRecord
from edge_agent.learning.topology import client_ids

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoundNeighbours:
    """This round's neighbours that are up (agent ids), and the others with why they are left out."""

    live: tuple[str, ...]
    missing: dict[str, str]  # agent id (or slot name when no member fills it) -> reason


class Liveness:
    """The roster of slots, this agent's slot, and the members marked down; thread-safe."""

    def __init__(self, clients: int, shard: int) -> None:
        self.roster = client_ids(clients)
        self.slot = self.roster[shard]
        self._down: dict[str, str] = {}  # agent id -> reason
        self._heard: dict[str, float] = {}  # agent id -> monotonic time it last showed life
        self._lock = threading.Lock()

    def mark_down(self, agent_id: str, reason: str) -> None:
        with self._lock:
            if agent_id not in self._down:
                log.warning("%s is down for now: %s", agent_id, reason)
            self._down[agent_id] = reason

    def mark_up(self, agent_id: str) -> None:
        """`agent_id` showed life (a message, a new advert): it is up, and heard from now."""
        with self._lock:
            self._heard[agent_id] = time.monotonic()
            if self._down.pop(agent_id, None) is not None:
                log.info("%s is back", agent_id)

    def heard_within(self, agent_id: str, seconds: float) -> bool:
        """Whether `agent_id` showed life in the last `seconds`."""
        with self._lock:
            heard = self._heard.get(agent_id)
        return heard is not None and time.monotonic() - heard <= seconds

    def down(self) -> dict[str, str]:
        with self._lock:
            return dict(self._down)

    def holders(self, members: Mapping[str, PeerRecord]) -> dict[str, str]:
        """Slot -> the member that fills it (the smallest id, should two claim one shard)."""
        slots: dict[str, str] = {}
        for agent_id in sorted(members):
            shard = members[agent_id].shard
            if shard < len(self.roster) and self.roster[shard] != self.slot:
                slots.setdefault(self.roster[shard], agent_id)
        return slots

    def neighbours(self, slots: Sequence[str], members: Mapping[str, PeerRecord]) -> RoundNeighbours:
        """The members that fill this round's neighbour `slots`, less those marked down."""
        holders, down = self.holders(members), self.down()
        live: list[str] = []
        missing: dict[str, str] = {}
        for slot in slots:
            agent_id = holders.get(slot)
            if agent_id is None:
                missing[slot] = "absent"
            elif agent_id in down:
                missing[agent_id] = f"down: {down[agent_id]}"
            else:
                live.append(agent_id)
        return RoundNeighbours(tuple(live), missing)

    def alive_round(self, members: Mapping[str, PeerRecord], within: float) -> int | None:
        """The round at least half the members that showed life in the last `within` seconds have reached (the upper
        median: one member behind of two is not the fleet), or None if none did."""
        rounds = [record.round for agent_id, record in members.items() if self.heard_within(agent_id, within)]
        return int(statistics.median_high(rounds)) if rounds else None

    def fleet_round(self, members: Mapping[str, PeerRecord]) -> int | None:
        """The round most members are at (the median of what they advertise), or None with no members.

        Members marked down count too: an agent that wakes from a pause finds every neighbour late and marks it
        down, yet what they advertise is exactly the round it must adopt; one dead member's stale advert cannot
        move a median.
        """
        rounds = [record.round for record in members.values()]
        return int(statistics.median_low(rounds)) if rounds else None

"""The peer pool kept to the members' current addresses: a member that leaves or moves frees its old channel."""

from __future__ import annotations

from edge_agent.discovery.membership import PeerChange
from edge_agent.discovery.peers import PeerRecord
from edge_agent.transport.client import PeerPool


class MemberChannels:
    """A Membership listener that closes the pool's channel to an address no member is known at any more.

    A member that restarts comes back on a new port under the same id: Membership reports an update, not a
    removal, so without this the channel to the old address stayed open for the rest of the run (one per
    restart of every neighbour we had called, each holding gRPC and Python state).
    """

    def __init__(self, pool: PeerPool) -> None:
        self.pool = pool
        self._addresses: dict[str, str] = {}  # agent id -> the address we last knew it at

    def on_change(self, change: PeerChange, record: PeerRecord) -> None:
        old = self._addresses.pop(record.agent_id, None)
        if change is not PeerChange.REMOVED:
            self._addresses[record.agent_id] = record.address
        if old is not None and old != self._addresses.get(record.agent_id) and old not in self._addresses.values():
            self.pool.discard(old)

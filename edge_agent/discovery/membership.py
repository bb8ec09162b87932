"""The set of currently known peers, keyed by agent id: what every discovery backend feeds."""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable

from edge_agent.discovery.peers import PeerRecord

log = logging.getLogger(__name__)


class PeerChange(enum.Enum):
    """What happened to a peer."""

    ADDED = "added"
    UPDATED = "updated"
    REMOVED = "removed"


Listener = Callable[[PeerChange, PeerRecord], None]
Admission = Callable[[PeerRecord], str | None]
"""Why a record may not be a member (one line), or None to admit it."""


class Pending(str):
    """An admission's answer for a record not admitted yet (its identity is being proven): logged at debug only."""

    __slots__ = ()


class Membership:
    """Thread-safe map agent id -> PeerRecord with change listeners.

    Listeners run on the thread that made the change, after the map is updated and outside the map's lock
    (so they may call `snapshot()`), one change at a time in the order the changes were made. A listener that
    raises is logged and does not stop the others. A record `admit` refuses is logged once and never becomes a member
    (one already known under its id leaves): discovery is a hint, the run decides who takes part.
    """

    def __init__(self, admit: Admission | None = None) -> None:
        self._admit = admit
        self._refused: set[tuple[str, str]] = set()  # (agent id, reason) already logged
        self._peers: dict[str, PeerRecord] = {}
        self._changed = threading.Condition()
        self._notifying = threading.RLock()  # serialises notifications; re-entrant for listeners that write
        self._listeners: list[Listener] = []

    def upsert(self, record: PeerRecord) -> PeerChange | None:
        """Adds or replaces the peer's record; returns the change, or None when it was known or is refused."""
        reason = self._admit(record) if self._admit is not None else None
        if isinstance(reason, Pending):
            log.debug("not yet a member: %s at %s: %s", record.agent_id, record.address, reason)
            return None
        if reason is not None:
            if (record.agent_id, reason) not in self._refused:
                self._refused.add((record.agent_id, reason))
                log.warning("ignoring agent %s at %s: %s", record.agent_id, record.address, reason)
            known = self.get(record.agent_id)
            if known is not None and known.address == record.address:  # the member itself changed runs
                self.remove(record.agent_id)
            return None
        with self._notifying:
            with self._changed:
                previous = self._peers.get(record.agent_id)
                if previous == record:
                    return None
                self._peers[record.agent_id] = record
                self._changed.notify_all()
            change = PeerChange.ADDED if previous is None else PeerChange.UPDATED
            self._notify(change, record)
            return change

    def remove(self, agent_id: str) -> PeerRecord | None:
        """Forgets the peer; returns its last record, or None when it was not known."""
        with self._notifying:
            with self._changed:
                record = self._peers.pop(agent_id, None)
                if record is None:
                    return None
                self._changed.notify_all()
            self._notify(PeerChange.REMOVED, record)
            return record

    def get(self, agent_id: str) -> PeerRecord | None:
        """The peer's current record, or None."""
        with self._changed:
            return self._peers.get(agent_id)

    def snapshot(self) -> dict[str, PeerRecord]:
        """A copy of the current map agent id -> record."""
        with self._changed:
            return dict(self._peers)

    def __len__(self) -> int:
        with self._changed:
            return len(self._peers)

    def wait_for(self, count: int, timeout: float) -> bool:
        """Blocks until at least `count` peers are known; False if `timeout` seconds pass first."""
        return self.wait_until(lambda peers: len(peers) >= count, timeout)

    def wait_until(self, predicate: Callable[[dict[str, PeerRecord]], bool], timeout: float) -> bool:
        """Blocks until `predicate(snapshot)` holds; False if `timeout` seconds pass first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(dict(self._peers)):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def add_listener(self, listener: Listener) -> None:
        """Calls `listener(change, record)` on every later add, update and removal."""
        with self._notifying:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stops calling `listener`; unknown listeners are ignored."""
        with self._notifying:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _notify(self, change: PeerChange, record: PeerRecord) -> None:
        for listener in list(self._listeners):
            try:
                listener(change, record)
            except Exception:
                log.exception("membership listener %r failed on %s %s", listener, change.value, record.agent_id)

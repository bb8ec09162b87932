"""Payload bytes per round, attributed by each message's round number (not by when it crossed the wire)."""

from __future__ import annotations

import threading
from collections import defaultdict

from edge_agent.learning.messages import Message, WireCodecs, payload_bytes


class RoundTraffic:
    """Thread-safe payload counters by round, computed from the messages as the simulator's ledger does."""

    def __init__(self, codecs: WireCodecs) -> None:
        self._codecs = codecs
        self._sent: dict[int, int] = defaultdict(int)
        self._received: dict[int, int] = defaultdict(int)
        self._lock = threading.Lock()

    def sent(self, message: Message | None) -> None:
        if message is not None:
            with self._lock:
                self._sent[message.round] += payload_bytes(message, self._codecs)

    def received(self, message: Message | None) -> None:
        if message is not None:
            with self._lock:
                self._received[message.round] += payload_bytes(message, self._codecs)

    def by_round(self) -> dict[int, dict[str, int]]:
        with self._lock:
            rounds = sorted(set(self._sent) | set(self._received))
            return {r: {"sent": self._sent.get(r, 0), "received": self._received.get(r, 0)} for r in rounds}

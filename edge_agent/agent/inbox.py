"""Messages that arrive for a round before (or while) the round loop waits for them."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Collection

from edge_agent.learning.messages import WeightsMessage


class WeightsInbox:
    """Thread-safe store of neighbours' weights by round; the loop waits until the expected senders arrived."""

    def __init__(self) -> None:
        self._by_round: dict[int, dict[str, WeightsMessage]] = defaultdict(dict)
        self._changed = threading.Condition()

    def put(self, message: WeightsMessage) -> None:
        with self._changed:
            self._by_round[message.round][message.sender] = message
            self._changed.notify_all()

    def wait_for(self, round_index: int, senders: Collection[str], timeout: float) -> dict[str, WeightsMessage]:
        """The round's messages from `senders` that arrived before the timeout (possibly fewer than asked)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not set(senders) <= self._by_round[round_index].keys():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            return {s: m for s, m in self._by_round[round_index].items() if s in senders}

    def forget_before(self, round_index: int) -> None:
        """Drop rounds that are over, so a long run does not keep every round's weights."""
        with self._changed:
            for stale in [r for r in self._by_round if r < round_index]:
                del self._by_round[stale]

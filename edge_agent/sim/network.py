"""In-memory message delivery with a ledger of what would have crossed the wire (SPEC section 6)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TypeVar

from edge_agent.learning.messages import ALL_FP32, Message, WireCodecs, as_received, payload_bytes, payload_elements

M = TypeVar("M", bound=Message)


@dataclass
class TrafficLedger:
    """Payload elements and bytes per message kind and per sending client, for one round."""

    codecs: WireCodecs = ALL_FP32
    elements_by_kind: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    bytes_by_kind: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    bytes_sent_by_client: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    bytes_received_by_client: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    bytes_by_link: dict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))  # (from, to, kind)

    def record(self, message: Message, receiver: str) -> None:
        size = payload_bytes(message, self.codecs)
        self.elements_by_kind[type(message).__name__] += payload_elements(message)
        self.bytes_by_kind[type(message).__name__] += size
        self.bytes_sent_by_client[message.sender] += size
        self.bytes_received_by_client[receiver] += size
        self.bytes_by_link[(message.sender, receiver, type(message).__name__)] += size

    def merge(self, other: TrafficLedger) -> None:
        """Add another ledger's counts (a requester's exchange run elsewhere) to this one."""
        for mine, theirs in ((self.elements_by_kind, other.elements_by_kind), (self.bytes_by_kind, other.bytes_by_kind),
                             (self.bytes_sent_by_client, other.bytes_sent_by_client),
                             (self.bytes_received_by_client, other.bytes_received_by_client)):
            for key, value in theirs.items():
                mine[key] += value
        for link, size in other.bytes_by_link.items():
            self.bytes_by_link[link] += size

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes_sent_by_client.values())


@dataclass
class InMemoryNetwork:
    """The in-memory twin of the transport: a message that leaves its sender is recorded and arrives as the wire's
    codecs decode it; one a client sends itself arrives untouched."""

    ledger: TrafficLedger = field(default_factory=TrafficLedger)

    def deliver(self, message: M, receiver: str) -> M:
        if message.sender == receiver:
            return message
        self.ledger.record(message, receiver)
        return as_received(message, self.ledger.codecs)

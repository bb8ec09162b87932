"""In-memory message delivery with a ledger of what would have crossed the wire (SPEC section 6)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TypeVar

from edge_agent.learning.messages import Message, payload_elements

M = TypeVar("M", bound=Message)


@dataclass
class TrafficLedger:
    """Payload elements and bytes per message kind and per sending client, for one round."""

    bytes_per_element: int = 4
    elements_by_kind: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    bytes_sent_by_client: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    bytes_received_by_client: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def record(self, message: Message, receiver: str) -> None:
        elements = payload_elements(message)
        self.elements_by_kind[type(message).__name__] += elements
        self.bytes_sent_by_client[message.sender] += elements * self.bytes_per_element
        self.bytes_received_by_client[receiver] += elements * self.bytes_per_element

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes_sent_by_client.values())

    def bytes_by_kind(self) -> dict[str, int]:
        return {kind: count * self.bytes_per_element for kind, count in sorted(self.elements_by_kind.items())}


@dataclass
class InMemoryNetwork:
    """The in-memory twin of the transport: hands a message to its receiver and records it if it left the sender."""

    ledger: TrafficLedger = field(default_factory=TrafficLedger)

    def deliver(self, message: M, receiver: str) -> M:
        if message.sender != receiver:
            self.ledger.record(message, receiver)
        return message

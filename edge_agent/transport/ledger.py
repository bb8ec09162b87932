"""Per-link byte counters: wire bytes as gRPC frames them and the tensor payload inside them, both directions.

Wire bytes of a frame = its serialised protobuf size (the bytes handed to gRPC) + gRPC's 5-byte length prefix:
what one gRPC message occupies on its HTTP/2 stream. Not counted: HTTP/2 frame headers (9 bytes per DATA frame
of up to 16 KiB), HEADERS frames with call metadata, TLS, TCP/IP. Payload bytes = the tensors' encoded bytes
(data and block scales), the same as `payload_bytes(message, codecs)`. So overhead = wire / payload - 1 is what
our framing (header frame, chunk tags and lengths) costs on top of the tensors.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace


@dataclass
class LinkCounters:
    """Bytes and messages one link has carried, per direction."""

    wire_sent: int = 0
    wire_received: int = 0
    payload_sent: int = 0
    payload_received: int = 0
    messages_sent: int = 0
    messages_received: int = 0

    @property
    def overhead(self) -> float:
        """wire / payload - 1 over both directions; inf when no payload has moved yet."""
        payload = self.payload_sent + self.payload_received
        return (self.wire_sent + self.wire_received) / payload - 1 if payload else float("inf")


@dataclass
class TransportLedger:
    """Thread-safe counters per link, keyed by peer id; readers get copies."""

    _links: dict[str, LinkCounters] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def add_sent(self, peer: str, wire: int, payload: int = 0, messages: int = 0) -> None:
        with self._lock:
            counters = self._links.setdefault(peer, LinkCounters())
            counters.wire_sent += wire
            counters.payload_sent += payload
            counters.messages_sent += messages

    def add_received(self, peer: str, wire: int, payload: int = 0, messages: int = 0) -> None:
        with self._lock:
            counters = self._links.setdefault(peer, LinkCounters())
            counters.wire_received += wire
            counters.payload_received += payload
            counters.messages_received += messages

    def link(self, peer: str) -> LinkCounters:
        """A copy of one link's counters (zeros if nothing moved on it)."""
        with self._lock:
            return replace(self._links.get(peer, LinkCounters()))

    def links(self) -> dict[str, LinkCounters]:
        with self._lock:
            return {peer: replace(counters) for peer, counters in self._links.items()}

    def totals(self) -> LinkCounters:
        """All links summed."""
        total = LinkCounters()
        for counters in self.links().values():
            for name in vars(total):
                setattr(total, name, getattr(total, name) + getattr(counters, name))
        return total

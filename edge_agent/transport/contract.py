"""The transport's interface to the agent: the handler it serves, the peer link it offers, and what they say."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from edge_agent.learning.messages import JacobianReplyBlocks, Message

PROTOCOL_VERSION = "edge_agent.v1"
PROVEN_PREFIX = "mtls:"  # a peer string that names the caller's certificate identity
NOT_A_MEMBER = "is not a member of this run"  # a refusal the caller may outlive: the peer has not found it yet


class TransportError(RuntimeError):
    """A call to a peer failed; `reason` says how, in one word the agent's records use.

    "stalled": no progress for the stall window; "unavailable": the peer could not be reached; "refused": the peer
    is in another run (or refused our certificate); "unknown": the peer has not yet found us among its members (it
may within a poll or an advert); "rejected": the peer found the message invalid; "failed": anything else.
    """

    def __init__(self, message: str, reason: str = "failed") -> None:
        super().__init__(message)
        self.reason = reason


class MessageHandler(Protocol):
    """What an agent does with a round message from a peer: a reply message, or None for a one-way message.

    A Jacobian reply may come as blocks still to be computed; the transport sends each block as it is ready."""

    def handle(self, message: Message, peer: str) -> Message | JacobianReplyBlocks | None:
        """`peer` is where it came from: gRPC's peer string (`ipv4:127.0.0.1:53012`), `memory`, or, over mutual TLS,
        `mtls:<agent id>`, the identity the caller's cluster certificate proves (and the message's sender)."""
        ...


@dataclass(frozen=True)
class PeerInfo:
    """Who an agent is and what it runs; peers check protocol, algorithm and setting before a round."""

    agent_id: str
    protocol_version: str = PROTOCOL_VERSION
    algorithm: str = ""
    setting: str = ""
    round: int = 0
    samples: int = 0
    profile: str = ""
    address: str = ""
    run: str = ""
    fingerprint: str = ""
    shard: int = 0
    security: str = ""  # "mtls" or "insecure"


@dataclass(frozen=True)
class NeighbourState:
    """A neighbour of the round in progress: "ok" (taking part), "missing" (gone, stalled, ...), "refused" (left
    out by the agent's --robust rule) or "clipped" (its messages bounded by it), with the reason."""

    agent_id: str
    state: str
    reason: str = ""


@dataclass(frozen=True)
class LinkBytes:
    """Wire bytes on the link to one peer: in the round in progress, in the last completed round, in total."""

    peer: str
    round_sent: int = 0
    round_received: int = 0
    last_round_sent: int = 0
    last_round_received: int = 0
    total_sent: int = 0
    total_received: int = 0


@dataclass(frozen=True)
class AgentStatus:
    """A snapshot of an agent's progress and its traffic so far (wire bytes). `round` is the round it runs next
    (rounds completed); `last_round` the 0-based round of its last record (-1 before one), as docs/records.md says."""

    round: int = 0
    state: str = ""
    members: tuple[str, ...] = ()
    bytes_sent: int = 0
    bytes_received: int = 0
    last_round_seconds: float = 0.0
    run: str = ""
    security: str = ""  # "mtls" or "insecure"
    agent_id: str = ""
    version: str = ""
    profile: str = ""
    backend: str = ""
    algorithm: str = ""
    shard: int = 0
    clients: int = 0
    rounds: int = 0  # rounds it is to run; 0: until stopped
    phase: str = ""  # of the round in progress; "" between rounds
    neighbours: tuple[NeighbourState, ...] = ()
    links: tuple[LinkBytes, ...] = ()
    uplink_bits_per_s: float = 0.0  # 0: unlimited
    downlink_bits_per_s: float = 0.0
    latency_s: float = 0.0
    last_round_phase_seconds: dict[str, float] = field(default_factory=dict)
    last_accuracy: float | None = None
    uptime_s: float = 0.0
    peak_rss_mb: float = 0.0
    last_round: int = -1
    best_round: int = -1  # the round of the best weights it has seen by its test accuracy; -1 before one
    best_accuracy: float | None = None


class PeerLink(Protocol):
    """A connection to one peer, through gRPC (`PeerClient`) or memory (`InMemoryPeer`)."""

    def call(self, message: Message, timeout: float | None = None) -> Message | None:
        """Deliver `message` and wait for the peer's reply (None: it was one-way); TransportError on failure."""
        ...

    def peer_info(self, timeout: float | None = None) -> PeerInfo: ...

    def close(self) -> None: ...

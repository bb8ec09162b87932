"""Calls to a peer agent over gRPC: one channel per peer address, opened once and reused."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import grpc

from edge_agent.learning.messages import Message
from edge_agent.run_identity import METADATA_KEY, RunIdentity
from edge_agent.transport.contract import NOT_A_MEMBER, AgentStatus, PeerInfo, TransportError
from edge_agent.transport.ledger import TransportLedger
from edge_agent.transport.limits import MessageLimits
from edge_agent.transport.link import LinkMeter
from edge_agent.transport.server import GRPC_OPTIONS, SERVICE_NAME
from edge_agent.transport.stall import CallProgress, StallPolicy, StallWatch, keepalive_options, then
from edge_agent.transport.status import agent_status
from edge_agent.transport.throttle import LinkShaper
from edge_agent.transport.tls import ClusterTls
from edge_agent.transport.wire import FrameMeter, WireConfig, WireError, assemble, encode_message, frames
from edge_agent.v1 import agent_pb2 as pb
from edge_agent.v1 import agent_pb2_grpc

# A peer that restarts on the same address is called again within a second, not after gRPC's default backoff.
RECONNECT_OPTIONS = (("grpc.initial_reconnect_backoff_ms", 500), ("grpc.min_reconnect_backoff_ms", 500),
                     ("grpc.max_reconnect_backoff_ms", 4000))


class PeerClient:
    """A peer's gRPC channel with the agent's link shaping and byte counting.

    A call ends when it stops making progress (`stall`: no frame for the stall window) rather than at a fixed
    deadline, so a large transfer over a slow link is never cut; `timeout` adds an overall cap where one is wanted.
    Round calls carry `run` in their metadata; a peer of another run refuses them. With `tls` the channel is mutual
    TLS and the server's certificate must name `peer_id`; replies are checked against `limits` before allocation,
    and a reply must come from `peer_id`.
    """

    def __init__(self, address: str, peer_id: str | None = None, *, wire: WireConfig | None = None,
                 shaper: LinkShaper | None = None, ledger: TransportLedger | None = None,
                 run: RunIdentity | None = None, stall: StallPolicy | None = None,
                 watch: StallWatch | None = None, tls: ClusterTls | None = None,
                 limits: MessageLimits | None = None) -> None:
        self.address = address
        self.peer_id = peer_id or address
        self.wire = wire or WireConfig()
        self.shaper = shaper if shaper is not None else LinkShaper()
        self.ledger = ledger if ledger is not None else TransportLedger()
        self.stall = stall
        self._watch = watch if watch is not None else StallWatch()
        self._metadata = ((METADATA_KEY, run.token),) if run is not None else ()
        self.limits = limits
        self._tls = tls is not None
        options = GRPC_OPTIONS + RECONNECT_OPTIONS + (keepalive_options(stall) if stall is not None else ())
        if tls is None:
            self._channel = grpc.insecure_channel(address, options=options)
        else:
            if peer_id is None:
                raise ValueError("a mutual-TLS channel needs the peer's agent id, which its certificate must name")
            self._channel = grpc.secure_channel(address, tls.channel_credentials(),
                                                options=options + tls.channel_options(peer_id))
        self._stub: Any = agent_pb2_grpc.AgentStub(self._channel)  # type: ignore[no-untyped-call]
        self._call_frames: Any = self._channel.stream_stream(f"/{SERVICE_NAME}/Call")  # frames as bytes (wire.py)

    def call(self, message: Message, timeout: float | None = None) -> Message | None:
        """Send `message` and return the peer's reply (None when it acknowledged a one-way message).

        ValueError before anything is sent if a tensor holds NaN or inf; TransportError if the call fails or
        stalls; WireError if the reply is malformed.
        """
        encoded = encode_message(message, self.wire.codecs)
        chunk_size = self.shaper.model.frame_bytes(self.wire.chunk_size)
        progress = CallProgress(self.stall or StallPolicy())
        sending = _noting(LinkMeter(self.shaper, self.ledger, sending=True, peer=self.peer_id), progress)
        outgoing = then(frames(encoded, chunk_size, sending), progress.awaiting_reply)
        replies = self._invoke(lambda: self._call_frames(outgoing, timeout=timeout, metadata=self._metadata))
        try:
            incoming = _noting(LinkMeter(self.shaper, self.ledger, sending=False, peer=self.peer_id), progress)
            watching = self._watch.watch(progress, replies.cancel) if self.stall else contextlib.nullcontext()
            with watching:
                return assemble(replies, self.wire.max_message_bytes, incoming, self._admit_reply)
        except grpc.RpcError as error:
            if progress.stalled:
                raise TransportError(f"call to {self.peer_id} at {self.address} stalled: nothing moved for "
                                     f"{self.stall.stall_s if self.stall else 0:.0f} s", "stalled") from error
            raise self._failure(error) from error
        finally:
            replies.cancel()  # a no-op once the call is complete; frees the stream if the reply was bad

    def peer_info(self, timeout: float | None = None) -> PeerInfo:
        r = self._invoke(lambda: self._stub.PeerInfo(pb.PeerInfoRequest(), timeout=timeout))
        return PeerInfo(r.agent_id, r.protocol_version, r.algorithm, r.setting, r.round, r.samples, r.profile,
                        r.address, r.run, r.fingerprint, r.shard, r.security)

    def status(self, timeout: float | None = None) -> AgentStatus:
        return agent_status(self._invoke(lambda: self._stub.Status(pb.StatusRequest(), timeout=timeout)))

    def records(self, limit: int = 0, timeout: float | None = None) -> list[str]:
        """The peer's most recent round records (at most `limit`; 0: all it keeps), oldest first, as JSON lines."""
        def fetch() -> list[str]:
            return [line.json for line in self._stub.Records(pb.RecordsRequest(limit=limit), timeout=timeout)]
        return list(self._invoke(fetch))

    def _admit_reply(self, header: pb.MessageHeader) -> None:
        """A reply must fit this run's shapes, and over mTLS come from the peer the channel proved."""
        if self.limits is not None:
            self.limits.check(header)
        if self._tls and header.kind != "Ack" and header.sender != self.peer_id:
            raise WireError(f"a reply from {self.peer_id} claims to be from {header.sender!r:.60}")

    def close(self) -> None:
        self._channel.close()

    def _invoke(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except grpc.RpcError as error:
            raise self._failure(error) from error

    def _failure(self, error: Any) -> TransportError:
        code = error.code()
        reason = _REASONS.get(code, "failed")
        if code is grpc.StatusCode.PERMISSION_DENIED and NOT_A_MEMBER in (error.details() or ""):
            reason = "unknown"
        return TransportError(f"call to {self.peer_id} at {self.address} failed: {code.name}: {error.details()}",
                              reason)


_REASONS = {grpc.StatusCode.UNAVAILABLE: "unavailable", grpc.StatusCode.FAILED_PRECONDITION: "refused",
            grpc.StatusCode.INVALID_ARGUMENT: "rejected", grpc.StatusCode.DEADLINE_EXCEEDED: "timeout",
            grpc.StatusCode.PERMISSION_DENIED: "refused", grpc.StatusCode.UNAUTHENTICATED: "refused"}


def _noting(meter: FrameMeter, progress: CallProgress) -> FrameMeter:
    """`meter`, also noting on `progress` that a frame moved."""
    def note(wire: int, payload: int, header: Any) -> None:
        meter(wire, payload, header)
        progress.moved()
    return note


class PeerPool:
    """One PeerClient per peer address, created on first use and reused until `discard` or `close`; thread-safe."""

    def __init__(self, *, wire: WireConfig | None = None, shaper: LinkShaper | None = None,
                 ledger: TransportLedger | None = None, run: RunIdentity | None = None,
                 stall: StallPolicy | None = None, tls: ClusterTls | None = None,
                 limits: MessageLimits | None = None) -> None:
        self.wire = wire or WireConfig()
        self.tls, self.limits = tls, limits
        self.shaper = shaper if shaper is not None else LinkShaper()
        self.ledger = ledger if ledger is not None else TransportLedger()
        self.run, self.stall = run, stall
        self._watch = StallWatch()
        self._clients: dict[tuple[str, str | None], PeerClient] = {}  # (address, peer id) -> client
        self._lock = threading.Lock()

    def get(self, address: str, peer_id: str | None = None) -> PeerClient:
        key = (address, peer_id if self.tls is not None else None)  # over mTLS a channel proves one peer id
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = PeerClient(address, peer_id, wire=self.wire, shaper=self.shaper, ledger=self.ledger,
                                    run=self.run, stall=self.stall, watch=self._watch, tls=self.tls,
                                    limits=self.limits)
                self._clients[key] = client
            return client

    def addresses(self) -> list[str]:
        """The addresses the pool holds a channel to, sorted."""
        with self._lock:
            return sorted({address for address, _ in self._clients})

    def discard(self, address: str) -> None:
        """Close the channel to an address no member uses any more (a peer that left or moved)."""
        with self._lock:
            gone = [self._clients.pop(key) for key in list(self._clients) if key[0] == address]
        for client in gone:
            client.close()

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
        self._watch.close()

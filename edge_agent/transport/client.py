"""Calls to a peer agent over gRPC: one channel per peer address, opened once and reused."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import grpc

from edge_agent.learning.messages import Message
from edge_agent.run_identity import METADATA_KEY, RunIdentity
from edge_agent.transport.contract import AgentStatus, PeerInfo, TransportError
from edge_agent.transport.ledger import TransportLedger
from edge_agent.transport.link import LinkMeter
from edge_agent.transport.server import GRPC_OPTIONS, SERVICE_NAME
from edge_agent.transport.stall import CallProgress, StallPolicy, StallWatch, keepalive_options, then
from edge_agent.transport.throttle import LinkShaper
from edge_agent.transport.wire import FrameMeter, WireConfig, assemble, encode_message, frames
from edge_agent.v1 import agent_pb2 as pb
from edge_agent.v1 import agent_pb2_grpc

# A peer that restarts on the same address is called again within a second, not after gRPC's default backoff.
RECONNECT_OPTIONS = (("grpc.initial_reconnect_backoff_ms", 500), ("grpc.min_reconnect_backoff_ms", 500),
                     ("grpc.max_reconnect_backoff_ms", 4000))


class PeerClient:
    """A peer's gRPC channel with the agent's link shaping and byte counting.

    A call ends when it stops making progress (`stall`: no frame for the stall window) rather than at a fixed
    deadline, so a large transfer over a slow link is never cut; `timeout` adds an overall cap where one is wanted.
    Round calls carry `run` in their metadata; a peer of another run refuses them.
    """

    def __init__(self, address: str, peer_id: str | None = None, *, wire: WireConfig | None = None,
                 shaper: LinkShaper | None = None, ledger: TransportLedger | None = None,
                 run: RunIdentity | None = None, stall: StallPolicy | None = None,
                 watch: StallWatch | None = None) -> None:
        self.address = address
        self.peer_id = peer_id or address
        self.wire = wire or WireConfig()
        self.shaper = shaper if shaper is not None else LinkShaper()
        self.ledger = ledger if ledger is not None else TransportLedger()
        self.stall = stall
        self._watch = watch if watch is not None else StallWatch()
        self._metadata = ((METADATA_KEY, run.token),) if run is not None else ()
        options = GRPC_OPTIONS + RECONNECT_OPTIONS + (keepalive_options(stall) if stall is not None else ())
        self._channel = grpc.insecure_channel(address, options=options)
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
                return assemble(replies, self.wire.max_message_bytes, incoming)
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
                        r.address, r.run, r.fingerprint, r.shard)

    def status(self, timeout: float | None = None) -> AgentStatus:
        r = self._invoke(lambda: self._stub.Status(pb.StatusRequest(), timeout=timeout))
        return AgentStatus(r.round, r.state, tuple(r.members), r.bytes_sent, r.bytes_received, r.last_round_seconds,
                           r.run)

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
        return TransportError(f"call to {self.peer_id} at {self.address} failed: {code.name}: {error.details()}",
                              reason)


_REASONS = {grpc.StatusCode.UNAVAILABLE: "unavailable", grpc.StatusCode.FAILED_PRECONDITION: "refused",
            grpc.StatusCode.INVALID_ARGUMENT: "rejected", grpc.StatusCode.DEADLINE_EXCEEDED: "timeout"}


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
                 stall: StallPolicy | None = None) -> None:
        self.wire = wire or WireConfig()
        self.shaper = shaper if shaper is not None else LinkShaper()
        self.ledger = ledger if ledger is not None else TransportLedger()
        self.run, self.stall = run, stall
        self._watch = StallWatch()
        self._clients: dict[str, PeerClient] = {}
        self._lock = threading.Lock()

    def get(self, address: str, peer_id: str | None = None) -> PeerClient:
        with self._lock:
            client = self._clients.get(address)
            if client is None:
                client = PeerClient(address, peer_id, wire=self.wire, shaper=self.shaper, ledger=self.ledger,
                                    run=self.run, stall=self.stall, watch=self._watch)
                self._clients[address] = client
            return client

    def addresses(self) -> list[str]:
        """The addresses the pool holds a channel to, sorted."""
        with self._lock:
            return sorted(self._clients)

    def discard(self, address: str) -> None:
        """Close the channel to an address no member uses any more (a peer that left or moved)."""
        with self._lock:
            client = self._clients.pop(address, None)
        if client is not None:
            client.close()

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
        self._watch.close()

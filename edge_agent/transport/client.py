"""Calls to a peer agent over gRPC: one channel per peer address, opened once and reused."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import grpc

from edge_agent.learning.messages import Message
from edge_agent.transport.contract import AgentStatus, PeerInfo, TransportError
from edge_agent.transport.ledger import TransportLedger
from edge_agent.transport.link import LinkMeter
from edge_agent.transport.server import GRPC_OPTIONS, SERVICE_NAME
from edge_agent.transport.throttle import LinkShaper
from edge_agent.transport.wire import WireConfig, assemble, encode_message, frames
from edge_agent.v1 import agent_pb2 as pb
from edge_agent.v1 import agent_pb2_grpc


class PeerClient:
    """A peer's gRPC channel with the agent's link shaping and byte counting; deadlines come from the caller."""

    def __init__(self, address: str, peer_id: str | None = None, *, wire: WireConfig | None = None,
                 shaper: LinkShaper | None = None, ledger: TransportLedger | None = None) -> None:
        self.address = address
        self.peer_id = peer_id or address
        self.wire = wire or WireConfig()
        self.shaper = shaper if shaper is not None else LinkShaper()
        self.ledger = ledger if ledger is not None else TransportLedger()
        self._channel = grpc.insecure_channel(address, options=GRPC_OPTIONS)
        self._stub: Any = agent_pb2_grpc.AgentStub(self._channel)  # type: ignore[no-untyped-call]
        self._call_frames: Any = self._channel.stream_stream(f"/{SERVICE_NAME}/Call")  # frames as bytes (wire.py)

    def call(self, message: Message, timeout: float | None = None) -> Message | None:
        """Send `message` and return the peer's reply (None when it acknowledged a one-way message).

        ValueError before anything is sent if a tensor holds NaN or inf; TransportError if the call fails;
        WireError if the reply is malformed.
        """
        encoded = encode_message(message, self.wire.codecs)
        chunk_size = self.shaper.model.frame_bytes(self.wire.chunk_size)
        outgoing = frames(encoded, chunk_size, LinkMeter(self.shaper, self.ledger, sending=True, peer=self.peer_id))
        replies = self._invoke(lambda: self._call_frames(outgoing, timeout=timeout))
        try:
            incoming = LinkMeter(self.shaper, self.ledger, sending=False, peer=self.peer_id)
            return assemble(replies, self.wire.max_message_bytes, incoming)
        except grpc.RpcError as error:
            raise self._failure(error) from error
        finally:
            replies.cancel()  # a no-op once the call is complete; frees the stream if the reply was bad

    def peer_info(self, timeout: float | None = None) -> PeerInfo:
        r = self._invoke(lambda: self._stub.PeerInfo(pb.PeerInfoRequest(), timeout=timeout))
        return PeerInfo(r.agent_id, r.protocol_version, r.algorithm, r.setting, r.round, r.samples, r.profile,
                        r.address)

    def status(self, timeout: float | None = None) -> AgentStatus:
        r = self._invoke(lambda: self._stub.Status(pb.StatusRequest(), timeout=timeout))
        return AgentStatus(r.round, r.state, tuple(r.members), r.bytes_sent, r.bytes_received, r.last_round_seconds)

    def close(self) -> None:
        self._channel.close()

    def _invoke(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except grpc.RpcError as error:
            raise self._failure(error) from error

    def _failure(self, error: Any) -> TransportError:
        return TransportError(f"call to {self.peer_id} at {self.address} failed: {error.code().name}: "
                              f"{error.details()}")


class PeerPool:
    """One PeerClient per peer address, created on first use and reused until `close`; thread-safe."""

    def __init__(self, *, wire: WireConfig | None = None, shaper: LinkShaper | None = None,
                 ledger: TransportLedger | None = None) -> None:
        self.wire = wire or WireConfig()
        self.shaper = shaper if shaper is not None else LinkShaper()
        self.ledger = ledger if ledger is not None else TransportLedger()
        self._clients: dict[str, PeerClient] = {}
        self._lock = threading.Lock()

    def get(self, address: str, peer_id: str | None = None) -> PeerClient:
        with self._lock:
            client = self._clients.get(address)
            if client is None:
                client = PeerClient(address, peer_id, wire=self.wire, shaper=self.shaper, ledger=self.ledger)
                self._clients[address] = client
            return client

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

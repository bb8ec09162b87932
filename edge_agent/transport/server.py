"""The agent's gRPC server: round messages in and replies out, plus PeerInfo, Status, health and reflection."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # type: ignore[import-untyped]
from grpc_reflection.v1alpha import reflection  # type: ignore[import-untyped]

from edge_agent.run_identity import METADATA_KEY, RunIdentity
from edge_agent.transport.contract import AgentStatus, MessageHandler, PeerInfo
from edge_agent.transport.ledger import TransportLedger
from edge_agent.transport.link import LinkMeter
from edge_agent.transport.stall import SERVER_KEEPALIVE_OPTIONS
from edge_agent.transport.throttle import LinkShaper
from edge_agent.transport.wire import WireConfig, WireError, assemble, encode_ack, encode_message, frames
from edge_agent.v1 import agent_pb2 as pb

log = logging.getLogger(__name__)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Agent"].full_name
# Chunking keeps every gRPC message small; these only make sure no 4 MB default ever caps a frame.
GRPC_OPTIONS = (("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1),
                ("grpc.so_reuseport", 0))


@dataclass(frozen=True)
class ServerConfig:
    """Who answers (the id in Ack replies), where it listens (port 0: any free port), how it frames messages,
    and which run's calls it takes (None: any, for tools and tests)."""

    agent_id: str
    host: str = "127.0.0.1"
    port: int = 0
    wire: WireConfig = field(default_factory=WireConfig)
    max_workers: int = 16
    run: RunIdentity | None = None


class AgentServer:
    """Serves one agent: each `Call` is a round message handed to `handler`, whose reply is streamed back."""

    def __init__(self, config: ServerConfig, handler: MessageHandler, *,
                 peer_info: Callable[[], PeerInfo] | None = None, status: Callable[[], AgentStatus] | None = None,
                 shaper: LinkShaper | None = None, ledger: TransportLedger | None = None) -> None:
        self.config = config
        self.ledger = ledger if ledger is not None else TransportLedger()
        self.shaper = shaper if shaper is not None else LinkShaper()
        self._handler = handler
        self._peer_info = peer_info or (lambda: PeerInfo(config.agent_id, address=self.address))
        self._status = status or self._ledger_status
        self._health = health.HealthServicer()
        self._server: Any = None
        self._refused: set[tuple[str, str]] = set()  # (caller, reason) already logged
        self.port = 0

    @property
    def address(self) -> str:
        host = self.config.host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    def start(self) -> int:
        """Bind, start serving, and return the bound port."""
        server = grpc.server(futures.ThreadPoolExecutor(self.config.max_workers),
                             options=GRPC_OPTIONS + SERVER_KEEPALIVE_OPTIONS)
        server.add_generic_rpc_handlers((_handlers(_Servicer(self)),))
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        _check_bindable(self.config.host, self.config.port)
        try:
            self.port = server.add_insecure_port(f"{host}:{self.config.port}")
        except RuntimeError as error:
            raise OSError(f"cannot listen on {host}:{self.config.port}: {error}") from error
        server.start()
        for service in ("", SERVICE_NAME):
            self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self._server = server
        return self.port

    def stop(self, grace: float | None = 1.0) -> None:
        """Report NOT_SERVING, let calls in flight finish for up to `grace` seconds, then stop; idempotent."""
        if self._server is None:
            return
        self._health.enter_graceful_shutdown()
        self._server.stop(grace).wait()
        self._server = None

    def __enter__(self) -> AgentServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run_mismatch(self, metadata: Any, caller: str) -> str | None:
        """Why a call with this metadata is not of our run (logged once per caller and reason), or None."""
        if self.config.run is None:
            return None
        token = next((value for key, value in metadata or () if key == METADATA_KEY), None)
        try:
            reason = "it names no run" if token is None else self.config.run.mismatch(RunIdentity.from_token(token))
        except ValueError as error:
            reason = str(error)
        host = caller.rpartition(":")[0] or caller  # gRPC's peer string ends in the caller's ephemeral port
        if reason is not None and (host, reason) not in self._refused:
            if len(self._refused) > 1024:  # a stranger must not grow it without bound
                self._refused.clear()
            self._refused.add((host, reason))
            log.warning("refusing calls from %s: %s", host, reason)
        return reason

    def _ledger_status(self) -> AgentStatus:
        totals = self.ledger.totals()
        return AgentStatus(state="serving", bytes_sent=totals.wire_sent, bytes_received=totals.wire_received)


def _check_bindable(host: str, port: int) -> None:
    """OSError with the reason (address not on this machine, port in use) before gRPC logs its own at length."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            shown = f"[{host}]" if ":" in host else host
            raise OSError(f"cannot listen on {shown}:{port}: {error.strerror}") from None


def _handlers(servicer: _Servicer) -> Any:
    """The Agent service as the generated code would register it, except that `Call` passes frames as bytes."""
    return grpc.method_handlers_generic_handler(SERVICE_NAME, {
        "Call": grpc.stream_stream_rpc_method_handler(servicer.Call),  # wire.py (de)serialises the frames
        "PeerInfo": grpc.unary_unary_rpc_method_handler(servicer.PeerInfo, pb.PeerInfoRequest.FromString,
                                                        pb.PeerInfoReply.SerializeToString),
        "Status": grpc.unary_unary_rpc_method_handler(servicer.Status, pb.StatusRequest.FromString,
                                                      pb.StatusReply.SerializeToString),
    })


class _Servicer:
    """The Agent service's methods."""

    def __init__(self, owner: AgentServer) -> None:
        self._owner = owner

    def Call(self, request_iterator: Iterator[bytes], context: Any) -> Iterator[bytes]:  # noqa: N802
        owner, wire = self._owner, self._owner.config.wire
        refused = owner.run_mismatch(context.invocation_metadata(), context.peer())
        if refused is not None:
            _abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"not a call of this agent's run: {refused}")
        try:
            incoming = LinkMeter(owner.shaper, owner.ledger, sending=False)
            message = assemble(request_iterator, wire.max_message_bytes, incoming)
        except WireError as error:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(error))
        if message is None:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "an Ack is a reply, not a request")
        kind = type(message).__name__
        try:
            reply = owner._handler.handle(message, context.peer())
        except ValueError as error:  # the handler's way of saying the message is not acceptable
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"{kind} rejected: {error}")
        except Exception as error:
            log.exception("handler failed on %s from %s", kind, message.sender)
            _abort(context, grpc.StatusCode.INTERNAL, f"handler failed on {kind}: {error}")
        try:
            encoded = (encode_ack(owner.config.agent_id, message.round) if reply is None
                       else encode_message(reply, wire.codecs))
        except (ValueError, TypeError) as error:
            log.exception("cannot encode the reply to %s from %s", kind, message.sender)
            _abort(context, grpc.StatusCode.INTERNAL, f"cannot encode the reply to {kind}: {error}")
        chunk_size = owner.shaper.model.frame_bytes(wire.chunk_size)
        yield from frames(encoded, chunk_size, LinkMeter(owner.shaper, owner.ledger, sending=True, peer=message.sender))

    def PeerInfo(self, request: pb.PeerInfoRequest, context: Any) -> pb.PeerInfoReply:  # noqa: N802
        info = self._owner._peer_info()
        return pb.PeerInfoReply(agent_id=info.agent_id, protocol_version=info.protocol_version,
                                algorithm=info.algorithm, setting=info.setting, round=info.round,
                                samples=info.samples, profile=info.profile, address=info.address, run=info.run,
                                fingerprint=info.fingerprint, shard=info.shard)

    def Status(self, request: pb.StatusRequest, context: Any) -> pb.StatusReply:  # noqa: N802
        s = self._owner._status()
        return pb.StatusReply(round=s.round, state=s.state, members=s.members, bytes_sent=s.bytes_sent,
                              bytes_received=s.bytes_received, last_round_seconds=s.last_round_seconds, run=s.run)


def _abort(context: Any, code: grpc.StatusCode, details: str) -> NoReturn:
    context.abort(code, details)
    raise AssertionError("context.abort returned")  # grpc raises; this tells the type checker

"""The agent's gRPC server: round messages in and replies out, plus PeerInfo, Status, Records, health and
reflection."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # type: ignore[import-untyped]
from grpc_reflection.v1alpha import reflection  # type: ignore[import-untyped]

from edge_agent.learning.messages import JacobianReplyBlocks
from edge_agent.run_identity import METADATA_KEY, RunIdentity
from edge_agent.transport.contract import PROVEN_PREFIX, AgentStatus, MessageHandler, PeerInfo
from edge_agent.transport.ledger import TransportLedger
from edge_agent.transport.limits import BusyError, CallGate, MessageLimits
from edge_agent.transport.link import LinkMeter
from edge_agent.transport.stall import SERVER_KEEPALIVE_OPTIONS, CallProgress, StallPolicy, StallWatch
from edge_agent.transport.status import MAX_RECORDS, status_reply
from edge_agent.transport.throttle import LinkShaper
from edge_agent.transport.tls import ClusterTls, IdentityError
from edge_agent.transport.wire import (
    EncodedMessage,
    StreamedMessage,
    WireConfig,
    WireError,
    assemble,
    encode_ack,
    encode_blocks,
    encode_message,
    frames,
)
from edge_agent.v1 import agent_pb2 as pb

log = logging.getLogger(__name__)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Agent"].full_name
# Chunking keeps every gRPC message small: no frame a sender makes exceeds MAX_CHUNK_BYTES plus its framing, so a
# larger one is refused by gRPC before it is buffered whole (a 200 MB frame must not cost 200 MB).
MAX_CHUNK_BYTES = 16 << 20
MAX_FRAME_BYTES = MAX_CHUNK_BYTES + (64 << 10)
GRPC_OPTIONS = (("grpc.max_send_message_length", MAX_FRAME_BYTES),
                ("grpc.max_receive_message_length", MAX_FRAME_BYTES), ("grpc.so_reuseport", 0))
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
LOG_EVERY_S = 10.0  # a caller's rejections of one kind are logged once per this many seconds
HANDSHAKE_DEADLINE_S = 10.0  # a connection that has not finished its TLS (or HTTP/2) handshake by then is closed
HANDSHAKE_OPTIONS = (("grpc.server_handshake_timeout_ms", int(HANDSHAKE_DEADLINE_S * 1000)),)


@dataclass(frozen=True)
class ServerConfig:
    """Who answers (the id in Ack replies), where it listens (port 0: any free port), how it frames messages,
    and which run's calls it takes (None: any, for tools and tests)."""

    agent_id: str
    host: str = "127.0.0.1"
    port: int = 0
    wire: WireConfig = field(default_factory=WireConfig)
    max_workers: int = 24
    run: RunIdentity | None = None
    tls: ClusterTls | None = None  # None: plaintext (--insecure)
    limits: MessageLimits | None = None  # None: only the wire's own checks (tools and tests)
    idle_s: float = 20.0  # an incoming stream that moves no frame for this long is cut
    calls_per_caller: int = 4
    reserved_workers: int = 4  # never taken by round calls: health checks, PeerInfo, Status

    @property
    def security(self) -> str:
        return "insecure" if self.tls is None else "mtls"


class AgentServer:
    """Serves one agent: each `Call` is a round message handed to `handler`, whose reply is streamed back."""

    def __init__(self, config: ServerConfig, handler: MessageHandler, *,
                 peer_info: Callable[[], PeerInfo] | None = None, status: Callable[[], AgentStatus] | None = None,
                 records: Callable[[int], Sequence[str]] | None = None, shaper: LinkShaper | None = None,
                 ledger: TransportLedger | None = None) -> None:
        self.config = config
        self.ledger = ledger if ledger is not None else TransportLedger()
        self.shaper = shaper if shaper is not None else LinkShaper()
        self._handler = handler
        self._peer_info = peer_info or (lambda: PeerInfo(config.agent_id, address=self.address))
        self._status = status or self._ledger_status
        self._records = records or (lambda _limit: ())  # the most recent round records' JSON lines, oldest first
        self._health = health.HealthServicer()
        self._server: Any = None
        self._refused: set[tuple[str, str]] = set()  # (caller, reason) already logged
        self._logged: dict[tuple[str, str], float] = {}  # (caller, code) -> when last logged
        self.gate = CallGate(config.calls_per_caller, max(config.calls_per_caller,
                                                            config.max_workers - config.reserved_workers))
        self.idle_watch = StallWatch()
        self.port = 0

    @property
    def address(self) -> str:
        host = self.config.host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    def start(self) -> int:
        """Bind, start serving, and return the bound port."""
        server = grpc.server(futures.ThreadPoolExecutor(self.config.max_workers),
                             options=GRPC_OPTIONS + SERVER_KEEPALIVE_OPTIONS + HANDSHAKE_OPTIONS)
        server.add_generic_rpc_handlers((_handlers(_Servicer(self)),))
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        names = (SERVICE_NAME, health.SERVICE_NAME, REFLECTION_V1, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, server)
        server.add_generic_rpc_handlers((_reflection_v1(names),))
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        _check_bindable(self.config.host, self.config.port)
        address = f"{host}:{self.config.port}"
        try:
            tls = self.config.tls
            self.port = (server.add_insecure_port(address) if tls is None
                         else server.add_secure_port(address, tls.server_credentials()))
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
        self.idle_watch.close()

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

    def caller(self, context: Any, board: bool = False) -> str:
        """Who calls: the agent id its client certificate proves (mTLS), or gRPC's peer string (plaintext).

        Aborts UNAUTHENTICATED without a cluster certificate and PERMISSION_DENIED for a revoked one, or, with
        `board`, for an operator certificate (it may read PeerInfo, Status and Records, not take part in rounds).
        """
        tls = self.config.tls
        if tls is None:
            return str(context.peer())
        try:
            return tls.caller(context, board=board)
        except PermissionError as error:
            self.reject(context, grpc.StatusCode.PERMISSION_DENIED, str(error))
        except (IdentityError, ValueError) as error:
            self.reject(context, grpc.StatusCode.UNAUTHENTICATED, str(error))

    def reject(self, context: Any, code: grpc.StatusCode, details: str, caller: str | None = None) -> NoReturn:
        """End the call with `code`; one log line per caller and code every LOG_EVERY_S seconds."""
        who = caller or str(context.peer())
        key, now = (who, code.name), time.monotonic()
        if now - self._logged.get(key, -LOG_EVERY_S) >= LOG_EVERY_S:
            if len(self._logged) > 1024:  # a stranger must not grow it without bound
                self._logged.clear()
            self._logged[key] = now
            log.warning("%s from %s: %.200s", code.name, who, details)
        _abort(context, code, details)

    def _ledger_status(self) -> AgentStatus:
        totals = self.ledger.totals()
        return AgentStatus(state="serving", bytes_sent=totals.wire_sent, bytes_received=totals.wire_received)


def _check_bindable(host: str, port: int) -> None:
    """OSError with the reason (address not on this machine, port in use) before gRPC logs its own at length.

    SO_REUSEADDR, as gRPC's own listener has: connections the last server on this port left in TIME_WAIT (an agent
    restarted on its fixed port) do not count as in use; a listening socket still does."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            shown = f"[{host}]" if ":" in host else host
            raise OSError(f"cannot listen on {shown}:{port}: {error.strerror}") from None


def _handlers(servicer: _Servicer) -> Any:
    """The Agent service as the generated code would register it, except that `Call` passes frames as bytes and
    PeerInfo, Status and Records parse their requests themselves (garbage is INVALID_ARGUMENT, not a traceback)."""
    return grpc.method_handlers_generic_handler(SERVICE_NAME, {
        "Call": grpc.stream_stream_rpc_method_handler(servicer.Call),  # wire.py (de)serialises the frames
        "PeerInfo": grpc.unary_unary_rpc_method_handler(servicer.PeerInfo,
                                                        response_serializer=pb.PeerInfoReply.SerializeToString),
        "Status": grpc.unary_unary_rpc_method_handler(servicer.Status,
                                                      response_serializer=pb.StatusReply.SerializeToString),
        "Records": grpc.unary_stream_rpc_method_handler(servicer.Records,
                                                        response_serializer=pb.RecordLine.SerializeToString),
    })


def _reflection_v1(names: tuple[str, ...]) -> Any:
    """grpc.reflection.v1, whose messages are v1alpha's under a new package name, served by v1alpha's servicer."""
    from grpc_reflection.v1alpha import reflection_pb2 as messages
    servicer = reflection.ReflectionServicer(names)
    return grpc.method_handlers_generic_handler(REFLECTION_V1, {
        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo, messages.ServerReflectionRequest.FromString,
            messages.ServerReflectionResponse.SerializeToString),
    })


class _Servicer:
    """The Agent service's methods."""

    def __init__(self, owner: AgentServer) -> None:
        self._owner = owner

    def Call(self, request_iterator: Iterator[bytes], context: Any) -> Iterator[bytes]:  # noqa: N802
        owner = self._owner
        caller = owner.caller(context, board=True)
        refused = owner.run_mismatch(context.invocation_metadata(), context.peer())
        if refused is not None:
            _abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"not a call of this agent's run: {refused}")
        try:
            with owner.gate.slot(caller):
                yield from self._answer(request_iterator, context, caller)
        except BusyError as error:
            owner.reject(context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(error), caller)

    def _answer(self, request_iterator: Iterator[bytes], context: Any, caller: str) -> Iterator[bytes]:
        owner, wire = self._owner, self._owner.config.wire
        proven = owner.config.tls is not None
        progress = CallProgress(StallPolicy(owner.config.idle_s, 0.0))

        def admit(header: pb.MessageHeader) -> None:
            if proven and header.sender != caller:
                raise PermissionError(f"{caller} may not send as {header.sender!r:.60}")
            if owner.config.limits is not None:
                owner.config.limits.check(header)
        try:
            # Over mTLS the link is the proven caller: a header's made-up sender never opens a link or a bucket.
            incoming = LinkMeter(owner.shaper, owner.ledger, sending=False, peer=caller if proven else None)

            def meter(wire_bytes: int, payload: int, header: Any) -> None:
                incoming(wire_bytes, payload, header)
                progress.moved()
            with owner.idle_watch.watch(progress, context.cancel):
                message = assemble(request_iterator, wire.max_message_bytes, meter, admit)
        except PermissionError as error:
            owner.reject(context, grpc.StatusCode.PERMISSION_DENIED, str(error), caller)
        except WireError as error:
            owner.reject(context, grpc.StatusCode.INVALID_ARGUMENT, str(error), caller)
        except grpc.RpcError:  # the stream was cut (idle) or the caller went away
            owner.reject(context, grpc.StatusCode.DEADLINE_EXCEEDED,
                         f"the request stream moved nothing for {owner.config.idle_s:.0f} s", caller)
        if message is None:
            owner.reject(context, grpc.StatusCode.INVALID_ARGUMENT, "an Ack is a reply, not a request", caller)
        kind = type(message).__name__
        try:
            reply = owner._handler.handle(message, f"{PROVEN_PREFIX}{caller}" if proven else context.peer())
        except PermissionError as error:
            owner.reject(context, grpc.StatusCode.PERMISSION_DENIED, f"{kind} rejected: {error}", caller)
        except (ValueError, ArithmeticError) as error:  # the handler's way of saying the message is not acceptable
            owner.reject(context, grpc.StatusCode.INVALID_ARGUMENT, f"{kind} rejected: {error}", caller)
        except Exception as error:
            log.exception("handler failed on %s from %s", kind, message.sender)
            _abort(context, grpc.StatusCode.INTERNAL, f"handler failed on {kind}: {error}")
        try:
            encoded: EncodedMessage | StreamedMessage
            if reply is None:
                encoded = encode_ack(owner.config.agent_id, message.round)
            elif isinstance(reply, JacobianReplyBlocks):  # each block leaves as soon as it is computed
                encoded = encode_blocks(reply, wire.codecs)
            else:
                encoded = encode_message(reply, wire.codecs)
        except (ValueError, TypeError) as error:  # e.g. weights so large the reply overflows to inf
            owner.reject(context, grpc.StatusCode.INVALID_ARGUMENT, f"no valid reply to this {kind}: {error}",
                         caller)
        chunk_size = owner.shaper.model.frame_bytes(wire.chunk_size)
        yield from frames(encoded, chunk_size, LinkMeter(owner.shaper, owner.ledger, sending=True, peer=message.sender))

    def PeerInfo(self, request: bytes, context: Any) -> pb.PeerInfoReply:  # noqa: N802
        self._parsed(pb.PeerInfoRequest, request, context)
        info = self._owner._peer_info()
        return pb.PeerInfoReply(agent_id=info.agent_id, protocol_version=info.protocol_version,
                                algorithm=info.algorithm, setting=info.setting, round=info.round,
                                samples=info.samples, profile=info.profile, address=info.address, run=info.run,
                                fingerprint=info.fingerprint, shard=info.shard, security=self._owner.config.security)

    def Status(self, request: bytes, context: Any) -> pb.StatusReply:  # noqa: N802
        self._parsed(pb.StatusRequest, request, context)
        return status_reply(self._owner._status(), self._owner.config.security)

    def Records(self, request: bytes, context: Any) -> Iterator[pb.RecordLine]:  # noqa: N802
        asked = self._parsed(pb.RecordsRequest, request, context)
        limit = min(asked.limit or MAX_RECORDS, MAX_RECORDS)
        for line in list(self._owner._records(limit))[-limit:]:
            yield pb.RecordLine(json=line)

    def _parsed(self, cls: Any, request: bytes, context: Any) -> Any:
        """The request parsed, after the caller's identity is checked; INVALID_ARGUMENT for garbage."""
        caller = self._owner.caller(context)
        try:
            return cls.FromString(request)
        except DecodeError as error:
            self._owner.reject(context, grpc.StatusCode.INVALID_ARGUMENT,
                               f"not a {cls.DESCRIPTOR.name}: {error}", caller)


def _abort(context: Any, code: grpc.StatusCode, details: str) -> NoReturn:
    context.abort(code, details)
    raise AssertionError("context.abort returned")  # grpc raises; this tells the type checker

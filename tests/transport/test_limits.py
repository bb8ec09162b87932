"""Hostile input costs nothing: headers beyond this run's shapes, idle streams, floods of calls and garbage requests
are refused with a status code (never INTERNAL), while health checks are still answered."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]
from grpc_reflection.v1alpha import reflection_pb2  # type: ignore[import-untyped]

from edge_agent.learning.messages import JacobianRequest, Message, WeightsMessage
from edge_agent.transport.client import PeerClient
from edge_agent.transport.contract import TransportError
from edge_agent.transport.limits import BusyError, CallGate, MessageLimits
from edge_agent.transport.schema import WireError
from edge_agent.transport.server import MAX_FRAME_BYTES, SERVICE_NAME, AgentServer, ServerConfig
from edge_agent.transport.wire import describe
from edge_agent.v1 import agent_pb2 as pb

LIMITS = MessageLimits(num_params=64, max_samples=20, classes=10, reply_width=16, max_candidates=4)


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    def handle(self, message: Message, peer: str) -> Message | None:
        self.calls += 1
        return None


@pytest.fixture
def served() -> Iterator[tuple[AgentServer, Counting]]:
    handler = Counting()
    server = AgentServer(ServerConfig("srv", limits=LIMITS, idle_s=1.0, calls_per_caller=2), handler)
    server.start()
    yield server, handler
    server.stop(grace=0)


def _header_only(kind: str, shape: tuple[int, ...]) -> bytes:
    header = describe(WeightsMessage("x", 0, np.zeros(1, np.float32)))
    header.kind = kind
    del header.tensors[:]
    n = int(np.prod(shape))
    header.tensors.add(name="weights", dtype="float32", shape=shape, data_bytes=4 * n)
    return pb.Frame(header=header).SerializeToString()


def test_limits_accept_this_runs_shapes_and_refuse_anything_larger() -> None:
    LIMITS.check(describe(WeightsMessage("a", 0, np.zeros(64, np.float32))))
    for wrong in (np.zeros(63, np.float32), np.zeros(2**20, np.float32)):
        with pytest.raises(WireError, match="does not fit this run"):
            LIMITS.check(describe(JacobianRequest("a", 0, wrong)))
    assert LIMITS.max_message_bytes == 20 * 10 * 16 * 8 + 20 * 10 * 8 + 20 * 8  # the largest reply, scales at worst


def test_a_header_declaring_8_gib_is_invalid_argument_before_anything_is_allocated(
        served: tuple[AgentServer, Counting]) -> None:
    server, handler = served
    with grpc.insecure_channel(server.address) as channel:
        call = channel.stream_stream(f"/{SERVICE_NAME}/Call")
        with pytest.raises(grpc.RpcError) as refused:
            list(call(iter([_header_only("WeightsMessage", (2 * 2**30 - 1,))]), timeout=10))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "does not fit this run" in refused.value.details() and handler.calls == 0


def test_a_jacobian_request_with_the_wrong_number_of_weights_is_invalid_argument(
        served: tuple[AgentServer, Counting]) -> None:
    server, _ = served
    client = PeerClient(server.address, "srv")
    try:
        with pytest.raises(TransportError, match=r"INVALID_ARGUMENT.*does not fit this run"):
            client.call(JacobianRequest("a", 0, np.ones(65, np.float32)), timeout=10)
    finally:
        client.close()


def test_garbage_to_peer_info_and_status_is_invalid_argument(served: tuple[AgentServer, Counting]) -> None:
    server, _ = served
    with grpc.insecure_channel(server.address) as channel:
        for method in ("PeerInfo", "Status"):
            with pytest.raises(grpc.RpcError) as refused:
                channel.unary_unary(f"/{SERVICE_NAME}/{method}")(b"\xff\xff\xff garbage", timeout=5)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method


def test_a_frame_larger_than_any_chunk_is_refused_by_grpc(served: tuple[AgentServer, Counting]) -> None:
    server, handler = served
    with grpc.insecure_channel(server.address) as channel:
        call = channel.stream_stream(f"/{SERVICE_NAME}/Call")
        with pytest.raises(grpc.RpcError) as refused:
            list(call(iter([b"\x12" + b"\x00" * (MAX_FRAME_BYTES + 1)]), timeout=10))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and handler.calls == 0


def test_header_only_streams_are_cut_after_the_idle_window_and_health_is_served_meanwhile(
        served: tuple[AgentServer, Counting]) -> None:
    server, _ = served
    release = threading.Event()

    def stalled() -> Iterator[bytes]:
        yield _header_only("WeightsMessage", (64,))
        release.wait(10)

    codes: list[grpc.StatusCode] = []
    with grpc.insecure_channel(server.address) as channel:
        call = channel.stream_stream(f"/{SERVICE_NAME}/Call")

        def stream() -> None:
            try:
                list(call(stalled(), timeout=10))
            except grpc.RpcError as error:
                codes.append(error.code())
        threads = [threading.Thread(target=stream) for _ in range(20)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        health = health_pb2_grpc.HealthStub(channel)
        asked = time.monotonic()
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=2).status == health_pb2.HealthCheckResponse.SERVING
        assert time.monotonic() - asked < 1.0
        for thread in threads:
            thread.join(10)
        release.set()
    assert time.monotonic() - started < 5  # the two that got a slot were cut after the 1 s idle window
    assert sorted(set(codes), key=str) == sorted({grpc.StatusCode.CANCELLED, grpc.StatusCode.RESOURCE_EXHAUSTED},
                                                 key=str)
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 18  # per caller (one connection): 2 slots


def test_call_gate_bounds_calls_per_caller_and_in_all() -> None:
    gate = CallGate(per_caller=2, total=3)
    with gate.slot("a"), gate.slot("a"):
        with pytest.raises(BusyError, match="already has 2"), gate.slot("a"):
            pass
        with gate.slot("b"), pytest.raises(BusyError, match="all 3"), gate.slot("c"):
            pass
    assert gate.in_use() == 0


def test_reflection_v1_lists_the_agent_service(served: tuple[AgentServer, Counting]) -> None:
    server, _ = served
    with grpc.insecure_channel(server.address) as channel:
        call = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                     request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                     response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
        reply, = call(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    names = {service.name for service in reply.list_services_response.service}
    assert {SERVICE_NAME, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} <= names

"""Standard gRPC tooling works against an agent: health checking answers SERVING and reflection lists services."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc  # type: ignore[import-untyped]
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (  # type: ignore[import-untyped]
    ProtoReflectionDescriptorDatabase,
)

from edge_agent.learning.messages import Message
from edge_agent.transport.server import AgentServer, ServerConfig


class Sink:
    def handle(self, message: Message, peer: str) -> Message | None:
        return None


@pytest.fixture
def channel() -> Iterator[grpc.Channel]:
    server = AgentServer(ServerConfig("srv"), Sink())
    server.start()
    with grpc.insecure_channel(server.address) as open_channel:
        yield open_channel
    server.stop(grace=0)


@pytest.mark.parametrize("service", ["", "edge_agent.v1.Agent"])
def test_health_check_answers_serving(channel: grpc.Channel, service: str) -> None:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_agent_and_health_services(channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    [reply] = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
    names = {service.name for service in reply.list_services_response.service}
    assert {"edge_agent.v1.Agent", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names


def test_reflection_describes_the_agent_methods(channel: grpc.Channel) -> None:
    database = ProtoReflectionDescriptorDatabase(channel)
    service = database.FindFileContainingSymbol("edge_agent.v1.Agent").service[0]
    assert {m.name: (m.client_streaming, m.server_streaming) for m in service.method} == {
        "Call": (True, True), "PeerInfo": (False, False), "Status": (False, False), "Records": (False, True)}


def test_a_stopped_server_no_longer_answers() -> None:
    server = AgentServer(ServerConfig("srv"), Sink())
    server.start()
    address = server.address
    server.stop(grace=0)
    server.stop(grace=0)  # idempotent
    with grpc.insecure_channel(address) as closed, pytest.raises(grpc.RpcError):
        health_pb2_grpc.HealthStub(closed).Check(health_pb2.HealthCheckRequest(), timeout=1)

"""Tests for the gRPC client and server beyond the shared contract: size limits, failures, status, reuse."""

from __future__ import annotations

import dataclasses
import socket
import threading
from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from edge_agent.learning.jacobian import DenseJacobian
from edge_agent.learning.messages import JacobianReply, Message, WeightsMessage, payload_bytes
from edge_agent.transport.client import PeerClient, PeerPool
from edge_agent.transport.contract import AgentStatus, PeerInfo, TransportError
from edge_agent.transport.server import AgentServer, ServerConfig
from edge_agent.transport.wire import WireConfig, encode_message, frames
from edge_agent.v1 import agent_pb2 as pb
from edge_agent.v1 import agent_pb2_grpc


class Recorder:
    """Keeps a summary of each message (not the message: big transfers stay small in memory)."""

    def __init__(self, delay: threading.Event | None = None) -> None:
        self.summaries: list[tuple[str, tuple[int, ...], float]] = []
        self.delay = delay

    def handle(self, message: Message, peer: str) -> Message | None:
        if self.delay is not None:
            self.delay.wait(5)
        if isinstance(message, JacobianReply):
            assert isinstance(message.jacobian, DenseJacobian)
            values = message.jacobian.values
            self.summaries.append((peer, values.shape, float(values[:, :, -1].sum())))
        return None


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def server(recorder: Recorder) -> Iterator[AgentServer]:
    agent = AgentServer(ServerConfig("srv"), recorder)
    agent.start()
    yield agent
    agent.stop(grace=0)


@pytest.fixture
def client(server: AgentServer) -> Iterator[PeerClient]:
    peer = PeerClient(server.address, "srv")
    yield peer
    peer.close()


def test_a_64mb_jacobian_reply_passes_the_4mb_default_ceiling(client: PeerClient, recorder: Recorder) -> None:
    n, c, p = 200, 10, 8000  # 16M floats: 64 MB at fp32
    jacobian = np.empty((n, c, p), np.float32)
    jacobian[:] = np.arange(p, dtype=np.float32)
    message = JacobianReply("a", 0, DenseJacobian(jacobian), np.zeros((n, c), np.float32), np.zeros(n, np.int64))
    assert client.call(message, timeout=60) is None
    [(peer, shape, last_column)] = recorder.summaries
    assert peer.startswith("ipv4:127.0.0.1:") and shape == (n, c, p) and last_column == n * c * (p - 1)
    assert client.ledger.link("srv").payload_sent == payload_bytes(message) > 64_000_000


def test_a_malformed_stream_is_refused_and_the_server_keeps_serving(server: AgentServer, client: PeerClient) -> None:
    encoded = encode_message(WeightsMessage("a", 0, np.ones(100, np.float32)))
    truncated = [pb.Frame.FromString(f) for f in frames(encoded, 64)][:-1]  # through the generated stub
    with grpc.insecure_channel(server.address) as channel:
        stub = agent_pb2_grpc.AgentStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.RpcError) as info:
            list(stub.Call(iter(truncated), timeout=10))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ended after" in info.value.details()
    assert client.call(WeightsMessage("a", 0, np.ones(3, np.float32)), timeout=10) is None


def test_a_message_over_the_servers_limit_is_refused_at_its_header() -> None:
    recorder = Recorder()
    agent = AgentServer(ServerConfig("small", wire=WireConfig(max_message_bytes=1000)), recorder)
    agent.start()
    peer = PeerClient(agent.address, "small")
    try:
        with pytest.raises(TransportError, match=r"INVALID_ARGUMENT.*exceeds the limit of 1000"):
            peer.call(WeightsMessage("a", 0, np.ones(1000, np.float32)), timeout=10)
        assert peer.call(WeightsMessage("a", 0, np.ones(250, np.float32)), timeout=10) is None
    finally:
        peer.close()
        agent.stop(grace=0)


def test_a_reply_that_cannot_be_encoded_is_invalid_argument_not_internal() -> None:
    """Finite but huge request weights (1e30) make a reply overflow to inf: the request's fault, not a crash."""
    class Broken:
        def handle(self, message: Message, peer: str) -> Message | None:
            return WeightsMessage("srv", 0, np.full(3, np.inf, np.float32))

    agent = AgentServer(ServerConfig("srv"), Broken())
    agent.start()
    peer = PeerClient(agent.address, "srv")
    try:
        with pytest.raises(TransportError, match=r"INVALID_ARGUMENT.*NaN or inf"):
            peer.call(WeightsMessage("a", 0, np.ones(3, np.float32)), timeout=10)
    finally:
        peer.close()
        agent.stop(grace=0)


def test_an_ack_sent_as_a_request_is_refused(server: AgentServer) -> None:
    with grpc.insecure_channel(server.address) as channel:
        stub = agent_pb2_grpc.AgentStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.RpcError, match="not a request"):
            list(stub.Call(iter([pb.Frame(header=pb.MessageHeader(kind="Ack", sender="a"))]), timeout=10))


def test_a_missed_deadline_is_a_transport_error() -> None:
    release = threading.Event()
    agent = AgentServer(ServerConfig("slow"), Recorder(delay=release))
    agent.start()
    peer = PeerClient(agent.address, "slow")
    try:
        with pytest.raises(TransportError, match="DEADLINE_EXCEEDED"):
            peer.call(WeightsMessage("a", 0, np.ones(3, np.float32)), timeout=0.2)
    finally:
        release.set()
        peer.close()
        agent.stop(grace=0)


def test_an_unreachable_peer_is_a_transport_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    peer = PeerClient(f"127.0.0.1:{port}", "gone")
    try:
        with pytest.raises(TransportError, match=r"gone.*UNAVAILABLE"):
            peer.call(WeightsMessage("a", 0, np.ones(3, np.float32)), timeout=2)
    finally:
        peer.close()


def test_peer_info_and_status_come_from_the_agents_callables() -> None:
    info = PeerInfo("agent-7", algorithm="spark", setting="edge", round=4, samples=200, profile="rpi4")
    status = AgentStatus(round=4, state="averaging", members=("agent-7", "agent-8"), bytes_sent=10,
                         bytes_received=20, last_round_seconds=1.5)
    agent = AgentServer(ServerConfig("agent-7"), Recorder(), peer_info=lambda: info, status=lambda: status)
    agent.start()
    peer = PeerClient(agent.address)
    try:
        assert peer.peer_info(timeout=10) == dataclasses.replace(info, security="insecure")  # the server's truth
        assert peer.status(timeout=10) == dataclasses.replace(status, security="insecure")
    finally:
        peer.close()
        agent.stop(grace=0)


def test_default_status_reports_the_servers_wire_bytes(server: AgentServer, client: PeerClient) -> None:
    client.call(WeightsMessage("a", 0, np.ones(1000, np.float32)), timeout=10)
    status = client.status(timeout=10)
    assert status.bytes_received == server.ledger.link("a").wire_received > 4000
    assert status.bytes_sent == server.ledger.link("a").wire_sent > 0
    assert client.peer_info(timeout=10).address == server.address


def test_the_pool_opens_one_client_per_address_and_reuses_it(server: AgentServer) -> None:
    pool = PeerPool()
    try:
        first = pool.get(server.address, "srv")
        assert pool.get(server.address, "srv") is first
        assert first.call(WeightsMessage("a", 0, np.ones(3, np.float32)), timeout=10) is None
        assert first.ledger is pool.ledger and pool.ledger.link("srv").messages_sent == 1
    finally:
        pool.close()

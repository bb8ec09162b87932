"""One contract for every transport: the gRPC client/server on 127.0.0.1 and the in-memory twin behave alike."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest

from edge_agent.learning.codec import CodecConfig, Precision
from edge_agent.learning.jacobian import DenseJacobian
from edge_agent.learning.messages import (
    CandidateRequest,
    CandidateScores,
    JacobianReply,
    JacobianRequest,
    Message,
    WeightsMessage,
    WireCodecs,
    payload_bytes,
)
from edge_agent.transport.client import PeerClient
from edge_agent.transport.contract import MessageHandler, PeerLink, TransportError
from edge_agent.transport.ledger import TransportLedger
from edge_agent.transport.memory import InMemoryPeer
from edge_agent.transport.schema import describe
from edge_agent.transport.server import AgentServer, ServerConfig
from edge_agent.transport.wire import WireConfig, predicted_wire_bytes

# (link to the peer "srv", the caller's ledger, the peer's ledger)
Connect = Callable[[MessageHandler, WireConfig], tuple[PeerLink, TransportLedger, TransportLedger]]
REJECTED_ROUND = 666


class Responder:
    """Answers as an agent would: a Jacobian reply to a request, scores to candidates, nothing to the rest."""

    def __init__(self, reply_samples: int = 2) -> None:
        self.reply_samples = reply_samples
        self.received: list[Message] = []

    def handle(self, message: Message, peer: str) -> Message | None:
        self.received.append(message)
        if message.round == REJECTED_ROUND:
            raise ValueError("round 666 is cursed")
        if isinstance(message, JacobianRequest):
            n, p = self.reply_samples, message.weights.size
            jacobian = np.linspace(-1, 1, n * 10 * p, dtype=np.float32).reshape(n, 10, p)
            return JacobianReply("srv", message.round, DenseJacobian(jacobian), np.ones((n, 10), np.float32),
                                 np.arange(n) % 10)
        if isinstance(message, CandidateRequest):
            return CandidateScores("srv", message.round, message.updates.sum(axis=1))
        return None


def request(kind: str) -> Message:
    rng = np.random.default_rng(7)
    w = rng.standard_normal(50).astype(np.float32)
    messages: dict[str, Message] = {
        "WeightsMessage": WeightsMessage("a", 1, w),
        "JacobianRequest": JacobianRequest("a", 1, w),
        "JacobianReply": JacobianReply("a", 1, DenseJacobian(np.ones((3, 10, 50), np.float32)),
                                       np.zeros((3, 10), np.float32), np.array([4, 5, 6])),
        "CandidateRequest": CandidateRequest("a", 1, rng.standard_normal((4, 50)).astype(np.float32)),
        "CandidateScores": CandidateScores("a", 1, np.array([3.0, 1.0], np.float32)),
    }
    return messages[kind]


EXPECTED_REPLY = {"WeightsMessage": type(None), "JacobianRequest": JacobianReply, "JacobianReply": type(None),
                  "CandidateRequest": CandidateScores, "CandidateScores": type(None)}


class TransportContract:
    """Behaviour every `PeerLink` implementation must show; subclasses provide the `connect` fixture."""

    @pytest.fixture
    def connect(self) -> Iterator[Connect]:
        raise NotImplementedError

    @pytest.mark.parametrize("kind", list(EXPECTED_REPLY))
    def test_each_kind_is_delivered_and_answered(self, connect: Connect, kind: str) -> None:
        handler = Responder()
        link, _, _ = connect(handler, WireConfig())
        message = request(kind)
        reply = link.call(message, timeout=10)
        assert type(reply) is EXPECTED_REPLY[kind]
        [delivered] = handler.received
        assert type(delivered) is type(message) and delivered.sender == "a" and delivered.round == 1
        if isinstance(message, CandidateRequest):
            assert isinstance(reply, CandidateScores) and isinstance(delivered, CandidateRequest)
            np.testing.assert_array_equal(delivered.updates, message.updates)
            np.testing.assert_array_equal(reply.loss_sums, message.updates.sum(axis=1))
        if isinstance(reply, JacobianReply):
            assert reply.sender == "srv" and isinstance(reply.jacobian, DenseJacobian)
            assert reply.jacobian.shape == (2, 10, 50)
            np.testing.assert_array_equal(reply.labels, [0, 1])

    @pytest.mark.parametrize("precision", ["fp32", "fp16", "int8", "int4"])
    def test_payload_and_wire_bytes_are_counted_alike_on_both_ends(self, connect: Connect,
                                                                   precision: Precision) -> None:
        wire = WireConfig(WireCodecs(CodecConfig(precision, block_size=64), CodecConfig(precision, block_size=64)),
                          chunk_size=4096)
        link, mine, theirs = connect(Responder(reply_samples=3), wire)
        message = request("JacobianRequest")
        reply = link.call(message, timeout=10)
        assert reply is not None
        sent = payload_bytes(message, wire.codecs)
        back = payload_bytes(reply, wire.codecs)
        assert (mine.link("srv").payload_sent, mine.link("srv").payload_received) == (sent, back)
        assert (theirs.link("a").payload_received, theirs.link("a").payload_sent) == (sent, back)
        wire_sent = predicted_wire_bytes(describe(message, wire.codecs), wire.chunk_size)
        wire_back = predicted_wire_bytes(describe(reply, wire.codecs), wire.chunk_size)
        assert (mine.link("srv").wire_sent, mine.link("srv").wire_received) == (wire_sent, wire_back)
        assert (theirs.link("a").wire_received, theirs.link("a").wire_sent) == (wire_sent, wire_back)
        assert (mine.link("srv").messages_sent, mine.link("srv").messages_received) == (1, 1)

    def test_an_acknowledgement_costs_wire_bytes_but_no_payload(self, connect: Connect) -> None:
        link, mine, _ = connect(Responder(), WireConfig())
        assert link.call(request("WeightsMessage"), timeout=10) is None
        counters = mine.link("srv")
        assert counters.payload_received == 0 and 0 < counters.wire_received < 64

    def test_an_8mb_reply_in_1mib_chunks_costs_under_one_percent_overhead(self, connect: Connect) -> None:
        link, mine, _ = connect(Responder(reply_samples=200), WireConfig(chunk_size=1 << 20))
        reply = link.call(JacobianRequest("a", 0, np.zeros(1024, np.float32)), timeout=30)
        assert isinstance(reply, JacobianReply) and isinstance(reply.jacobian, DenseJacobian)
        assert reply.jacobian.shape == (200, 10, 1024)
        counters = mine.link("srv")
        assert counters.payload_received == payload_bytes(reply) == 4 * (200 * 10 * 1024 + 200 * 10 + 200)
        assert 0 <= counters.wire_received / counters.payload_received - 1 < 0.01

    def test_a_handler_rejecting_a_message_is_a_transport_error(self, connect: Connect) -> None:
        link, _, _ = connect(Responder(), WireConfig())
        with pytest.raises(TransportError, match="cursed"):
            link.call(WeightsMessage("a", REJECTED_ROUND, np.zeros(3, np.float32)), timeout=10)

    def test_peer_info_names_the_peer(self, connect: Connect) -> None:
        link, _, _ = connect(Responder(), WireConfig())
        info = link.peer_info(timeout=10)
        assert info.agent_id == "srv" and info.protocol_version == "edge_agent.v1"


class TestGrpcTransport(TransportContract):
    @pytest.fixture
    def connect(self) -> Iterator[Connect]:
        servers: list[AgentServer] = []
        clients: list[PeerClient] = []

        def make(handler: MessageHandler, wire: WireConfig) -> tuple[PeerLink, TransportLedger, TransportLedger]:
            server = AgentServer(ServerConfig("srv", wire=wire), handler)
            servers.append(server)
            server.start()
            client = PeerClient(server.address, "srv", wire=wire)
            clients.append(client)
            return client, client.ledger, server.ledger

        yield make
        for client in clients:
            client.close()
        for server in servers:
            server.stop(grace=0)


class TestInMemoryTransport(TransportContract):
    @pytest.fixture
    def connect(self) -> Iterator[Connect]:
        def make(handler: MessageHandler, wire: WireConfig) -> tuple[PeerLink, TransportLedger, TransportLedger]:
            link = InMemoryPeer(handler, "srv", wire=wire, remote_ledger=TransportLedger(), through_codec=True)
            assert link.remote_ledger is not None
            return link, link.ledger, link.remote_ledger

        yield make


def test_the_twin_hands_over_the_senders_object_unless_asked_to_encode() -> None:
    handler = Responder()
    message = request("CandidateRequest")
    InMemoryPeer(handler, "srv").call(message)
    assert handler.received[-1] is message
    InMemoryPeer(handler, "srv", through_codec=True).call(message)
    assert handler.received[-1] is not message


def test_a_closed_twin_refuses_calls() -> None:
    link = InMemoryPeer(Responder(), "srv")
    link.close()
    with pytest.raises(TransportError, match="closed"):
        link.call(request("WeightsMessage"))

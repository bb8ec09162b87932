"""Status and Records over gRPC: every field of a snapshot arrives as it was, and Records serves at most what is
asked (and never more than MAX_RECORDS), newest last."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edge_agent.learning.messages import Message
from edge_agent.transport.client import PeerClient
from edge_agent.transport.contract import AgentStatus, LinkBytes, NeighbourState
from edge_agent.transport.server import AgentServer, ServerConfig
from edge_agent.transport.status import MAX_RECORDS, agent_status
from edge_agent.v1 import agent_pb2 as pb

SNAPSHOT = AgentStatus(
    round=5, state="round 5", members=("a-0", "a-1", "a-2"), bytes_sent=300, bytes_received=310,
    last_round_seconds=1.5, run="kitchen", security="insecure", agent_id="a-0", version="0.1.0", profile="pi4",
    backend="onnxruntime", algorithm="spark", shard=0, clients=3, rounds=10, phase="evolve",
    neighbours=(NeighbourState("a-1", "ok"), NeighbourState("a-2", "missing", "left the fleet")),
    links=(LinkBytes("a-1", 1, 2, 3, 4, 100, 110), LinkBytes("a-2", 5, 6, 7, 8, 200, 200)),
    uplink_bits_per_s=2e6, downlink_bits_per_s=1e7, latency_s=0.02,
    last_round_phase_seconds={"average": 0.25, "total": 1.5}, last_accuracy=0.0, uptime_s=12.5, peak_rss_mb=180.5,
    last_round=4, best_round=2, best_accuracy=0.5)
LINES = [f'{{"round": {i}}}' for i in range(MAX_RECORDS + 5)]


class Silent:
    def handle(self, message: Message, peer: str) -> Message | None:
        return None


@pytest.fixture
def client() -> Iterator[PeerClient]:
    server = AgentServer(ServerConfig("a-0"), Silent(), status=lambda: SNAPSHOT, records=lambda n: LINES[-n:])
    server.start()
    peer = PeerClient(server.address)
    yield peer
    peer.close()
    server.stop(grace=0)


def test_every_status_field_arrives_as_sent_an_accuracy_of_zero_included(client: PeerClient) -> None:
    assert client.status(timeout=10) == SNAPSHOT


def test_an_old_agents_reply_leaves_the_new_fields_unknown() -> None:
    old = agent_status(pb.StatusReply(round=3, state="round 3", run="kitchen"))
    assert (old.round, old.last_round, old.last_accuracy, old.neighbours) == (3, -1, None, ())
    assert (old.best_round, old.best_accuracy) == (-1, None)


@pytest.mark.parametrize(("limit", "expected"), [(3, LINES[-3:]), (0, LINES[-MAX_RECORDS:]),
                                                 (MAX_RECORDS + 5, LINES[-MAX_RECORDS:])])
def test_records_serves_the_most_recent_lines_up_to_the_bound(client: PeerClient, limit: int,
                                                               expected: list[str]) -> None:
    assert client.records(limit, timeout=10) == expected

"""Throttled links on loopback: a transfer takes the named link's time, latency adds per message, per link."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from edge_agent.learning.messages import Message, WeightsMessage
from edge_agent.transport.client import PeerClient
from edge_agent.transport.server import AgentServer, ServerConfig
from edge_agent.transport.throttle import LinkModel, LinkShaper


class Sink:
    def handle(self, message: Message, peer: str) -> Message | None:
        return None


@pytest.fixture
def servers() -> Iterator[list[AgentServer]]:
    started: list[AgentServer] = []
    yield started
    for server in started:
        server.stop(grace=0)


def serve(servers: list[AgentServer], agent_id: str, shaper: LinkShaper | None = None) -> AgentServer:
    server = AgentServer(ServerConfig(agent_id), Sink(), shaper=shaper)
    servers.append(server)
    server.start()
    return server


def weights(num_bytes: int) -> WeightsMessage:
    return WeightsMessage("a", 0, np.ones(num_bytes // 4, np.float32))


def timed_call(client: PeerClient, message: Message) -> float:
    start = time.perf_counter()
    client.call(message, timeout=30)
    return time.perf_counter() - start


def test_400kb_through_a_2mbit_uplink_takes_1_6_seconds(servers: list[AgentServer]) -> None:
    server = serve(servers, "srv")
    client = PeerClient(server.address, "srv", shaper=LinkShaper(LinkModel.parse(uplink="2mbit")))
    try:
        elapsed = timed_call(client, weights(400_000))
    finally:
        client.close()
    assert elapsed == pytest.approx(1.6, rel=0.10)


def test_the_receivers_downlink_throttles_what_arrives(servers: list[AgentServer]) -> None:
    server = serve(servers, "srv", LinkShaper(LinkModel.parse(downlink="2mbit")))
    client = PeerClient(server.address, "srv")
    try:
        elapsed = timed_call(client, weights(200_000))
    finally:
        client.close()
    assert elapsed == pytest.approx(0.8, rel=0.15)


def test_latency_is_added_once_per_message_each_way(servers: list[AgentServer]) -> None:
    server = serve(servers, "srv")
    plain = PeerClient(server.address, "srv")
    delayed = PeerClient(server.address, "srv", shaper=LinkShaper(LinkModel.parse(latency="100ms")))
    try:
        baseline = min(timed_call(plain, weights(400)) for _ in range(3))
        elapsed = timed_call(delayed, weights(400))
    finally:
        plain.close()
        delayed.close()
    assert elapsed - baseline == pytest.approx(0.2, abs=0.05)  # the request out, the Ack back


def test_each_peer_link_has_its_own_buckets(servers: list[AgentServer]) -> None:
    shaper = LinkShaper(LinkModel.parse(uplink="2mbit"))  # one agent's shaper, two neighbours
    clients = [PeerClient(serve(servers, name).address, name, shaper=shaper) for name in ("b", "c")]
    durations: list[float] = []

    def send(client: PeerClient) -> None:
        durations.append(timed_call(client, weights(200_000)))

    threads = [threading.Thread(target=send, args=(client,)) for client in clients]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for client in clients:
            client.close()
    assert durations == [pytest.approx(0.8, rel=0.15)] * 2  # in parallel, not 1.6 s for the second

"""Mutual TLS between agents: only the cluster's certificates get an answer, and a member speaks only for itself."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from edge_agent.deploy import certs
from edge_agent.learning.messages import Message, WeightsMessage
from edge_agent.transport.client import PeerClient
from edge_agent.transport.contract import TransportError
from edge_agent.transport.server import AgentServer, ServerConfig
from edge_agent.transport.tls import ClusterTls, IdentityError, TlsFiles
from edge_agent.v1 import agent_pb2 as pb
from edge_agent.v1 import agent_pb2_grpc


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def handle(self, message: Message, peer: str) -> Message | None:
        self.seen.append((message.sender, peer))
        return None


@pytest.fixture
def folder(cluster_certs: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "certs"
    shutil.copytree(cluster_certs, copy)
    return copy


@pytest.fixture
def served(folder: Path) -> Iterator[tuple[AgentServer, Recorder]]:
    recorder = Recorder()
    server = AgentServer(ServerConfig("client-0", tls=ClusterTls(TlsFiles.in_folder(folder, "client-0"))), recorder)
    server.start()
    yield server, recorder
    server.stop(grace=0)


def _client(server: AgentServer, folder: Path, me: str, peer_id: str = "client-0") -> PeerClient:
    return PeerClient(server.address, peer_id, tls=ClusterTls(TlsFiles.in_folder(folder, me)))


def _weights(sender: str) -> WeightsMessage:
    return WeightsMessage(sender, 0, np.ones(8, np.float32))


def test_a_member_with_the_clusters_certificate_is_served_under_its_proven_name(
        served: tuple[AgentServer, Recorder], folder: Path) -> None:
    server, recorder = served
    client = _client(server, folder, "client-1")
    try:
        assert client.call(_weights("client-1"), timeout=10) is None
        assert client.peer_info(timeout=10).security == "mtls"
    finally:
        client.close()
    assert recorder.seen == [("client-1", "mtls:client-1")]


def test_a_member_claiming_another_members_name_is_permission_denied(served: tuple[AgentServer, Recorder],
                                                                     folder: Path) -> None:
    server, recorder = served
    client = _client(server, folder, "client-1")
    try:
        with pytest.raises(TransportError, match=r"PERMISSION_DENIED.*client-1 may not send as 'client-2'"):
            client.call(_weights("client-2"), timeout=10)
    finally:
        client.close()
    assert recorder.seen == []


def test_a_revoked_member_is_permission_denied_on_its_next_call(served: tuple[AgentServer, Recorder],
                                                                folder: Path) -> None:
    server, recorder = served
    client = _client(server, folder, "client-2")
    try:
        assert client.call(_weights("client-2"), timeout=10) is None
        certs.revoke(folder, "client-2")  # the server re-reads the list when its file changes
        with pytest.raises(TransportError, match=r"PERMISSION_DENIED.*revoked"):
            client.call(_weights("client-2"), timeout=10)
        with pytest.raises(TransportError, match="PERMISSION_DENIED"):
            client.peer_info(timeout=10)
    finally:
        client.close()
    assert len(recorder.seen) == 1


def test_plaintext_and_other_ca_clients_get_no_connection(served: tuple[AgentServer, Recorder],
                                                          stranger_certs: Path) -> None:
    server, recorder = served
    with grpc.insecure_channel(server.address) as channel, pytest.raises(grpc.RpcError) as plain:
        agent_pb2_grpc.AgentStub(channel).PeerInfo(pb.PeerInfoRequest(), timeout=5)  # type: ignore[no-untyped-call]
    assert plain.value.code() == grpc.StatusCode.UNAVAILABLE
    stranger = _client(server, stranger_certs, "client-1")
    try:
        with pytest.raises(TransportError, match="UNAVAILABLE"):
            stranger.call(_weights("client-1"), timeout=5)
    finally:
        stranger.close()
    assert recorder.seen == []


def test_the_client_refuses_a_server_whose_certificate_names_another_agent(served: tuple[AgentServer, Recorder],
                                                                          folder: Path) -> None:
    server, _ = served
    client = _client(server, folder, "client-1", peer_id="client-3")  # we expect client-3 at that address
    try:
        with pytest.raises(TransportError, match="UNAVAILABLE"):
            client.peer_info(timeout=5)
    finally:
        client.close()


def test_a_probe_reads_the_servers_proven_identity_and_refuses_strangers(
        served: tuple[AgentServer, Recorder], folder: Path, stranger_certs: Path) -> None:
    server, _ = served
    assert ClusterTls(TlsFiles.in_folder(folder, "client-1")).probe("127.0.0.1", server.port) == "client-0"
    stranger = ClusterTls(TlsFiles.in_folder(stranger_certs, "client-1"))
    with pytest.raises(IdentityError, match="no TLS handshake"):
        stranger.probe("127.0.0.1", server.port)


def test_loading_a_revoked_or_foreign_certificate_fails_in_one_line(folder: Path, stranger_certs: Path) -> None:
    certs.revoke(folder, "client-5")
    with pytest.raises(IdentityError, match="revoked"):
        ClusterTls(TlsFiles.in_folder(folder, "client-5"))
    mixed = TlsFiles(folder / "ca.crt", stranger_certs / "client-1.crt", stranger_certs / "client-1.key")
    with pytest.raises(IdentityError, match="not issued by the cluster CA"):
        ClusterTls(mixed)
    with pytest.raises(IdentityError, match="missing"):
        ClusterTls(TlsFiles.in_folder(folder, "client-9"))


def test_an_operator_certificate_reads_status_and_records_but_may_not_send_round_messages(
        served: tuple[AgentServer, Recorder], folder: Path) -> None:
    server, recorder = served
    certs.issue(folder, "operator", operator=True)
    client = _client(server, folder, "operator")
    try:
        assert client.status(timeout=10).security == "mtls"
        assert client.peer_info(timeout=10).agent_id == "client-0"
        assert client.records(5, timeout=10) == []
        with pytest.raises(TransportError, match="PERMISSION_DENIED: operator holds an operator certificate") as error:
            client.call(_weights("operator"), timeout=10)
        assert error.value.reason == "refused"
    finally:
        client.close()
    assert recorder.seen == []

"""Real agent processes over mutual TLS: the cluster's boards train, everyone else gets no data and changes nothing,
and hostile bytes cost an agent neither memory nor its health checks.

A fleet of three agents (slots 0-2 of 4) trains until stopped while a stranger with another CA's certificate
advertises slot 3 of its run over mDNS and hostile clients call agent 0. An idle agent (waiting for peers that never
come) takes the memory attacks, so its RSS moves only with what they cost.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from fleet import BASE_ARGS, Fleet
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

from edge_agent.deploy import certs
from edge_agent.discovery.mdns import MdnsDiscovery
from edge_agent.discovery.membership import Membership
from edge_agent.discovery.peers import PeerRecord
from edge_agent.learning.messages import WeightsMessage
from edge_agent.run_identity import METADATA_KEY, RunIdentity
from edge_agent.transport.client import PeerClient
from edge_agent.transport.contract import PROTOCOL_VERSION, TransportError
from edge_agent.transport.server import GRPC_OPTIONS, HANDSHAKE_DEADLINE_S, SERVICE_NAME, AgentServer, ServerConfig
from edge_agent.transport.tls import ClusterTls, TlsFiles
from edge_agent.transport.wire import describe
from edge_agent.v1 import agent_pb2 as pb

D = 79_510
STALL_S = 3.0


class _Nothing:
    def handle(self, message: object, peer: str) -> None:
        return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """client-0..3, a spare board ("intruder": a valid cluster certificate, not in the fleet) and a revoked one."""
    folder = certs.throwaway_cluster(tmp_path_factory.mktemp("trust-certs"),
                                     [*(f"client-{i}" for i in range(4)), "intruder", "retired"])
    certs.revoke(folder, "retired")
    return folder


@pytest.fixture(scope="module")
def fleet(cluster: Path, stranger_certs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    out = tmp_path_factory.mktemp("trust-fleet")
    fleet = Fleet(out, 4, ["--rounds", "0", "--stall-window", str(STALL_S), "--wait-peers", "6"], certs=cluster)
    out.mkdir(parents=True, exist_ok=True)
    for index in range(3):
        fleet.start(index)
    fake = AgentServer(ServerConfig("client-3", tls=ClusterTls(TlsFiles.in_folder(stranger_certs, "client-3"))),
                       _Nothing())
    advert: MdnsDiscovery | None = None
    try:
        info = _client(cluster, "intruder", _address(fleet, 0)).peer_info(timeout=10)
        fake.start()
        record = PeerRecord("client-3", "127.0.0.1", fake.port, PROTOCOL_VERSION, info.algorithm, info.setting, 0,
                            info.samples, "generic", info.run, info.fingerprint, 3)
        advert = MdnsDiscovery(record, Membership(), service_type=fleet.service, interfaces=["127.0.0.1"])
        advert.start()
        yield fleet
    finally:
        fleet.stop()
        if advert is not None:
            advert.stop()
        fake.stop(grace=0)


@pytest.fixture(scope="module")
def idle(cluster: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """One agent of a run of 3 whose peers never come: it serves and waits."""
    out = tmp_path_factory.mktemp("trust-idle")
    log = out / "agent.log"
    process = subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "--shard", "0/3", *BASE_ARGS,
                                "--certs", str(cluster), "--no-mdns", "--peers", "127.0.0.1:9", "--wait-peers", "600",
                                "--stall-window", "2", "--checkpoint-dir", str(out)],
                               stdout=log.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while "serving on" not in log.read_text():
            assert time.monotonic() < deadline and process.poll() is None, log.read_text()
            time.sleep(0.1)
        port = re.search(r"serving on 127\.0\.0\.1:(\d+)", log.read_text())
        assert port is not None
        yield process, f"127.0.0.1:{port.group(1)}"
    finally:
        process.kill()
        process.wait()


def _address(fleet: Fleet, index: int) -> str:
    fleet.wait_until(lambda: "serving on" in fleet.log(index), 60, f"agent {index} to serve")
    port = re.search(r"serving on 127\.0\.0\.1:(\d+)", fleet.log(index))
    assert port is not None
    return f"127.0.0.1:{port.group(1)}"


def _client(folder: Path, name: str, address: str, peer: str = "client-0",
            run: RunIdentity | None = None) -> PeerClient:
    """A client with board `name`'s certificate; it has not heard of any revocation (as a retired board would)."""
    files = TlsFiles.in_folder(folder, name)
    return PeerClient(address, peer, tls=ClusterTls(TlsFiles(files.ca, files.cert, files.key)), run=run)


def _channel(folder: Path, name: str, address: str, peer: str = "client-0") -> grpc.Channel:
    tls = ClusterTls(TlsFiles.in_folder(folder, name))
    return grpc.secure_channel(address, tls.channel_credentials(), options=GRPC_OPTIONS + tls.channel_options(peer))


def _rss_mb(process: subprocess.Popen[bytes]) -> float:
    status = Path(f"/proc/{process.pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1)) / 1024


def _run_metadata(folder: Path, address: str) -> tuple[tuple[str, str], ...]:
    info = _client(folder, "intruder", address).peer_info(timeout=10)
    return ((METADATA_KEY, f"{info.run}/{info.fingerprint}"),)


def _header(kind: str, sender: str, round_index: int, elements: int) -> bytes:
    header = describe(WeightsMessage(sender, round_index, np.zeros(1, np.float32)))
    header.kind = kind
    del header.tensors[:]
    header.tensors.add(name="weights", dtype="float32", shape=[elements], data_bytes=4 * elements)
    return pb.Frame(header=header).SerializeToString()


def _code(call: Any) -> grpc.StatusCode:
    try:
        list(call())
    except grpc.RpcError as error:
        return error.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_outsiders_and_impostors_get_no_data_and_the_expected_status_codes(fleet: Fleet, cluster: Path,
                                                                           stranger_certs: Path) -> None:
    address = _address(fleet, 0)
    with grpc.insecure_channel(address) as plain:
        assert _code(lambda: [plain.unary_unary(f"/{SERVICE_NAME}/PeerInfo")(b"", timeout=5)]) == \
            grpc.StatusCode.UNAVAILABLE
    weights = WeightsMessage("client-1", 0, np.zeros(D, np.float32))
    info = _client(cluster, "intruder", address).peer_info(timeout=10)
    run = RunIdentity(info.run, info.fingerprint)  # calls of the fleet's run, so only the identity can refuse them
    expected = {("other CA", stranger_certs, "client-1"): "UNAVAILABLE",
                ("revoked", cluster, "retired"): "PERMISSION_DENIED",
                ("member as another", cluster, "client-2"): "PERMISSION_DENIED",
                ("spare board as a member", cluster, "intruder"): "PERMISSION_DENIED"}
    for (what, folder, name), code in expected.items():
        client = _client(folder, name, address, run=run)
        try:
            with pytest.raises(TransportError, match=code):
                client.call(weights, timeout=10)
            if what in ("other CA", "revoked"):
                with pytest.raises(TransportError, match=code):
                    client.peer_info(timeout=10)
        finally:
            client.close()


def test_fifty_header_only_streams_do_not_delay_a_health_check(fleet: Fleet, cluster: Path) -> None:
    address = _address(fleet, 0)
    metadata = _run_metadata(cluster, address)
    release = threading.Event()

    def header_then_nothing() -> Iterator[bytes]:
        yield _header("WeightsMessage", "intruder", 0, D)
        release.wait(15)

    codes: list[grpc.StatusCode] = []
    with _channel(cluster, "intruder", address) as channel:
        call = channel.stream_stream(f"/{SERVICE_NAME}/Call")
        threads = [threading.Thread(target=lambda: codes.append(_code(lambda: call(header_then_nothing(), timeout=20,
                                                                                     metadata=metadata))))
                   for _ in range(50)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        with _channel(cluster, "client-3", address) as other:
            asked = time.monotonic()
            reply = health_pb2_grpc.HealthStub(other).Check(health_pb2.HealthCheckRequest(), timeout=5)
            waited = time.monotonic() - asked
        for thread in threads:
            thread.join(20)
        release.set()
    assert reply.status == health_pb2.HealthCheckResponse.SERVING and waited < 1.0
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 46 and len(codes) == 50  # 4 calls per caller


def test_a_stranger_advertising_over_mdns_never_becomes_a_member(fleet: Fleet, cluster: Path) -> None:
    fleet.wait_for_rounds(0, 3, timeout=90)
    for index in range(3):
        status = _client(cluster, "intruder", _address(fleet, index), f"client-{index}").status(timeout=10)
        assert status.members == ("client-0", "client-1", "client-2") and status.security == "mtls"
    assert "not a member: client-3" in fleet.log(0)


def test_the_clusters_boards_train_normally_throughout(fleet: Fleet) -> None:
    fleet.wait_for_rounds(0, 5, timeout=120)
    for index in range(3):
        records = fleet.records(index)
        assert all(r["status"] == "trained" for r in records)
        trained_with = [set(r["neighbours"]) for r in records[1:]]
        assert any(trained_with), records  # the members are each other's neighbours
        assert all(set(r["missing"]) <= {"client-3"} or r["round"] == 0 for r in records), records
    assert "Traceback" not in "".join(fleet.log(i) for i in range(3))


def test_a_header_declaring_8_gib_is_refused_at_no_memory_cost(idle: tuple[subprocess.Popen[bytes], str],
                                                               cluster: Path) -> None:
    process, address = idle
    metadata = _run_metadata(cluster, address)
    before = _rss_mb(process)
    with _channel(cluster, "intruder", address, "client-0") as channel:
        call = channel.stream_stream(f"/{SERVICE_NAME}/Call")
        code = _code(lambda: call(iter([_header("WeightsMessage", "intruder", 0, 2 * 2**30 - 1)]), timeout=10,
                                  metadata=metadata))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert _rss_mb(process) - before < 10


def test_a_thousand_junk_messages_leave_rss_within_20_mb(idle: tuple[subprocess.Popen[bytes], str],
                                                         cluster: Path) -> None:
    process, address = idle
    metadata = _run_metadata(cluster, address)
    rng = np.random.default_rng(0)
    junk = [[rng.bytes(int(rng.integers(1, 200)))] for _ in range(250)]  # garbage frames
    junk += [[_header("WeightsMessage", "intruder", 4_000_000_000 + i, D)] for i in range(250)]  # far rounds
    junk += [[_header("JacobianRequest", "intruder", 0, D + 1 + i)] for i in range(250)]  # wrong sizes
    junk += [[_header("WeightsMessage", f"made-up-{i}", 4_000_000_000, D)] for i in range(250)]  # not the caller
    codes: dict[grpc.StatusCode, int] = {}
    before = _rss_mb(process)
    with _channel(cluster, "intruder", address, "client-0") as channel:
        call = channel.stream_stream(f"/{SERVICE_NAME}/Call")
        for message in junk:
            code = _code(lambda m=message: call(iter(m), timeout=10, metadata=metadata))  # type: ignore[misc]
            codes[code] = codes.get(code, 0) + 1
    assert set(codes) <= {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED}, codes
    assert sum(codes.values()) == 1000
    assert abs(_rss_mb(process) - before) < 20


def _threads(process: subprocess.Popen[bytes]) -> int:
    return len(os.listdir(f"/proc/{process.pid}/task"))


def _fds(process: subprocess.Popen[bytes]) -> int:
    return len(os.listdir(f"/proc/{process.pid}/fd"))


def test_half_open_and_broken_tls_handshakes_are_closed_in_time_and_logged_at_a_bounded_rate(
        idle: tuple[subprocess.Popen[bytes], str]) -> None:
    """200 connections that never start the handshake are closed by the handshake deadline; 100 broken handshakes
    are one or two log lines, not 100; threads and fds are back where they were."""
    process, address = idle
    log = Path(os.readlink(f"/proc/{process.pid}/fd/1"))
    host, _, port = address.rpartition(":")
    threads, fds = _threads(process), _fds(process)
    opened = time.monotonic()
    sockets = [socket.create_connection((host, int(port)), timeout=10) for _ in range(200)]
    try:
        time.sleep(1.0)
        assert _fds(process) >= fds + 190  # the agent holds them all until the deadline
        closed = 0
        for sock in sockets:  # the server closes each: the next read gets end-of-file
            sock.settimeout(max(0.1, opened + HANDSHAKE_DEADLINE_S + 5.0 - time.monotonic()))
            closed += sock.recv(1) == b""
        waited = time.monotonic() - opened
    finally:
        for sock in sockets:
            sock.close()
    assert closed == 200 and HANDSHAKE_DEADLINE_S - 1 <= waited <= HANDSHAKE_DEADLINE_S + 5, (closed, waited)
    before = log.read_text(errors="replace").count("handshake")
    for _ in range(100):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"\x16\x03\x01\x00\x05garbage-not-tls" * 4)
            sock.recv(64)
    time.sleep(2.0)
    lines = log.read_text(errors="replace").lower().splitlines()
    summaries = [line for line in lines if "tls handshakes failed" in line or "tls handshake failed" in line]
    assert "Handshake failed" not in log.read_text(errors="replace")
    assert 1 <= len(summaries) <= 2 and log.read_text(errors="replace").count("handshake") - before <= 2
    assert re.search(r"\d+ TLS handshakes? failed", "\n".join(summaries), re.I)
    deadline = time.monotonic() + 15
    while (_threads(process) > threads + 2 or _fds(process) > fds + 2) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _threads(process) <= threads + 2 and _fds(process) <= fds + 2, (threads, _threads(process), fds,
                                                                           _fds(process))

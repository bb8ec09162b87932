"""`run --listen 0.0.0.0:PORT --advertise ADDR|INTERFACE`: agents bound on every interface tell their peers (mDNS,
PeerInfo) the address they advertise, and train together over mutual TLS, whose checks name agents, not addresses;
real agent processes, as an operator starts them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_agent.round_records import agent_rounds
from edge_agent.transport.client import PeerClient
from edge_agent.transport.tls import ClusterTls, TlsFiles

AGENT = [sys.executable, "-m", "edge_agent", "run", "--setting", "smoke", "--solver", "euler", "--backend", "numpy",
         "--rounds", "0", "--wait-peers", "8", "--quiet"]


@pytest.fixture
def two_agents(tmp_path: Path, free_ports: Callable[[int], list[int]],
               cluster_certs: Path) -> Iterator[tuple[list[int], str, str]]:
    """Shards 0 and 1 of 3 listening on 0.0.0.0, one advertising 127.0.0.1, one `lo`, found by mDNS under a
    service type and run of their own, training until stopped: (ports, service type, run)."""
    ports, service, run = free_ports(2), f"_ea-{uuid.uuid4().hex[:8]}._tcp.local.", f"t-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    agents = []
    for i, (port, told) in enumerate(zip(ports, ("127.0.0.1", "lo"), strict=True)):
        with (tmp_path / f"agent-{i}.log").open("w") as log:
            agents.append(subprocess.Popen(
                [*AGENT, "--shard", f"{i}/3", "--listen", f"0.0.0.0:{port}", "--advertise", told, "--service-type",
                 service, "--run", run, "--certs", str(cluster_certs), "--metrics", str(tmp_path / f"agent-{i}.jsonl")],
                stdout=subprocess.DEVNULL, stderr=log, env=env))
    try:
        deadline = time.monotonic() + 50
        while not all(_trained_together(tmp_path / f"agent-{i}.jsonl") for i in range(2)):
            assert time.monotonic() < deadline and all(a.poll() is None for a in agents), \
                [(tmp_path / f"agent-{i}.log").read_text() for i in range(2)]
            time.sleep(0.5)
        yield ports, service, run
        for agent in agents:
            agent.send_signal(signal.SIGTERM)
        assert [agent.wait(timeout=20) for agent in agents] == [0, 0]
        first_lines = [(tmp_path / f"agent-{i}.log").read_text().splitlines()[0] for i in range(2)]
        assert [line.split(" in run ")[0] for line in first_lines] == [
            f"client-{i} serving on 127.0.0.1:{port} (listening on 0.0.0.0:{port})" for i, port in enumerate(ports)]
    finally:
        for agent in agents:
            if agent.poll() is None:
                agent.kill()
                agent.wait()


def _trained_together(metrics: Path) -> bool:
    """A round in which the agent had the other as a neighbour and heard it."""
    return any(record["members"] == 2 and record["payload_received_bytes"] > 0 for record in agent_rounds(metrics))


def test_agents_listening_on_every_interface_advertise_the_address_given(
        two_agents: tuple[list[int], str, str], cluster_certs: Path) -> None:
    ports, service, run = two_agents
    listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=True).stdout
    bound = {int(port): host for host, _, port in (line.split()[3].rpartition(":") for line in listening.splitlines())}
    for index, port in enumerate(ports):
        assert bound[port] in ("0.0.0.0", "*", "[::]")  # gRPC binds 0.0.0.0 as the dual-stack wildcard: `*`
        with socket.create_connection(("127.0.0.2", port), timeout=5):  # not 127.0.0.1: bound on every address
            pass
        tls = ClusterTls(TlsFiles.in_folder(cluster_certs, "client-2"))  # a third board of the cluster asks
        info = PeerClient(f"127.0.0.2:{port}", f"client-{index}", tls=tls).peer_info(timeout=5)
        assert info.address == f"127.0.0.1:{port}"  # what the agent tells, not where it was reached
    found = subprocess.run([sys.executable, "-m", "edge_agent", "peers", "--json", "--run", run, "--service-type",
                            service, "--interface", "127.0.0.1"],
                           capture_output=True, text=True, timeout=60, check=False)
    assert found.returncode == 0, found.stderr
    advertised = {agent["id"]: (agent["host"], agent["port"]) for agent in json.loads(found.stdout)["agents"]}
    assert advertised == {"client-0": ("127.0.0.1", ports[0]), "client-1": ("127.0.0.1", ports[1])}

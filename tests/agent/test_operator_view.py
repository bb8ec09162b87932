"""The operator's view of three real agents on loopback (a service type and run of their own): `edge-agent peers`
lists exactly them, `--watch` follows one that leaves, mistakes give one line, and a real Prometheus server scrapes
two of them (the Debian package `prometheus`, started here on a free loopback port and always stopped)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fleet import Fleet, ctrl_c, watching

from edge_agent.agent.launcher import free_loopback_ports
from edge_agent.transport.contract import PROTOCOL_VERSION

AGENTS = 3
PROMETHEUS = shutil.which("prometheus")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Fleet, list[int]]]:
    """Three agents training until stopped; agents 0 and 1 serve Prometheus metrics. Waits for a round of each."""
    ports = free_loopback_ports(2)
    agents = Fleet(tmp_path_factory.mktemp("operator"), AGENTS, ["--rounds", "0", "--wait-peers", "60"],
                   per_agent={i: ["--prometheus-port", str(port)] for i, port in enumerate(ports)})
    try:
        agents.start_all()
        for index in range(AGENTS):
            agents.wait_for_rounds(index, 1, timeout=120)
        yield agents, ports
    finally:
        agents.stop()


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_agent", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})


def _peers(fleet: Fleet, *args: str) -> subprocess.CompletedProcess[str]:
    return _cli("peers", "--service-type", fleet.service, "--timeout", "2", *args)


def test_peers_json_lists_exactly_the_three_agents_online(fleet: tuple[Fleet, list[int]]) -> None:
    agents, _ = fleet
    done = _peers(agents, "--json")
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    assert (listing["service_type"], listing["run"]) == (agents.service, None)
    found = listing["agents"]
    assert [(a["id"], a["run"], a["shard"], a["state"]) for a in found] == [
        (f"client-{i}", agents.run, i, "online") for i in range(AGENTS)]
    for agent in found:
        assert agent["address"] == f"127.0.0.1:{agent['port']}" and agent["host"] == "127.0.0.1"
        assert (agent["protocol"], agent["algorithm"], agent["setting"], agent["profile"]) == (
            PROTOCOL_VERSION, "spark", "smoke", "generic")
        records = agents.records(agent["shard"])
        assert agent["round"] >= 1 and agent["round"] <= len(records) + 1  # the next round: rounds done


def test_peers_table_shows_one_line_per_agent(fleet: tuple[Fleet, list[int]]) -> None:
    agents, _ = fleet
    done = _peers(agents, "--run", str(agents.run))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "RUN", "ADDRESS"] and len(lines) == 1 + AGENTS
    assert [line.split()[0] for line in lines[1:]] == [f"client-{i}" for i in range(AGENTS)]
    assert all(" online " in line for line in lines[1:])


@pytest.mark.parametrize(("args", "code", "message"), [
    (("--run", "nobody-here"), 1, "Error: no agents of run nobody-here answered on {service} within 2 s"),
    (("--run", "not a run!"), 2, "Error: --run: 'not a run!' is not a run id"),
    (("--interface", "eth0"), 2, "Error: --interface: 'eth0' is not an IPv4 address"),
    (("--timeout", "0"), 2, "Error: Invalid value for '--timeout'"),
])
def test_peers_mistakes_give_one_line(fleet: tuple[Fleet, list[int]], args: tuple[str, ...], code: int,
                                      message: str) -> None:
    agents, _ = fleet
    done = _peers(agents, *args)
    assert done.returncode == code
    assert done.stdout == ""
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(message.format(service=agents.service)), done.stderr
    if code == 1:
        assert len(done.stderr.strip().splitlines()) == 1


def test_prometheus_port_in_use_fails_fast_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _cli("run", "--shard", "0/3", "--setting", "smoke", "--backend", "numpy", "--no-mdns",
                    "--peers", "127.0.0.1:9", "--prometheus-port", str(port), "--quiet", "--insecure",
                    "--metrics", str(tmp_path / "m.jsonl"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"Error: --prometheus-port {port}: cannot listen on 127.0.0.1:{port}: Address already in use"]


@pytest.mark.skipif(PROMETHEUS is None, reason="the Debian package prometheus is not installed (`make test` "
                    "installs it: apt-get install prometheus)")
def test_a_real_prometheus_scrapes_bytes_and_round_of_two_agents(fleet: tuple[Fleet, list[int]],
                                                                  tmp_path: Path) -> None:
    agents, ports = fleet
    before = {i: agents.records(i) for i in range(2)}  # written before Prometheus started
    [web] = free_loopback_ports(1)
    config = tmp_path / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n"
                      "  - job_name: edge-agent\n    static_configs:\n"
                      f"      - targets: ['127.0.0.1:{ports[0]}', '127.0.0.1:{ports[1]}']\n")
    log = (tmp_path / "prometheus.log").open("wb")
    server = subprocess.Popen([str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                               f"--web.listen-address=127.0.0.1:{web}"], stdout=log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL)
    try:
        def query(expression: str) -> dict[str, float]:
            url = f"http://127.0.0.1:{web}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
            try:
                with urllib.request.urlopen(url, timeout=5) as answer:
                    body: dict[str, Any] = json.load(answer)
            except OSError:
                return {}
            return {r["metric"]["agent"]: float(r["value"][1]) for r in body["data"]["result"]}

        sent = 'sum by (agent) (edge_agent_bytes_sent_total{layer="wire", job="edge-agent"})'
        deadline = time.monotonic() + 60
        while len(query(sent)) < 2 or len(query("edge_agent_round")) < 2:
            assert server.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
            assert time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()[-2000:]
            time.sleep(0.5)
        wire_sent, rounds = query(sent), query("edge_agent_round")
        for i in range(2):
            agent = f"client-{i}"
            assert wire_sent[agent] >= sum(r["wire_sent_bytes"] for r in before[i]) > 0
            assert len(before[i]) <= rounds[agent] <= len(agents.records(i))
        assert set(query('edge_agent_bytes_sent_total{layer="payload"}')) == {"client-0", "client-1"}
        assert set(query('edge_agent_phase_seconds_count{phase="total"}')) == {"client-0", "client-1"}
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_peers_watch_shows_an_agent_that_leaves_as_offline_and_exits_0_on_ctrl_c(
        fleet: tuple[Fleet, list[int]]) -> None:
    """Last in this module: it stops agent 2 (SIGTERM: it says goodbye on mDNS)."""
    agents, _ = fleet
    with watching("peers", "--service-type", agents.service, "--run", str(agents.run), "--watch", "--json",
                  "--timeout", "1") as watch:
        assert watch.stdout is not None
        states = _states(json.loads(watch.stdout.readline()))
        if len(states) < AGENTS:  # the first refresh may miss an answer: the next has it
            states = _states(json.loads(watch.stdout.readline()))
        assert states == {f"client-{i}": "online" for i in range(AGENTS)}
        agents.signal(2, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while states.get("client-2") != "offline":
            assert time.monotonic() < deadline, states
            states = _states(json.loads(watch.stdout.readline()))
        assert states["client-0"] == states["client-1"] == "online"
        assert ctrl_c(watch) == 0


def _states(listing: dict[str, Any]) -> dict[str, str]:
    return {agent["id"]: agent["state"] for agent in listing["agents"]}

"""The operator's view of three real agents on loopback (a service type and run of their own): `edge-agent peers`
lists exactly them, `--watch` follows one that leaves, and mistakes give one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fleet import Fleet

from edge_agent.transport.contract import PROTOCOL_VERSION

AGENTS = 3


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Fleet, list[int]]]:
    """Three agents training until stopped. Waits for a round of each."""
    ports: list[int] = []
    agents = Fleet(tmp_path_factory.mktemp("operator"), AGENTS, ["--rounds", "0", "--wait-peers", "60"])
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


def test_peers_watch_shows_an_agent_that_leaves_as_offline_and_exits_0_on_ctrl_c(
        fleet: tuple[Fleet, list[int]]) -> None:
    """Last in this module: it stops agent 2 (SIGTERM: it says goodbye on mDNS)."""
    agents, _ = fleet
    watch = subprocess.Popen([sys.executable, "-m", "edge_agent", "peers", "--service-type", agents.service,
                              "--run", str(agents.run), "--watch", "--json", "--timeout", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
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
        watch.send_signal(signal.SIGINT)
        assert watch.wait(timeout=15) == 0
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()


def _states(listing: dict[str, Any]) -> dict[str, str]:
    return {agent["id"]: agent["state"] for agent in listing["agents"]}

"""`edge-agent status` against real agents: three over mutual TLS asked with an operator's certificate (all of them
on mDNS, one by address), a lone --insecure agent asked in plaintext, and each way of getting no answer in one line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from asking import address, cli, fleet_args, one_error_line
from fleet import Fleet, ctrl_c, watching

from edge_agent import __version__
from edge_agent.agent.launcher import free_loopback_ports
from edge_agent.fleet.status import AGENT_KEYS, PHASES

IDS = [f"client-{i}" for i in range(3)]


def test_status_all_json_has_every_field_for_the_three_agents(operator_fleet: Fleet) -> None:
    done = cli("status", "--all", "--json", *fleet_args(operator_fleet))
    assert done.returncode == 0, done.stderr
    agents = json.loads(done.stdout)["agents"]
    assert [a["id"] for a in agents] == IDS
    for index, a in enumerate(agents):
        assert tuple(a) == AGENT_KEYS
        assert a["address"] == address(operator_fleet, index)
        assert (a["run"], a["version"], a["profile"], a["backend"], a["algorithm"], a["security"]) == (
            operator_fleet.run, __version__, "generic", "numpy", "spark", "mtls")
        assert (a["shard"], a["clients"], a["rounds"], a["members"]) == (index, 3, 0, IDS)
        assert a["last_round"] is not None and a["next_round"] == a["last_round"] + 1  # docs/records.md
        # in a round, with its phase; or between two, its record committed and no phase (docs/operator.md)
        in_round = a["state"] == f"round {a['next_round']}" and a["phase"] in ("average", "jacobian", "evolve",
                                                                                "score", "record")
        assert in_round or (a["state"], a["phase"]) == (f"after round {a['last_round']}", None), a
        assert {n["id"] for n in a["neighbours"]} <= set(IDS) - {a["id"]} and a["neighbours"]
        # the default --robust screen may clip an honest neighbour's Jacobian rows; it refuses none of them
        assert all(n["state"] in ("ok", "missing", "clipped") for n in a["neighbours"]), a["neighbours"]
        assert a["link"] == {"uplink_bits_per_s": 0.0, "downlink_bits_per_s": 0.0, "latency_s": 0.0}
        assert {k["peer"] for k in a["links"]} == set(IDS) - {a["id"]}
        for link in a["links"]:
            assert link["total_sent_bytes"] >= link["last_round_sent_bytes"] > 0
            assert link["total_received_bytes"] >= link["round_received_bytes"] >= 0
            assert link["last_round_sent_bits_per_s"] > 0
        assert a["total_sent_bytes"] == sum(k["total_sent_bytes"] for k in a["links"])
        assert tuple(a["last_round_seconds"]) == PHASES and a["last_round_seconds"]["total"] > 0
        assert a["uptime_s"] > 0 and a["peak_rss_mb"] > 10
        # the last trained round's accuracy is the one its record holds
        written = {r["round"]: r for r in operator_fleet.records(index)}
        assert a["last_accuracy"] == written[a["last_round"]]["test_accuracy"]
        # the best weights it kept: the highest accuracy of the rounds up to the one that holds them
        assert a["best"]["accuracy"] == max(r["test_accuracy"] for k, r in written.items() if k <= a["best"]["round"])
        assert written[a["last_round"]]["best_test_accuracy"] <= a["best"]["accuracy"]


def test_status_of_an_agent_by_address_and_by_id_prints_its_block(operator_fleet: Fleet) -> None:
    where = address(operator_fleet, 1)
    done = cli("status", where, "client-2", *fleet_args(operator_fleet))
    assert done.returncode == 0, done.stderr
    blocks = done.stdout.split("\n\n")
    assert [b.split()[0] for b in blocks] == ["client-1", "client-2"]
    first = blocks[0].splitlines()
    assert first[0].startswith(f"client-1 at {where}: run {operator_fleet.run}, spark, shard 1/3, profile generic, "
                               f"backend numpy, edge-agent {__version__}, mutual TLS")
    assert any(line.split()[:3] == ["rounds", "next", "round"] for line in first)
    assert any(line.split()[:2] == ["last", "round"] and "(best " in line for line in first)
    assert any(line.split()[:1] == ["PEER"] for line in first)


def test_a_tls_agent_asked_without_certificates_gives_one_line(operator_fleet: Fleet) -> None:
    where = address(operator_fleet, 0)
    line = one_error_line(cli("status", where), 1)
    assert line.startswith(f"Error: {where} speaks mutual TLS: give --certs DIR")


def test_an_unknown_peer_gives_one_line(operator_fleet: Fleet) -> None:
    line = one_error_line(cli("status", "client-9", *fleet_args(operator_fleet)), 1)
    assert line.startswith(f"Error: unknown peer: no agent client-9 of run {operator_fleet.run} answered on "
                           f"{operator_fleet.service}")


def test_a_wrong_port_gives_one_line() -> None:
    [port] = free_loopback_ports(1)
    line = one_error_line(cli("status", f"127.0.0.1:{port}"), 1)
    assert line.startswith(f"Error: nothing answers on 127.0.0.1:{port} (Connection refused)")


@pytest.mark.parametrize(("args", "message"), [
    ((), "Error: give TARGET... (host:port or agent id), or --all"),
    (("127.0.0.1:99999",), "Error: '127.0.0.1:99999': port 99999 is not in 1..65535"),
    (("127.0.0.1:9", "--certs", "/nonexistent"), "Error: --certs: /nonexistent is not a folder"),
])
def test_mistakes_in_the_call_give_one_line_and_status_2(args: tuple[str, ...], message: str) -> None:
    assert one_error_line(cli("status", *args), 2).startswith(message)


@pytest.fixture
def lone_agent(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """One --insecure agent without mDNS, waiting for peers that never come (it serves Status meanwhile)."""
    [port] = free_loopback_ports(1)
    agent = subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "--shard", "0/3", "--setting", "smoke",
                              "--backend", "numpy", "--insecure", "--no-mdns", "--peers", "127.0.0.1:9", "--port",
                              str(port), "--wait-peers", "120", "--quiet", "--metrics", str(tmp_path / "m.jsonl")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        yield agent, f"127.0.0.1:{port}"
    finally:
        if agent.poll() is None:
            agent.kill()
        agent.wait()


def test_status_watch_of_an_agent_that_goes_away_ends_in_one_line(lone_agent: tuple[subprocess.Popen[bytes], str]
                                                                   ) -> None:
    agent, where = lone_agent
    deadline = time.monotonic() + 60
    while (done := cli("status", where, "--json")).returncode != 0:  # until it serves
        assert time.monotonic() < deadline, done.stderr
        time.sleep(0.5)
    first = json.loads(done.stdout)["agents"][0]
    assert (first["id"], first["security"], first["state"], first["next_round"], first["last_round"]) == (
        "client-0", "insecure", "discovering", 0, None)
    with watching("status", where, "--watch", "--json", "--interval", "0.5") as watch:
        assert watch.stdout is not None and watch.stderr is not None
        assert json.loads(watch.stdout.readline())["agents"][0]["id"] == "client-0"
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        assert watch.wait(timeout=15) == 1
        lines = watch.stderr.read().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"Error: {where} did not answer: UNAVAILABLE"), lines


@pytest.fixture
def lone_mdns_agent(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, list[str]]]:
    """One --insecure agent on mDNS (a service type and run of its own), waiting for peers that never come."""
    [port] = free_loopback_ports(1)
    service, run = f"_ea-{uuid.uuid4().hex[:8]}._tcp.local.", f"gone-{uuid.uuid4().hex[:6]}"
    agent = subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "--shard", "0/3", "--setting", "smoke",
                              "--backend", "numpy", "--insecure", "--service-type", service, "--run", run, "--port",
                              str(port), "--wait-peers", "120", "--quiet", "--metrics", str(tmp_path / "m.jsonl")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        yield agent, f"127.0.0.1:{port}", ["--service-type", service, "--run", run, "--timeout", "2"]
    finally:
        if agent.poll() is None:
            agent.kill()
        agent.wait()


def test_status_all_watch_lists_an_agent_that_went_away_and_goes_on(
        lone_mdns_agent: tuple[subprocess.Popen[bytes], str, list[str]]) -> None:
    agent, where, reach = lone_mdns_agent
    deadline = time.monotonic() + 60
    while (done := cli("status", "--all", "--json", *reach)).returncode != 0:  # until it answers on mDNS
        assert time.monotonic() < deadline, done.stderr
    with watching("status", "--all", "--watch", "--json", *reach) as watch:
        assert watch.stdout is not None
        first = json.loads(watch.stdout.readline())
        assert ([a["address"] for a in first["agents"]], first["gone"]) == ([where], [])
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        for _ in range(10):  # a refresh every sweep (2 s)
            report = json.loads(watch.stdout.readline())
            if report["gone"]:
                break
        assert report["agents"] == [] and [(g["id"], g["address"]) for g in report["gone"]] == [("client-0", where)]
        assert watch.poll() is None  # the fleet's watch goes on when a board leaves
        assert ctrl_c(watch) == 0

"""Four real agent processes on 127.0.0.1, found by mDNS alone, run 3 SPARK rounds: records, and the same
weights and payload bytes as the in-process simulator for the same seed and members.

Run twice: fp32 on the wire, where neighbours send the rows that hold 90% of their squared residual and a random
quarter of the others, and the lean preset (int4 kernel sketches of m' = 32 of the same rows with an int8 pull-back,
int4 weights) with int8 candidates. Lossy codecs turn the last-bit
differences between an agent's chunked Jacobians and the simulator's into whole quantisation steps now and then,
so there the weights agree to 3% rather than 1e-5 (2% before the reference constants became the defaults: their
horizons up to tau = 800 carry a flipped step further; the rows a residual share picks could differ too, which is
why the share runs in fp32); the payload bytes agree exactly either way.

DFedAvg runs too (3 rounds of local SGD and averaging over the same weights exchange): the payload bytes agree
exactly and the weights to 1e-5, not bit for bit. The simulator steps all clients at once and pads a client whose
last batch is short with zero-weight rows up to the widest client's batch; those zeros lengthen the sums inside the
gradient GEMM, which changes the last bits (about 1e-7 relative per round); an agent trains its shard alone."""

import json
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.deploy.certs import throwaway_cluster
from edge_agent.learning.codec import CodecConfig
from edge_agent.learning.data import load_fashion_mnist
from edge_agent.learning.ntk import EvolutionConfig
from edge_agent.sim.config import SimulationConfig
from edge_agent.sim.engine import Simulation

RunAgents = Callable[[list[list[str]], dict[str, str]], list[str]]  # the run_agents fixture
AGENTS, ROUNDS = 4, 3
# (Jacobians' precision, candidates' precision, weights' precision, residual share, tail rate, kernel sketch m',
# pull-back precision)
WIRES = {"fp32-r90-t25": ("fp32", "fp32", "fp32", 0.9, 0.25, 0, "fp32"),
         "lean-c8": ("int4", "int8", "int4", 0.9, 0.25, 32, "int8")}
WIRE_FLAGS = {"fp32-r90-t25": ["--residual-share", "0.9", "--tail-rate", "0.25"],
              "lean-c8": ["--preset", "lean", "--candidates-precision", "int8"]}
WEIGHTS_RTOL = {"fp32-r90-t25": 1e-5, "lean-c8": 0.03}
PHASES = {"average", "jacobian", "transfer", "evolve", "score", "total"}


def agent_command(i: int, out: Path, service: str, certs: Path, *flags: str) -> list[str]:
    return [sys.executable, "-m", "edge_agent", "run", "--shard", f"{i}/{AGENTS}", "--setting", "smoke",
            "--rounds", str(ROUNDS), "--service-type", service, "--wait-peers", "60", "--backend", "numpy",
            "--metrics", str(out / f"agent-{i}.jsonl"), "--certs", str(certs),
            "--checkpoint-dir", str(out / "checkpoints"), "--quiet", *flags]


@pytest.fixture(scope="module", params=list(WIRES))
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
        run_agents: RunAgents) -> tuple[Path, str]:
    """Start the agents and wait for all of them (the run_agents fixture always stops them); (run dir, wire)."""
    out = tmp_path_factory.mktemp(f"agents-{request.param}")
    service = f"_ea-{uuid.uuid4().hex[:8]}._tcp.local."
    certs = throwaway_cluster(out / "certs", [f"client-{i}" for i in range(AGENTS)])  # mutual TLS, as on boards
    run_agents([
        agent_command(i, out, service, certs, "--solver", "euler", *WIRE_FLAGS[request.param])
        for i in range(AGENTS)],
        {**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    return out, request.param


@pytest.fixture(scope="module")
def dfedavg_run(tmp_path_factory: pytest.TempPathFactory, run_agents: RunAgents) -> Path:
    """Four DFedAvg agents on the smoke setting, ROUNDS rounds, mutual TLS."""
    out = tmp_path_factory.mktemp("agents-dfedavg")
    service = f"_ea-{uuid.uuid4().hex[:8]}._tcp.local."
    certs = throwaway_cluster(out / "certs", [f"client-{i}" for i in range(AGENTS)])
    run_agents([agent_command(i, out, service, certs, "--algorithm", "dfedavg") for i in range(AGENTS)],
               {**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    return out


def _lines(run_dir: Path, i: int) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run_dir / f"agent-{i}.jsonl").read_text().splitlines()]


def _summary(run_dir: Path, i: int) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((run_dir / f"agent-{i}.summary.json").read_text())
    return summary


def test_every_agent_records_every_round(run: tuple[Path, str]) -> None:
    run_dir, name = run
    phases = PHASES | ({"pullback"} if WIRES[name][5] else set())
    for i in range(AGENTS):
        rounds, summary = _lines(run_dir, i), _summary(run_dir, i)  # the metrics file holds round records only
        assert [r["round"] for r in rounds] == list(range(ROUNDS))
        assert {(r["schema"], r["record"]) for r in rounds} == {(1, "agent-round")}
        times = [datetime.fromisoformat(str(r["time"])) for r in rounds]
        assert times == sorted(times) and all(t.utcoffset() == timedelta(0) for t in times)
        assert (summary["schema"], summary["record"], summary["rounds"]) == (1, "agent-summary", ROUNDS)
        peaks = [record["peak_rss_mb"] for record in rounds]
        assert all(50 < peak < 8192 for peak in peaks)  # MiB
        assert all(later >= earlier - 1 for earlier, later in pairwise(peaks))  # a high-water mark (lazy RSS sync)
        for record in rounds:  # the round's end (after the trim) <= its own peak <= the life's (lazy RSS sync)
            assert 50 < record["rss_mb"] <= record["round_peak_rss_mb"] + 1 <= record["peak_rss_mb"] + 2
        for record in rounds:
            assert record["agent"] == f"client-{i}" and record["members"] == AGENTS
            assert len(record["neighbours"]) == 2  # smoke: kappa = 2
            assert set(record["seconds"]) == phases and record["seconds"]["total"] > 0
            assert record["payload_sent_bytes"] > 0 and record["wire_sent_bytes"] >= record["payload_sent_bytes"]
            assert set(record["links"]) <= {f"client-{j}" for j in range(AGENTS)} - {f"client-{i}"}
            assert record["tau"] in (100, 200, 300, 400, 500, 600, 800) and record["lambda"] in (0.0, 0.3, 0.5)
            assert 0.1 < record["test_accuracy"] <= 1.0


def test_agents_match_the_simulator_in_weights_and_payload_bytes(run: tuple[Path, str]) -> None:
    run_dir, name = run
    train, test = load_fashion_mnist()
    config = SimulationConfig.from_setting("smoke", "spark", clients=AGENTS, rounds=ROUNDS)
    euler = EvolutionConfig(solver="euler")
    jacobians, candidates, weights, share, tail, kernel_dim, pullback = WIRES[name]
    spark = replace(config.spark, ntk=replace(config.spark.ntk, evolution=euler), codec=CodecConfig(jacobians),
                    candidates_codec=CodecConfig(candidates), residual_share=share, tail_rate=tail,
                    kernel_dim=kernel_dim, pullback_codec=CodecConfig(pullback))
    config = replace(config, spark=spark, weights_codec=CodecConfig(weights))
    simulation = Simulation(config, train, test)
    records = list(simulation.run())
    for i in range(AGENTS):
        with np.load(run_dir / "checkpoints" / f"client-{i}.npz") as checkpoint:
            assert int(checkpoint["round"]) == ROUNDS - 1
            weights = checkpoint["weights"]
        error = np.linalg.norm(weights - simulation.weights[i])
        assert error <= WEIGHTS_RTOL[name] * np.linalg.norm(simulation.weights[i])
    summaries = [_summary(run_dir, i)["payload_by_round"] for i in range(AGENTS)]
    for k, record in enumerate(records):
        sent = sum(s[str(k)]["sent"] for s in summaries)
        received = sum(s[str(k)]["received"] for s in summaries)
        assert sent == received == record.bytes_per_client * AGENTS
    if share < 1.0:  # the residual share did leave rows out
        every_row = Simulation(replace(config, spark=replace(spark, residual_share=1.0)), train, test)
        assert sum(r.bytes_per_client for r in records) < sum(r.bytes_per_client for r in every_row.run())


def test_dfedavg_agents_match_the_simulator_in_weights_and_payload_bytes(dfedavg_run: Path) -> None:
    train, test = load_fashion_mnist()
    simulation = Simulation(SimulationConfig.from_setting("smoke", "dfedavg", clients=AGENTS, rounds=ROUNDS),
                            train, test)
    records = list(simulation.run())
    for i in range(AGENTS):
        with np.load(dfedavg_run / "checkpoints" / f"client-{i}.npz") as checkpoint:
            assert int(checkpoint["round"]) == ROUNDS - 1
            weights = checkpoint["weights"]
        assert np.linalg.norm(weights - simulation.weights[i]) <= 1e-5 * np.linalg.norm(simulation.weights[i])
        for record in _lines(dfedavg_run, i):
            assert record["algorithm"] == "dfedavg" and record["tau"] is None and record["lambda"] == 0.0
            assert set(record["seconds"]) == PHASES | {"train"} and record["seconds"]["train"] > 0
            assert record["seconds"]["jacobian"] == record["seconds"]["transfer"] == 0.0
    summaries = [_summary(dfedavg_run, i)["payload_by_round"] for i in range(AGENTS)]
    for k, record in enumerate(records):
        sent = sum(s[str(k)]["sent"] for s in summaries)
        received = sum(s[str(k)]["received"] for s in summaries)
        assert sent == received == record.bytes_per_client * AGENTS
        assert record.bytes_by_kind.keys() == {"WeightsMessage"}  # the weights exchange only

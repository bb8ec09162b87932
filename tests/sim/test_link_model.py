"""The link model: transfers at the rate plus a latency per leg, links in parallel, phases in sequence, members
serving first come first served, compute scaled to the board; and the simulator's rounds carry its seconds."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.sim.link_model import Compute, Exchange, ModelledLink, RoundWork, model_round
from edge_agent.sim.round_work import read_work

MBIT = 1e6


def test_transfer_is_latency_plus_bytes_at_the_rate() -> None:
    link = ModelledLink(8 * MBIT, latency_s=0.02)
    assert link.transfer(1_000_000) == pytest.approx(0.02 + 1.0)
    assert link.transfer(0) == pytest.approx(0.02)


@pytest.mark.parametrize("kwargs", [{"rate_bits_per_s": 0}, {"rate_bits_per_s": 1, "latency_s": -1},
                                    {"rate_bits_per_s": 1, "compute_scale": 0}])
def test_link_model_refuses_impossible_links(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ModelledLink(**kwargs)


def test_weights_exchange_links_run_in_parallel_and_averaging_waits_for_the_slowest() -> None:
    link = ModelledLink(8 * MBIT, latency_s=0.01)
    work = RoundWork(("a", "b", "c"), {("a", "b"): 1_000_000, ("c", "b"): 2_000_000, ("b", "a"): 1_000_000,
                                       ("b", "c"): 1_000_000})
    modelled = model_round(work, link)
    assert modelled.seconds == pytest.approx(2.01)  # b waits for c's 2 MB; a and c for b's 1 MB, at the same time
    assert modelled.phase_seconds["average"] == pytest.approx((1.01 + 2.01 + 1.01) / 3)


def test_local_training_precedes_the_exchange_and_is_scaled_to_the_board() -> None:
    link = ModelledLink(8 * MBIT, compute_scale=4.0)
    work = RoundWork(("a", "b"), {("a", "b"): 1_000_000, ("b", "a"): 1_000_000}, train_seconds={"a": 0.5, "b": 0.25})
    modelled = model_round(work, link)
    assert modelled.seconds == pytest.approx(4 * 0.5 + 1.0)  # b's average waits for a's training, then 1 s
    assert modelled.phase_seconds["train"] == pytest.approx(4 * 0.375)


def test_a_member_serves_requests_one_at_a_time_in_arrival_order() -> None:
    link = ModelledLink(8 * MBIT, latency_s=0.0)
    requests = {("a", "m"): 0, ("b", "m"): 0}
    replies = {("a", "m"): 1_000_000, ("b", "m"): 1_000_000}
    service = {("a", "m"): 2.0, ("b", "m"): 2.0, ("m", "m"): 1.0}
    work = RoundWork(("a", "b", "m"), {}, steps=[Exchange("jacobian", requests, replies, service)])
    modelled = model_round(work, link)
    # all three requests arrive at once and are served in id order: a by 2 s (its reply lands at 3 s), b by 4 s
    # (at 5 s), m itself by 5 s (no link)
    assert modelled.seconds == pytest.approx(5.0)
    assert modelled.phase_seconds["jacobian"] == pytest.approx((3.0 + 5.0 + 5.0) / 3)


def test_phases_follow_each_other_and_own_compute_is_scaled() -> None:
    link = ModelledLink(8 * MBIT, latency_s=0.1, compute_scale=2.0)
    exchange = Exchange("score", {("a", "b"): 1_000_000}, {("a", "b"): 0}, {("a", "b"): 0.5, ("a", "a"): 0.25})
    work = RoundWork(("a", "b"), {}, steps=[Compute("evolve", {"a": 1.0}), exchange])
    modelled = model_round(work, link)
    # evolve 2 s; the request 0.1 + 1 s; b serves 1 s; the reply 0.1 s: 4.2 s for a; b only served
    assert modelled.seconds == pytest.approx(2.0 + 1.1 + 1.0 + 0.1)
    assert modelled.phase_seconds["evolve"] == pytest.approx(1.0)  # mean over a (2 s) and b (0 s)


def test_simulated_rounds_carry_modelled_seconds_and_the_summary_seconds_to_each_level(tmp_path: Path) -> None:
    out = tmp_path / "dfedavg"
    done = subprocess.run([sys.executable, "-m", "edge_agent", "simulate", "--setting", "smoke", "--algorithm",
                           "dfedavg", "--rounds", "2", "--workers", "1", "--link", "1mbit", "--latency", "20ms",
                           "--compute-scale", "3", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    weights_per_link = records[0]["bytes_by_kind"]["WeightsMessage"] / (10 * 2)  # 10 clients, kappa 2
    for record in records:
        phases = record["modelled_phase_seconds"]
        assert phases["average"] == pytest.approx(0.02 + 8 * weights_per_link / 1e6)  # every link alike
        assert record["modelled_seconds"] == pytest.approx(phases["train"] + phases["average"])
        assert phases["train"] > 0
    summary = json.loads((out / "summary.json").read_text())
    for level in summary["levels"].values():
        rounds = level["rounds"]
        assert level["modelled_seconds"] == pytest.approx(sum(r["modelled_seconds"] for r in records[:rounds]))


@pytest.mark.parametrize(("args", "message"), [
    (["--board", "rpi-4"], "give --link RATE too"),
    (["--link", "unlimited"], "--link: a modelled link needs a finite rate"),
    (["--link", "fast"], "--link/--latency: bad rate 'fast'"),
    (["--link", "1mbit", "--board", "no-such-board"], "unknown profile 'no-such-board'"),
])
def test_link_options_mistakes_are_one_error_line(tmp_path: Path, args: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "edge_agent", "simulate", "--setting", "smoke", "--rounds", "1",
                           *args, "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], done.stderr


def test_work_file_lets_a_round_be_modelled_again_on_another_link(tmp_path: Path) -> None:
    """work.jsonl holds each round's messages and compute: the same link gives the records' seconds back, and a
    link ten times faster shortens the exchanges and the round."""
    out = tmp_path / "sketch"
    done = subprocess.run([sys.executable, "-m", "edge_agent", "simulate", "--setting", "smoke", "--rounds", "2",
                           "--preset", "lean", "--solver", "euler", "--workers", "1", "--link", "1mbit",
                           "--latency", "5ms", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    work = read_work(out / "work.jsonl")
    assert sorted(work) == [0, 1]
    slow, fast = ModelledLink(1e6, 0.005), ModelledLink(1e7, 0.005)
    for record in records:
        again = model_round(work[record["round"]], slow)
        assert again.seconds == pytest.approx(record["modelled_seconds"])
        assert again.phase_seconds == pytest.approx(record["modelled_phase_seconds"])
        assert set(again.phase_seconds) == {"average", "jacobian", "evolve", "pullback", "score"}
        quicker = model_round(work[record["round"]], fast)
        assert quicker.phase_seconds["average"] < again.phase_seconds["average"]
        assert quicker.phase_seconds["jacobian"] < again.phase_seconds["jacobian"]
        assert quicker.seconds < again.seconds


def test_a_client_computes_one_thing_at_a_time_so_serving_waits_for_its_own_evolution() -> None:
    link = ModelledLink(8 * MBIT, latency_s=0.0)
    evolve = Compute("evolve", {"a": 0.0, "m": 3.0})  # m evolves for 3 s while a's request for m arrives
    pull = Exchange("pullback", {("a", "m"): 0}, {("a", "m"): 0}, {("a", "m"): 1.0, ("a", "a"): 0.5})
    modelled = model_round(RoundWork(("a", "m"), {}, steps=[evolve, pull]), link)
    assert modelled.seconds == pytest.approx(4.0)  # m serves a only after its own evolution: 3 + 1 s
    assert modelled.phase_seconds["pullback"] == pytest.approx((4.0 - 0.0 + 0.0) / 2)  # a waits 4 s, m none

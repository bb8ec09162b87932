"""`edge-agent bench link` as a user runs it: real agent fleets, then report.md, the plots and a summary whose bytes
are the agents' own records; and one clear line for each mistake in its arguments."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_agent.cli.main import cli
from edge_agent.round_records import agent_rounds

AGENTS, ROUNDS = 3, 2


@pytest.fixture(scope="module")
def bench_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("bench-link")
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent", "bench", "link", "--agents", str(AGENTS), "--setting", "smoke",
         "--algorithms", "spark,dfedavg", "--rate", "50mbit", "--latency", "1ms", "--rounds", str(ROUNDS),
         "--time-budget", "150s", "--agent-args", "--solver euler --wait-peers 60", "--out", str(out)],
        capture_output=True, text=True, timeout=240, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"}, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return out, done.stderr


def test_bench_link_writes_the_report_plots_and_summary(bench_out: tuple[Path, str]) -> None:
    out, progress = bench_out
    for name in ("report.md", "summary.json", "accuracy_vs_rounds.png", "accuracy_vs_megabytes.png",
                 "accuracy_vs_seconds.png", "seconds_per_round.png"):
        assert (out / name).stat().st_size > 0, name
    assert all((out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in out.glob("*.png"))
    report = (out / "report.md").read_text()
    assert "| spark | 50mbit 1ms | 2 |" in report and "| dfedavg | 50mbit 1ms | 2 |" in report
    assert "spark 50mbit 1ms: 2 of 2 rounds done (last: round 1), accuracy" in progress  # progress, per fleet
    assert report.split("\n")[4:7] == ["## Verdict", "", "**50mbit 1ms**"]  # the answer comes first


def test_the_console_and_the_report_give_the_same_figures_and_stop_sentence(bench_out: tuple[Path, str]) -> None:
    out, progress = bench_out
    summary = json.loads((out / "summary.json").read_text())
    report = (out / "report.md").read_text()
    for fleet in summary["fleets"]:
        row = next(line for line in report.splitlines() if line.startswith(f"| {fleet['algorithm']} | 50mbit 1ms |"))
        _, _, rounds, accuracy, megabytes, seconds, _, stopped = (cell.strip() for cell in row.strip("|").split("|"))
        closing = (f"{fleet['algorithm']} 50mbit 1ms: {rounds} rounds done, accuracy {accuracy}, {megabytes} MB per "
                   f"agent, {seconds} s; {stopped}")
        assert closing in progress.splitlines()
        last = [line for line in progress.splitlines() if line.startswith(f"{fleet['algorithm']} 50mbit 1ms: 2 of 2")]
        assert last and f"accuracy {accuracy}, {megabytes} MB per agent, {seconds} s since its first round" in last[-1]
        assert stopped == "ran all 2 rounds"


def test_summary_bytes_rounds_and_accuracy_are_the_agents_own_records(bench_out: tuple[Path, str]) -> None:
    out, _ = bench_out
    summary = json.loads((out / "summary.json").read_text())
    assert [(f["algorithm"], f["rate"]) for f in summary["fleets"]] == [("spark", "50mbit"), ("dfedavg", "50mbit")]
    for fleet in summary["fleets"]:
        records = [agent_rounds(Path(fleet["records"]) / f"agent-{i}.jsonl") for i in range(AGENTS)]
        assert all([r["round"] for r in agent] == list(range(ROUNDS)) for agent in records)
        assert (fleet["rounds_done"], fleet["stopped_by"]) == (ROUNDS, "rounds")
        for key in ("payload_sent", "payload_received", "wire_sent", "wire_received"):
            assert fleet["bytes"][key] == sum(r[f"{key}_bytes"] for agent in records for r in agent) > 0
        sent = [sum(r["payload_sent_bytes"] for r in agent) for agent in records]
        assert fleet["megabytes_per_agent"] == pytest.approx(sum(sent) / AGENTS / 1e6)
        final = [agent[-1]["test_accuracy"] for agent in records]
        assert fleet["final_accuracy"] == pytest.approx(sum(final) / AGENTS)
        assert fleet["seconds"] > 0 and fleet["seconds"] <= fleet["elapsed_s"]
    spark, dfedavg = summary["fleets"]
    assert spark["seconds_per_round"]["train"] == 0 and dfedavg["seconds_per_round"]["train"] > 0
    assert dfedavg["seconds_per_round"]["transfer"] == 0  # DFedAvg sends its weights and nothing else


@pytest.mark.parametrize(("args", "message"), [
    (["--algorithms", "spark,fedprox"], "fedprox: the agent runs spark, ntk-dfl, dfedavg"),
    (["--rate", "fast"], "bad rate 'fast'"),
    (["--latency", "soon"], "bad duration 'soon'"),
    (["--time-budget", "forever"], "expected a positive duration such as 30m"),
])
def test_bench_link_mistakes_give_one_line_and_start_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["bench", "link", "--setting", "smoke", "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out").exists()

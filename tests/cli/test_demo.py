"""`edge-agent demo` launches real agents and prints the per-round table from their records."""

import json
from pathlib import Path

from click.testing import CliRunner

from edge_agent.cli.main import cli


def test_demo_runs_agents_and_prints_a_round_table_again_and_again_into_one_folder(tmp_path: Path) -> None:
    for preset in ("published", "lean"):  # a finished demo's checkpoints belong to its own run: the next starts fresh
        result = CliRunner().invoke(cli, ["demo", "--setting", "smoke", "--agents", "3", "--rounds", "2",
                                          "--uplink", "200mbit", "--downlink", "200mbit", "--preset", preset,
                                          "--out", str(tmp_path)])
        assert result.exit_code == 0, result.output
        table = [line.split() for line in result.output.splitlines() if line.strip()[:1].isdigit()]
        assert [int(row[0]) for row in table] == [0, 1]  # 0-based, as in the records
        records = [json.loads(line) for line in (tmp_path / "agent-0.jsonl").read_text().splitlines()]
        assert ("pullback" in records[-1]["served_seconds"]) == (preset == "lean")  # lean: kernel sketches
    assert all(0.1 < float(row[1]) <= 1.0 and float(row[2]) > 0 for row in table)
    assert all(50 < float(row[4]) < 8192 for row in table)  # peak RSS MB of the largest agent, under generic's budget
    assert "aggregated model" in result.output
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == sorted(
        name for i in range(3) for name in (f"client-{i}.npz", f"client-{i}.best.npz"))  # last and best weights

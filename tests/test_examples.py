"""The example files in examples/ are read by the same code that reads a user's: flash's inventory parser, the
agent.toml flash writes from it, and `run --config` itself, up to the moment it would load its data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import edge_agent.cli.run as run_command
from edge_agent.agent.config import AgentConfig
from edge_agent.cli.config_file import read_config
from edge_agent.cli.main import cli
from edge_agent.deploy.bundle import agent_toml
from edge_agent.deploy.certs import throwaway_cluster
from edge_agent.deploy.inventory import load_inventory
from edge_agent.deploy.profiles import find_profile

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_the_example_inventory_is_valid_and_writes_an_agent_toml_run_accepts_for_every_board(tmp_path: Path) -> None:
    inventory = load_inventory(EXAMPLES / "fleet.toml")
    assert [board.agent_id for board in inventory.boards] == [f"client-{i}" for i in range(4)]
    assert inventory.become and inventory.certs == EXAMPLES / "certs"
    for board in inventory.boards:
        find_profile(board.profile)
        written = tmp_path / f"{board.name}.toml"
        written.write_text(agent_toml(inventory, board))
        options = read_config(written, run_command.run)  # what `run --config` reads on the board
        assert options["shard"] == f"{board.shard}/4" and options["rounds"] == 0


def test_the_example_agent_toml_configures_an_agent_that_writes_only_beside_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    board = tmp_path / "edge-agent"  # a folder of the agent's user, as the file's comment says
    board.mkdir()
    shutil.copy(EXAMPLES / "agent.toml", board / "agent.toml")
    throwaway_cluster(board / "certs", ["client-3"])
    seen: list[AgentConfig] = []

    def stop_before_the_data(config: AgentConfig, data_dir: Path | None) -> None:
        seen.append(config)
        raise ValueError("stopped before loading data")

    monkeypatch.setattr(run_command, "load_shard", stop_before_the_data)
    # this machine is no board: it listens on loopback and tells peers so (flags win over the file)
    result = CliRunner().invoke(cli, ["run", "--config", str(board / "agent.toml"), "--listen", "127.0.0.1:0",
                                      "--advertise", "127.0.0.1"])
    assert result.exit_code == 1 and "stopped before loading data" in result.output, result.output
    config, = seen
    assert (config.agent_id, config.shard, config.clients, config.rounds) == ("client-3", 3, 8, 0)
    assert (config.run_name, config.setting, config.profile, config.backend) == ("kitchen-fleet", "edge", "rpi-4",
                                                                                 "onnxruntime")
    assert config.certs == board / "certs"
    assert config.metrics == board / "state" / "metrics.jsonl"
    assert config.checkpoint_dir == board / "state" / "checkpoints"


def test_a_csv_becomes_an_npz_that_the_example_model_trains_on(tmp_path: Path) -> None:
    """examples/csv_to_npz.py and examples/sensor_model.py as a user runs them: commands in subprocesses."""
    rng = np.random.default_rng(3)
    names = ["run", "sit", "walk"]
    centres = rng.normal(0, 2, (3, 12))
    for file, count in (("train.csv", 360), ("test.csv", 60)):
        y = rng.integers(0, 3, count)
        x = centres[y] + rng.normal(0, 1, (count, 12))
        rows = [",".join([*(f"{v:.4f}" for v in row), names[c]]) for row, c in zip(x, y, strict=True)]
        (tmp_path / file).write_text(",".join([*(f"f{i}" for i in range(12)), "activity"]) + "\n" + "\n".join(rows))
    convert = subprocess.run([sys.executable, str(EXAMPLES / "csv_to_npz.py"), str(tmp_path / "train.csv"),
                              str(tmp_path / "data.npz"), "--label", "activity", "--test", str(tmp_path / "test.csv")],
                             capture_output=True, text=True, timeout=60)
    assert convert.returncode == 0, convert.stderr
    assert "360 samples of 12 features, 3 classes (0=run, 1=sit, 2=walk)" in convert.stdout
    with np.load(tmp_path / "data.npz") as data:
        assert data["x"].shape == (360, 12) and data["x_test"].shape == (60, 12) and data["x"].dtype == np.float32
    bad = subprocess.run([sys.executable, str(EXAMPLES / "csv_to_npz.py"), str(tmp_path / "train.csv"),
                          str(tmp_path / "bad.npz")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.strip().startswith("Error:") and "no column 'label'" in bad.stderr
    done = subprocess.run([sys.executable, "-m", "edge_agent", "simulate", "--model",
                           f"{EXAMPLES / 'sensor_model.py'}:sensor_net", "--data", str(tmp_path / "data.npz"),
                           "--setting", "smoke", "--rounds", "2", "--clients", "3", "--samples", "60", "--workers",
                           "1", "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert "final aggregated accuracy" in done.stdout

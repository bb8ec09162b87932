"""The example files in examples/ are read by the same code that reads a user's: flash's inventory parser, the
agent.toml flash writes from it, and `run --config` itself, up to the moment it would load its data."""

from __future__ import annotations

import shutil
from pathlib import Path

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

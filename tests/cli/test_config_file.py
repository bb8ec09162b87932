"""`edge-agent run --config agent.toml`: a board's options from a TOML file, flags on the command line winning,
and every mistake in the file one `Error:` line naming the file and key (exit status 2); run as a board runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

import edge_agent.cli.run as run_command
from edge_agent.agent.config import AgentConfig
from edge_agent.cli.main import cli
from edge_agent.deploy.profiles import profile_dir

RUN = [sys.executable, "-m", "edge_agent", "run"]
# One agent of three that finds nobody (its only peer, port 9, never answers) and trains alone: seconds.
ALONE = """\
shard = "1/3"
id = "pi-kitchen"
setting = "smoke"
backend = "numpy"
solver = "euler"
no-mdns = true
peers = "127.0.0.1:9"
wait-peers = 0
rounds = 1
metrics = "out/agent.jsonl"
quiet = true
"""


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([*RUN, *args], capture_output=True, text=True, timeout=60, env=env, check=False,
                          stdin=subprocess.DEVNULL, cwd=cwd)


def _board_file(tmp_path: Path, text: str) -> Path:
    """agent.toml in a folder of its own, as flashed onto a board; the tests run from elsewhere."""
    (tmp_path / "board").mkdir(exist_ok=True)
    path = tmp_path / "board" / "agent.toml"
    path.write_text(text)
    return path


def _rounds(metrics: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in metrics.read_text().splitlines()]


def test_a_config_file_alone_starts_an_agent_with_its_settings(tmp_path: Path) -> None:
    run = f"lab-{uuid.uuid4().hex[:6]}"
    config = _board_file(tmp_path, ALONE + f'run = "{run}"\ninsecure = true\n')
    result = _run("--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("pi-kitchen serving on 127.0.0.1:") and f" in run {run}," in first, first
    rounds = _rounds(tmp_path / "board" / "out" / "agent.jsonl")  # relative to the file, not to where it ran
    assert [(r["round"], r["agent"]) for r in rounds] == [(0, "pi-kitchen")]


def test_flags_on_the_command_line_win_over_the_file(tmp_path: Path) -> None:
    # The file asks for mutual TLS with certificates this machine lacks; --insecure on the command line wins.
    config = _board_file(tmp_path, ALONE + 'certs = "/nonexistent/certs"\n')
    metrics = tmp_path / "elsewhere.jsonl"
    result = _run("--config", str(config), "--rounds", "2", "--id", "pi-porch", "--metrics", str(metrics),
                  "--insecure", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("pi-porch serving on ") and "INSECURE" in result.stderr.splitlines()[0]
    assert [(r["round"], r["agent"]) for r in _rounds(metrics)] == [(0, "pi-porch"), (1, "pi-porch")]
    assert not (tmp_path / "board" / "out").exists()


@pytest.mark.parametrize(("flags", "expected"), [
    ([], ("fp16", "int4", 0.25, "127.0.0.1", "0.0.0.0", 50051)),  # the file over the profile's lean preset (int4)
    (["--precision", "int4", "--residual-share", "1", "--host", "127.0.0.1"],
     ("int4", "int4", 0.25, "127.0.0.1", None, 50051)),  # flags over the file, thing by thing
])
def test_the_file_wins_over_the_profile_and_flags_win_over_the_file(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, flags: list[str], expected: tuple[object, ...]) -> None:
    seen: list[AgentConfig] = []

    def stop_before_the_data(config: AgentConfig, data_dir: Path | None) -> None:
        seen.append(config)
        raise ValueError("stopped before loading data")

    monkeypatch.setattr(run_command, "load_shard", stop_before_the_data)
    config = _board_file(tmp_path, 'shard = "0/4"\nprofile = "rpi-zero-2w"\ninsecure = true\nprecision = "fp16"\n'
                                   'residual-share = 0.9\nlisten = "0.0.0.0:50051"\nadvertise = "lo"\n')
    result = CliRunner().invoke(cli, ["run", "--config", str(config), *flags])
    assert result.exit_code == 1 and "stopped before loading data" in result.output, result.output
    spark = seen[0].spark
    assert (spark.codec.precision, seen[0].weights_codec.precision, spark.tail_rate, seen[0].host,
            seen[0].listen_host, seen[0].port) == expected
    assert spark.residual_share == (0.9 if not flags else 1.0)


def test_a_profile_file_named_in_the_config_is_found_beside_it(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    """`profile = "lab-board.toml"` is the file in the config's folder, wherever the agent is started from."""
    seen: list[AgentConfig] = []

    def stop_before_the_data(config: AgentConfig, data_dir: Path | None) -> None:
        seen.append(config)
        raise ValueError("stopped before loading data")

    monkeypatch.setattr(run_command, "load_shard", stop_before_the_data)
    config = _board_file(tmp_path, 'shard = "0/4"\nprofile = "lab-board.toml"\ninsecure = true\n')
    (config.parent / "lab-board.toml").write_text((profile_dir() / "rpi-zero-2w.toml").read_text())
    monkeypatch.chdir(tmp_path)  # not the config's folder
    result = CliRunner().invoke(cli, ["run", "--config", str(config)])
    assert result.exit_code == 1 and "stopped before loading data" in result.output, result.output
    assert seen[0].profile == "lab-board"


@pytest.mark.parametrize(("text", "expected"), [
    ('shard = "0/3"\nround = 3\n', "agent.toml: unknown key 'round' (did you mean 'rounds'?)"),
    ('shard = "0/3"\nrounds = "3"\n', "agent.toml: rounds must be an integer, not a string"),
    ('shard = "0/3"\nno-mdns = "yes"\n', "agent.toml: no-mdns must be true or false, not a string"),
    ('shard = "0/3"\nsetting = "edgy"\n', "agent.toml: setting: 'edgy' is not one of"),
    ('shard = "0/3"\nwait-peers = -1\n', "agent.toml: wait-peers: -1.0 is not in the range"),
    ('shard = "3/3"\n', "agent.toml: shard: need M >= 2 and 0 <= i < M"),
    ('shard = "0/3"\nuplink = "fast"\n', "agent.toml: uplink: bad rate 'fast'"),
    ('shard = "0/3"\nlisten = "0.0.0.0"\n', "agent.toml: listen: expected ADDR:PORT"),
    ('shard = "0/3"\nadvertise = "no-such-if0"\n', "agent.toml: advertise: 'no-such-if0' is neither an IP address"),
    ('shard = "0/3"\nhost = "127.0.0.1"\nlisten = "0.0.0.0:0"\n', "agent.toml: host and listen both give"),
    ('shard = "0/3"\npartition = "split.npz"\n', "agent.toml: partition: File"),
    ('shard = "0/3"\n[run]\nname = "lab"\n', "agent.toml: run must be a string, not a table"),
    ('shard = "0/3\n', "agent.toml is not valid TOML: "),
])
def test_a_mistake_in_the_file_is_one_line_naming_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    config = _board_file(tmp_path, text.replace('shard = "0/3"\n', 'shard = "0/3"\ninsecure = true\n', 1))
    result = _run("--config", str(config), "--no-mdns", "--peers", "127.0.0.1:9", cwd=tmp_path)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode == 2, lines
    assert len(lines) == 1 and lines[0].startswith(f"Error: {config.parent}/") and expected in lines[0], lines


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    result = _run("--config", "nowhere/agent.toml", "--insecure", cwd=tmp_path)
    assert result.returncode == 2 and not result.stdout
    assert result.stderr.splitlines() == ["Error: --config: nowhere/agent.toml does not exist"]

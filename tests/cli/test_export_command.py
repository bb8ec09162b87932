"""`edge-agent export`: the board kernels and their manifest in one quiet line; one line for every refusal, and a
board without kernels names the command that makes them."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_agent.cli.export import export
from edge_agent.deploy.profiles import PROFILES_ENV, profile_dir
from edge_agent.learning.mlp import MLPSpec
from edge_agent.runtime.onnx_backend import cache_directory, cache_subpath
from edge_agent.runtime.onnx_export import KERNELS, MANIFEST, check_exports

EXPORTED = {MANIFEST, *(f"{kernel}.onnx" for kernel in KERNELS)}


def test_export_writes_checked_kernels_into_out_and_prints_only_one_line(tmp_path: Path) -> None:
    out = tmp_path / "kernels"
    result = subprocess.run([sys.executable, "-m", "edge_agent", "export", "--profile", "rpi-4", "--out", str(out)],
                            capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # not one of the exporter's ~280 lines
    line, = result.stdout.splitlines()
    assert {path.name for path in out.iterdir()} == EXPORTED
    assert check_exports(out, MLPSpec(), 1024).dim == 1024
    size = sum(path.stat().st_size for path in out.iterdir()) / 1000
    assert f"4 files, {size:.1f} kB in {out}" in line
    assert f"~/.cache/{cache_subpath(MLPSpec(), 1024)}/" in line


def test_export_without_out_fills_the_cache_an_agent_reads_and_logs_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with caplog.at_level(logging.DEBUG):  # what an agent's first run would show of the same export at --verbose
        result = CliRunner().invoke(export, ["--profile", "rpi-zero-2w"])
    assert result.exit_code == 0, result.output
    directory = cache_directory(MLPSpec(), 1024)
    assert directory.is_relative_to(tmp_path)
    assert {path.name for path in directory.iterdir()} == EXPORTED
    check_exports(directory, MLPSpec(), 1024)
    assert result.output.count("\n") == 1 and f"in {directory}" in result.output
    assert [record.name for record in caplog.records if not record.name.startswith("edge_agent")] == []


def test_an_unknown_profile_is_one_line_and_exit_status_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(export, ["--profile", "rpi-3", "--out", str(tmp_path / "kernels")])
    assert result.exit_code == 2
    line, = result.output.splitlines()
    assert line.startswith("Error: unknown profile 'rpi-3'; known profiles: generic,")
    assert not (tmp_path / "kernels").exists()


def test_an_out_folder_that_cannot_be_made_is_one_line_and_exit_status_2(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    result = CliRunner().invoke(export, ["--profile", "rpi-4", "--out", str(tmp_path / "a-file" / "kernels")])
    assert result.exit_code == 2
    assert result.output.splitlines() == [f"Error: --out {tmp_path / 'a-file' / 'kernels'}: cannot write the kernels "
                                          "for profile rpi-4: Not a directory"]


def test_a_profile_that_does_not_project_with_tensorsketch_is_one_line_and_exit_status_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = (profile_dir() / "rpi-4.toml").read_text()
    (tmp_path / "kron-board.toml").write_text(shipped.replace('projection = "tensorsketch"', 'projection = "kron"'))
    monkeypatch.setenv(PROFILES_ENV, str(tmp_path))
    result = CliRunner().invoke(export, ["--profile", "kron-board"])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "Error: profile kron-board projects with kron; the board kernels are built for tensorsketch only"]


def test_export_without_torch_names_the_install_in_one_line(tmp_path: Path, board_cli: list[str]) -> None:
    result = subprocess.run([*board_cli, "export", "--profile", "rpi-4", "--out", str(tmp_path / "kernels")],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "Error: export needs torch, which is not importable here: pip install 'edge-agent[torch]'"]
    assert not (tmp_path / "kernels").exists()


def test_a_board_without_the_kernels_names_the_export_command_and_the_folder(tmp_path: Path,
                                                                           board_cli: list[str]) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    result = subprocess.run([*board_cli, "run", "--insecure", "--shard", "0/3", "--setting", "smoke",
                             "--backend", "onnxruntime",
                             "--profile", "rpi-4", "--no-mdns", "--peers", "127.0.0.1:9", "--quiet"],
                            capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == 1
    line, = result.stderr.splitlines()
    assert line == (f"Error: no ONNX kernels for m = 1024 here (none in {tmp_path / cache_subpath(MLPSpec(), 1024)}): "
                    "on a machine with torch run `edge-agent export --profile rpi-4 --out DIR` and copy DIR to "
                    f"{tmp_path / cache_subpath(MLPSpec(), 1024)}")

"""`edge-agent data download|check`: fetch with progress and a one-line error, check where the data is and that
it is intact. Mirrors are local directories here: tests never reach the network."""

import gzip
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_agent.cli.data import data
from edge_agent.cli.main import cli
from edge_agent.learning import data as data_module
from edge_agent.learning.data import FILE_NAMES, SYSTEM_DATA_DIR, data_file

# As in tests/learning/test_data.py: only the tests that copy or expect the installed package need it.
needs_installed_data = pytest.mark.skipif(
    not data_module.has_all_files(SYSTEM_DATA_DIR),
    reason=f"Fashion-MNIST not installed in {SYSTEM_DATA_DIR} (sudo apt-get install dataset-fashion-mnist)",
)


def _copy_dataset(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in FILE_NAMES:
        source = data_file(SYSTEM_DATA_DIR, name)
        assert source is not None
        shutil.copy(source, dest / source.name)
    return dest


def _mirror_of_the_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file:// mirror serving the official .gz archives, in place of the real mirrors."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in FILE_NAMES:
        source = data_file(SYSTEM_DATA_DIR, name)
        assert source is not None
        content = source.read_bytes()
        (mirror / f"{name}.gz").write_bytes(content if source.suffix == ".gz" else gzip.compress(content))
    monkeypatch.setattr(data_module, "MIRRORS", (mirror.as_uri() + "/",))


def test_the_command_the_not_found_message_names_exists() -> None:
    result = CliRunner().invoke(cli, ["data", "download", "--help"])
    assert result.exit_code == 0, result.output
    assert "SHA-256" in result.output


@needs_installed_data
def test_download_reports_each_file_and_verifies_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _mirror_of_the_dataset(tmp_path, monkeypatch)
    dest = tmp_path / "fresh"
    result = CliRunner().invoke(data, ["download", "--dest", str(dest)])
    assert result.exit_code == 0, result.output
    assert [f"{name}.gz: fetching" for name in FILE_NAMES] == result.output.splitlines()[:4]
    assert f"Fashion-MNIST is in {dest}" in result.output
    assert "EDGE_AGENT_DATA" in result.output  # not a place searched by default, so say how to use it
    assert all(data_module.verify_dir(dest).values())


@needs_installed_data
def test_download_keeps_valid_files_and_fetches_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_module, "MIRRORS", ((tmp_path / "nowhere").as_uri() + "/",))  # would fail if asked
    dest = _copy_dataset(tmp_path / "have")
    monkeypatch.setenv("EDGE_AGENT_DATA", str(dest))
    result = CliRunner().invoke(data, ["download", "--dest", str(dest)])
    assert result.exit_code == 0, result.output
    assert result.output.count("already there and valid") == 4
    assert "EDGE_AGENT_DATA" not in result.output  # the agents already look there


def test_a_failed_download_is_one_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_module, "MIRRORS", ((tmp_path / "nowhere").as_uri() + "/",))
    result = CliRunner().invoke(data, ["download", "--dest", str(tmp_path / "cache")])
    assert result.exit_code == 1
    assert "Error: could not download" in result.output and "Traceback" not in result.output


@needs_installed_data
def test_check_finds_the_data_where_the_agents_look(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGE_AGENT_DATA", raising=False)
    result = CliRunner().invoke(data, ["check"])
    assert result.exit_code == 0, result.output
    assert f"searched {SYSTEM_DATA_DIR}: all four files" in result.output
    assert result.output.count(": ok") == 4 and f"in {SYSTEM_DATA_DIR} is intact" in result.output


@needs_installed_data
def test_check_rejects_a_file_that_is_not_the_official_content(tmp_path: Path) -> None:
    dest = _copy_dataset(tmp_path / "tampered")
    victim = data_file(dest, FILE_NAMES[1])
    assert victim is not None
    victim.write_bytes(gzip.compress(b"not fashion-mnist"))
    result = CliRunner().invoke(data, ["check", "--dir", str(dest)])
    assert result.exit_code == 1
    assert f"{FILE_NAMES[1]}: NOT the official content" in result.output
    assert f"{FILE_NAMES[0]}: ok" in result.output and "edge-agent data download" in result.output


def test_check_of_an_empty_place_says_how_to_get_the_data(tmp_path: Path) -> None:
    result = CliRunner().invoke(data, ["check", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "none of the files" in result.output and "dataset-fashion-mnist" in result.output


def test_a_destination_that_cannot_be_a_directory_is_one_error_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = CliRunner().invoke(data, ["download", "--dest", str(blocker / "data")])
    assert result.exit_code == 1
    assert result.output.splitlines() == [f"Error: --dest {blocker / 'data'}: Not a directory"]

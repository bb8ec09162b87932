"""`edge-agent profiles list|show`: a table of every profile, every field of one, one line for a bad name."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_agent.cli.profiles import profiles
from edge_agent.deploy.profiles import PROFILES_ENV, profile_dir

SHIPPED = sorted(path.stem for path in profile_dir().glob("*.toml"))


def test_list_prints_a_row_per_shipped_profile() -> None:
    result = CliRunner().invoke(profiles, ["list"])
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    assert header.split()[:3] == ["NAME", "BOARD", "ARCH"]
    assert [row.split()[0] for row in rows] == SHIPPED
    zero = next(row for row in rows if row.startswith("rpi-zero-2w "))
    assert "Raspberry Pi Zero 2 W" in zero and "512 MB" in zero and "300 MB" in zero and "4mbit" in zero


def test_show_prints_every_field_of_the_profile() -> None:
    result = CliRunner().invoke(profiles, ["show", "jetson-nano"])
    assert result.exit_code == 0, result.output
    values = {line.split()[0]: line.split(maxsplit=1)[1] for line in result.output.splitlines()[1:]
              if line.startswith("  ")}
    assert values["name"] == "NVIDIA Jetson Nano (4 GB)"
    assert values["execution_providers"] == "TensorrtExecutionProvider, CUDAExecutionProvider, CPUExecutionProvider"
    assert (values["cores"], values["memory_mb"], values["proj_dim"], values["latency"]) == ("4", "4096", "1024", "1ms")
    for table in ("[board]", "[runtime]", "[spark]", "[link]"):
        assert table in result.output


def test_show_unknown_name_fails_with_one_line_listing_known_profiles() -> None:
    result = CliRunner().invoke(profiles, ["show", "rpi-3"])
    assert result.exit_code == 1
    assert result.output.splitlines() == [f"Error: unknown profile 'rpi-3'; known profiles: {', '.join(SHIPPED)}"]


def test_list_reports_an_invalid_profile_as_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken.toml").write_text("[board]\nname = 'x'\n")
    monkeypatch.setenv(PROFILES_ENV, str(tmp_path))
    result = CliRunner().invoke(profiles, ["list"])
    assert result.exit_code == 1
    assert result.output.splitlines() == [f"Error: {tmp_path / 'broken.toml'}: [board] description: missing key"]

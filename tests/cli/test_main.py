"""The command group: every command is listed, and a command loads only its own module."""

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from edge_agent.cli.main import COMMANDS, cli

EDGE_AGENT = "from edge_agent.cli.main import cli; cli(prog_name='edge-agent')"
LOADED_BY_RUN_HELP = """
import sys
from edge_agent.cli.main import cli
try:
    cli(["run", "--help"])
except SystemExit:
    pass
print(" ".join(sorted(name for name in sys.modules if name.startswith("edge_agent.cli."))))
"""


def test_help_lists_every_command_with_its_summary() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    listed = result.output.split("Commands:")[1].split()
    assert [word for word in listed if word in COMMANDS] == list(COMMANDS)
    assert "Benchmarks of real agent fleets" in result.output


def test_run_loads_neither_the_benchmarks_nor_flash() -> None:
    done = subprocess.run([sys.executable, "-c", LOADED_BY_RUN_HELP], capture_output=True, text=True, check=True)
    *shown, last = done.stdout.splitlines()
    loaded = last.split()
    assert "--config" in "\n".join(shown) and "edge_agent.cli.run" in loaded
    assert not {"edge_agent.cli.bench", "edge_agent.cli.flash", "edge_agent.cli.inspect"} & set(loaded), loaded


def _completion(**env: str) -> str:
    """What `edge-agent` prints with click's completion variables set (the README's `_EDGE_AGENT_COMPLETE`)."""
    return subprocess.run([sys.executable, "-c", EDGE_AGENT], capture_output=True, text=True,
                          env={**os.environ, **env}, check=False).stdout


def test_shell_completion_as_the_readme_loads_it_completes_commands_and_choices() -> None:
    def complete(words: str) -> list[str]:
        cword = len(words.split()) - (0 if words.endswith(" ") else 1)
        lines = _completion(COMP_WORDS=words, COMP_CWORD=str(cword), _EDGE_AGENT_COMPLETE="bash_complete")
        return [line.split(",", 1)[1] for line in lines.splitlines()]

    assert complete("edge-agent bench li") == ["link"]
    assert complete("edge-agent run --backend ") == ["auto", "numpy", "torch", "onnxruntime"]
    source = _completion(_EDGE_AGENT_COMPLETE="bash_source")
    assert "complete -o nosort -F _edge_agent_completion edge-agent" in source


@pytest.mark.parametrize("command", [["simulate", "--setting", "smoke", "--rounds", "1"], ["demo", "--agents", "3"],
                                     ["bench", "link", "--agents", "3", "--rounds", "1"]])
def test_an_output_folder_that_cannot_be_made_is_one_line_naming_its_option(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--out", "/proc/x"])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and lines == ["Error: --out /proc/x: No such file or directory"], result.output

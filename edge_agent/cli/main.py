"""The `edge-agent` command group; each command's module is imported only when that command runs (or --help lists
it), so a board's `edge-agent run` does not load the benchmark, flash or plotting code."""

from __future__ import annotations

import importlib

import click

from edge_agent import __version__

# command name -> the module under edge_agent.cli that defines it (as an attribute of the same name), in the order
# --help lists them
COMMANDS = {
    "simulate": "simulate", "run": "run", "demo": "demo", "profiles": "profiles", "data": "data", "export": "export",
    "peers": "peers", "certs": "certs", "bench": "bench", "status": "status", "inspect": "inspect",
    "dashboard": "dashboard",
    "flash": "flash", "unflash": "flash",
}


class LazyGroup(click.Group):
    """A click group whose commands are imported by name when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        command = getattr(importlib.import_module(f"edge_agent.cli.{COMMANDS[cmd_name]}"), cmd_name)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edge-agent")
def cli() -> None:
    """Decentralized NTK learning (NTK-DFL, SPARK) on bandwidth-limited edge boards.

    Run `edge-agent COMMAND --help` for the options of a command.
    """

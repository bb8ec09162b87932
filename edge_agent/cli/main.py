"""The `edge-agent` command group; each command's module is imported only when that command runs (or --help lists
it), so a board's `edge-agent run` does not load the benchmark, flash or plotting code."""

from __future__ import annotations

import importlib

import click

from edge_agent import __version__

# command name -> (module under edge_agent.cli, attribute), in the order --help lists them
COMMANDS = {
    "simulate": ("simulate", "simulate"),
    "run": ("run", "run"),
    "demo": ("demo", "demo"),
    "profiles": ("profiles", "profiles"),
    "data": ("data", "data"),
    "export": ("export", "export"),
    "peers": ("peers", "peers"),
    "certs": ("certs", "certs"),
    "bench": ("bench", "bench"),
    "status": ("status", "status"),
    "inspect": ("inspect", "inspect"),
    "flash": ("flash", "flash"),
    "unflash": ("flash", "unflash"),
}


class LazyGroup(click.Group):
    """A click group whose commands are imported by name when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(f"edge_agent.cli.{module}"), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edge-agent")
def cli() -> None:
    """Decentralized NTK learning (NTK-DFL, SPARK) on bandwidth-limited edge boards.

    Run `edge-agent COMMAND --help` for the options of a command.
    """

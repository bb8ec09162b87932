"""The `edge-agent` command group."""

from __future__ import annotations

import click

from edge_agent import __version__
from edge_agent.cli.bench import bench
from edge_agent.cli.certs import certs
from edge_agent.cli.data import data
from edge_agent.cli.demo import demo
from edge_agent.cli.export import export
from edge_agent.cli.flash import flash, unflash
from edge_agent.cli.inspect import inspect
from edge_agent.cli.peers import peers
from edge_agent.cli.profiles import profiles
from edge_agent.cli.run import run
from edge_agent.cli.simulate import simulate
from edge_agent.cli.status import status


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edge-agent")
def cli() -> None:
    """Decentralized NTK learning (NTK-DFL, SPARK) on bandwidth-limited edge boards.

    Run `edge-agent COMMAND --help` for the options of a command.
    """


cli.add_command(simulate)
cli.add_command(run)
cli.add_command(demo)
cli.add_command(profiles)
cli.add_command(data)
cli.add_command(export)
cli.add_command(peers)
cli.add_command(certs)
cli.add_command(bench)
cli.add_command(status)
cli.add_command(inspect)
cli.add_command(flash)
cli.add_command(unflash)

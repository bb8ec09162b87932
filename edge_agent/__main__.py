"""`python -m edge_agent` runs the command line."""

from edge_agent.cli.main import cli

cli()

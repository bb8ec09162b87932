"""`edge-agent inspect`: an agent's recent round records, streamed over gRPC, as a table, JSON or a plot."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from edge_agent.cli.errors import OperatorError
from edge_agent.cli.reach import Unreachable, check_run, operator_credentials, reach_options, resolve
from edge_agent.fleet.dial import Connection, UnansweredError
from edge_agent.fleet.records import records_figure, records_json, records_table
from edge_agent.transport.status import MAX_RECORDS


@click.command()
@click.argument("peer")
@click.option("--rounds", "limit", type=click.IntRange(min=1, max=MAX_RECORDS), default=20, show_default=True,
              help=f"The most recent records to fetch (an agent keeps the last {MAX_RECORDS}).")
@click.option("--json", "as_json", is_flag=True, help="A JSON document: the agent and its records as it wrote them.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a PNG of accuracy, MB per link and seconds per phase against rounds (needs matplotlib: "
              "pip install 'edge-agent[plot]').")
@reach_options
def inspect(peer: str, limit: int, as_json: bool, plot: Path | None, certs_dir: Path | None, identity: str,
            run_id: str | None, timeout: float, service_type: str) -> None:
    """Show PEER's most recent round records (PEER: host:port or an agent id found on mDNS).

    `round` is the record's 0-based round (docs/records.md).
    """
    check_run(run_id)
    tls = operator_credentials(certs_dir, identity)
    [target] = resolve([peer], run_id, service_type, timeout)
    try:
        connection = Connection(target, tls)
        try:
            lines = connection.ask(lambda client: client.records(limit, timeout=connection.timeout))
        finally:
            connection.close()
    except UnansweredError as error:
        raise Unreachable(str(error)) from None
    records = _parsed(lines, connection.target.name)
    if plot is not None:
        _plot(records, plot, connection.target.agent_id or connection.target.address)
    if as_json:
        click.echo(json.dumps(records_json(connection.target, records, datetime.now(UTC)), indent=2))
    elif plot is None:
        click.echo(records_table(records) if records else f"{connection.target.name} has no round records yet")


def _parsed(lines: list[str], name: str) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in lines]
    except json.JSONDecodeError as error:
        raise Unreachable(f"{name} sent a record that is not JSON: {error}") from None


def _plot(records: list[dict[str, Any]], path: Path, who: str) -> None:
    if not any(r.get("status") == "trained" for r in records):
        raise Unreachable(f"{who} has no trained rounds to plot yet")
    try:
        figure = records_figure(records, f"{who}: last {len(records)} round records")
    except ImportError as error:
        raise OperatorError(str(error)) from None
    try:
        figure.savefig(path, dpi=100)
    except OSError as error:
        raise OperatorError(f"--plot: cannot write {path}: {error.strerror or error}") from None
    click.echo(f"wrote {path}")

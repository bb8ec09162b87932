"""`edge-agent status`: ask agents over gRPC where they stand: round and phase, neighbours, bytes per link, the
last round's seconds and accuracy, uptime and memory."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from edge_agent.cli.errors import OperatorError
from edge_agent.cli.interrupt import until_interrupted
from edge_agent.cli.reach import Unreachable, check_run, find_all, operator_credentials, reach_options, resolve
from edge_agent.fleet.dial import Connection, Target, UnansweredError
from edge_agent.fleet.status import Gone, ask_status, report_json, status_text
from edge_agent.transport.tls import ClusterTls

CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear screen: --watch redraws in place on a terminal


@click.command()
@click.argument("targets", nargs=-1, metavar="[TARGET]...")
@click.option("--all", "every", is_flag=True, help="Every agent that answers on mDNS (of --run, when given).")
@click.option("--json", "as_json", is_flag=True, help="JSON with stable keys (docs/operator.md); one line per "
              "refresh with --watch.")
@click.option("--watch", is_flag=True, help="Refresh in place until Ctrl-C. An agent that stops answering ends it "
              "(exit status 1); with --all it is listed as gone instead and the watch goes on.")
@click.option("--interval", type=click.FloatRange(min=0.2, max=3600), default=2.0, show_default=True,
              help="Seconds between refreshes with --watch.")
@reach_options
def status(targets: tuple[str, ...], every: bool, as_json: bool, watch: bool, interval: float,
           certs_dir: Path | None, identity: str, run_id: str | None, timeout: float, service_type: str) -> None:
    """Ask agents for their state: TARGET is host:port (the agent's gRPC port) or an agent id found on mDNS.

    Shows run, id, version, profile, backend; state, phase and round (next round = rounds done; the last record's
    0-based round); members and this round's neighbours; the access link; wire bytes per link this round, last
    round and in total; the last round's seconds per phase and accuracy; uptime and peak RSS; TLS or plaintext.
    """
    if bool(targets) == every:
        raise OperatorError("give TARGET... (host:port or agent id) or --all, not both" if every else
                            "give TARGET... (host:port or agent id), or --all for every agent on mDNS")
    check_run(run_id)
    tls = operator_credentials(certs_dir, identity)
    with until_interrupted() if watch else contextlib.nullcontext(threading.Event()) as stop:
        try:
            _show(targets, every, as_json, watch, interval, tls, run_id, timeout, service_type, stop)
        except KeyboardInterrupt:  # without --watch, Ctrl-C is Python's
            return


def _show(targets: tuple[str, ...], every: bool, as_json: bool, watch: bool, interval: float,
          tls: ClusterTls | None, run_id: str | None, timeout: float, service_type: str,
          stop: threading.Event) -> None:
    """Ask, print, and with --watch again every `interval` until `stop` is set."""
    asked = resolve(targets, run_id, service_type, timeout) if targets else find_all(run_id, service_type, timeout)
    fleet_watch = every and watch  # boards come and go: the watch goes on, and says who went
    gone: dict[str, Gone] = {}  # by address
    connections: dict[str, Connection] = {}
    try:
        while not stop.is_set():
            agents = []
            for target in asked:
                try:
                    agents.append(_ask(target, tls, connections))
                    gone.pop(target.address, None)
                except Unreachable as error:
                    if not fleet_watch:
                        raise
                    gone.setdefault(target.address, Gone(target, datetime.now(UTC), str(error)))
            if stop.is_set():
                return
            click.echo(_render(agents, list(gone.values()) if fleet_watch else None, as_json, watch, interval))
            if not watch:
                return
            if every:  # agents that joined or left since: the next sweep says
                previous, asked = asked, _sweep(run_id, service_type, timeout, stop)
                now = datetime.now(UTC)
                for target in set(previous) - set(asked):
                    gone.setdefault(target.address, Gone(target, now, "no longer answers on mDNS"))
            else:
                stop.wait(interval)
    finally:
        for connection in connections.values():
            connection.close()


def _sweep(run_id: str | None, service_type: str, timeout: float, stop: threading.Event) -> list[Target]:
    """Every agent on mDNS now; none is no error while watching (they may come back)."""
    try:
        return find_all(run_id, service_type, timeout, stop)
    except Unreachable:
        return []


def _ask(target: Target, tls: ClusterTls | None, connections: dict[str, Connection]) -> dict[str, Any]:
    """One agent's status JSON, over a connection kept for the next refresh; Unreachable when it does not answer."""
    try:
        return ask_status(target, tls, connections)
    except UnansweredError as error:
        raise Unreachable(str(error)) from None


def _render(agents: list[dict[str, Any]], gone: list[Gone] | None, as_json: bool, watch: bool,
            interval: float) -> str:
    """The refresh: one block per agent; with `--all --watch` also the agents seen before that no longer answer."""
    now = datetime.now(UTC)
    if as_json:
        report = report_json(agents, now)
        if gone is not None:
            report["gone"] = [agent.json() for agent in gone]
        return json.dumps(report, indent=None if watch else 2)
    text = "\n\n".join(status_text(agent) for agent in agents) or "no agent answers now"
    if gone:
        text += "\n\n" + "\n".join(agent.line() for agent in gone)
    if not watch:
        return text
    prefix = CLEAR if sys.stdout.isatty() else ""
    return f"{prefix}{text}\n\n{now:%H:%M:%S}Z, refreshing every {interval:g} s; Ctrl-C to stop"

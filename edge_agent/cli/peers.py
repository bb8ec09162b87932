"""`edge-agent peers`: list the agents that answer on mDNS, with their run, address, round and liveness."""

from __future__ import annotations

import ipaddress
import json
import sys
from datetime import UTC, datetime

import click
from zeroconf import InterfaceChoice

from edge_agent.cli.errors import OperatorError
from edge_agent.cli.interrupt import until_interrupted
from edge_agent.cli.reach import check_run
from edge_agent.discovery.mdns import SERVICE_TYPE, InterfacesType, MdnsBrowser
from edge_agent.fleet.query import AgentSighting, FleetView, listing_json, listing_table

CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear screen: --watch redraws in place on a terminal


class NothingFound(click.ClickException):
    """No agent answered: one line, exit status 1 (like `data check` finding nothing)."""

    exit_code = 1


@click.command()
@click.option("--run", "run_id", help="Only agents of this run (its name, or the settings' hash `run` printed).")
@click.option("--json", "as_json", is_flag=True, help="JSON with stable keys (docs/operator.md); one line per "
              "refresh with --watch.")
@click.option("--watch", is_flag=True, help="Refresh in place until Ctrl-C; agents that stop answering turn stale, "
              "those that say goodbye offline.")
@click.option("--timeout", type=click.FloatRange(min=0.5, max=60), default=3.0, show_default=True,
              help="Seconds to listen for answers (per refresh with --watch).")
@click.option("--interface", help="Browse on the interface with this IP address (default: every IPv4 interface).")
@click.option("--service-type", default=SERVICE_TYPE, show_default=True, hidden=True)
def peers(run_id: str | None, as_json: bool, watch: bool, timeout: float, interface: str | None,
          service_type: str) -> None:
    """List the agents that answer on the LAN's mDNS: id, run, address, shard, protocol, algorithm, profile,
    round (the next round each runs: rounds done) and state: online, stale (stopped answering) or offline
    (said goodbye), with when that began.

    Without --watch, an empty answer is an error (exit status 1).
    """
    check_run(run_id)
    view = FleetView(run_id)
    try:
        with until_interrupted() as stop, MdnsBrowser(service_type, _interfaces(interface)) as browser:
            while not stop.is_set():
                agents = view.fold(browser.sweep(timeout, stop), datetime.now(UTC))
                if stop.is_set():
                    return
                if not watch and not agents:
                    of = f" of run {run_id}" if run_id else ""
                    raise NothingFound(f"no agents{of} answered on {service_type} within {timeout:g} s (are they "
                                       "running with mDNS on this network? try --interface)")
                click.echo(_listing(agents, service_type, run_id, as_json, watch, timeout))
                if not watch:
                    return
    except OSError as error:
        raise OperatorError(f"cannot browse mDNS{f' on {interface}' if interface else ''}: {error}") from None


def _listing(agents: list[AgentSighting], service_type: str, run_id: str | None, as_json: bool, watch: bool,
             timeout: float) -> str:
    now = datetime.now(UTC)
    if as_json:  # one line per refresh with --watch
        return json.dumps(listing_json(agents, service_type, run_id, now), indent=None if watch else 2)
    table = listing_table(agents, now) if agents else "no agents answer yet"
    if not watch:
        return table
    prefix = CLEAR if sys.stdout.isatty() else ""
    return f"{prefix}{table}\n{now:%H:%M:%S}Z, refreshing every {timeout:g} s; Ctrl-C to stop"


def _interfaces(interface: str | None) -> InterfacesType:
    if interface is None:
        return InterfaceChoice.All
    try:
        address = ipaddress.IPv4Address(interface)
    except ValueError:
        raise OperatorError(f"--interface: {interface!r:.60} is not an IPv4 address of this machine") from None
    return [str(address)]

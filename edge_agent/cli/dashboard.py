"""`edge-agent dashboard`: serve a live web page of the fleet (graph, links, learning curves) on the operator's
machine, reading agents as `status` and `inspect` do."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import click

from edge_agent.cli.errors import OperatorError
from edge_agent.cli.reach import check_run, operator_credentials
from edge_agent.discovery.addresses import parse_listen
from edge_agent.discovery.mdns import SERVICE_TYPE
from edge_agent.discovery.peers import parse_peer_list

EXTRA = "dashboard"  # pip install 'edge-agent[dashboard]'


@click.command()
@click.option("--run", "run_id", help="Only agents of this run (its name, or the settings' hash `run` printed).")
@click.option("--peers", "peer_list", default="", metavar="HOST:PORT,...",
              help="Ask these agents (their gRPC ports) instead of finding agents on mDNS.")
@click.option("--certs", "certs_dir", type=click.Path(file_okay=False, path_type=Path),
              help="The cluster's certs folder: ca.crt and the certificate and key of --identity. Needed for agents "
              "that run with --certs; --insecure agents are asked in plaintext.")
@click.option("--identity", default="operator", show_default=True,
              help="Whose certificate in --certs to show: one made by `edge-agent certs issue operator --operator`, "
              "which agents answer for status and records only.")
@click.option("--listen", default="127.0.0.1:8080", show_default=True, metavar="ADDR:PORT",
              help="Where the page is served (port 0: a free one). Another address than loopback lets anyone who "
              "reaches it read the fleet.")
@click.option("--interval", type=click.FloatRange(min=0.5, max=3600), default=2.0, show_default=True,
              help="Seconds between asking every agent.")
@click.option("--timeout", type=click.FloatRange(min=0.5, max=60), default=3.0, show_default=True,
              help="Seconds each mDNS sweep listens for agents.")
@click.option("--service-type", default=SERVICE_TYPE, show_default=True, hidden=True)
def dashboard(run_id: str | None, peer_list: str, certs_dir: Path | None, identity: str, listen: str,
              interval: float, timeout: float, service_type: str) -> None:
    """Serve a live page of the fleet: the agents as a graph with this round's links (bytes and rate), boards gone
    and since when; per agent accuracy, seconds per phase and RSS against rounds; MB per link per round; the run's
    totals. `GET /api/fleet` gives the same as JSON (the agents under `status --json`'s keys).

    It finds agents as `peers` does (mDNS, or --peers) and asks them as `status` and `inspect` do, over mutual TLS
    with an operator certificate. It only reads: no request to it changes an agent. It serves 127.0.0.1 unless
    --listen says otherwise. Ctrl-C stops it.

    \b
    It needs aiohttp, which boards never do:
      pip install 'edge-agent[dashboard]'
    """
    check_run(run_id)
    try:
        host, port = parse_listen(listen)
    except ValueError as error:
        raise OperatorError(f"--listen: {error}") from None
    try:
        peers = tuple(parse_peer_list(peer_list))
    except ValueError as error:
        raise OperatorError(f"--peers: {error}") from None
    tls = operator_credentials(certs_dir, identity)
    try:
        from edge_agent.fleet.dashboard.feed import FeedConfig
        from edge_agent.fleet.dashboard.server import serve
    except ImportError as error:
        raise OperatorError(f"the dashboard needs {error.name or 'aiohttp'}: pip install 'edge-agent[{EXTRA}]'") \
            from None
    watched = f"agents at {', '.join(f'{h}:{p}' for h, p in peers)}" if peers else \
        f"agents{f' of run {run_id}' if run_id else ''} on mDNS"
    announced: list[str] = []

    def announce(url: str) -> None:
        announced.append(url)
        exposed = "" if ipaddress.ip_address(host).is_loopback else " (not loopback: anyone who reaches it can read)"
        click.echo(f"dashboard at {url}{exposed}, watching {watched}; Ctrl-C to stop")

    config = FeedConfig(run_id, service_type, peers, timeout, interval)
    try:
        asyncio.run(serve(config, tls, host, port, announce))
    except OSError as error:
        if not announced:
            raise OperatorError(f"--listen: cannot serve on {listen}: {error.strerror or error}") from None
        raise OperatorError(f"cannot browse mDNS: {error}") from None

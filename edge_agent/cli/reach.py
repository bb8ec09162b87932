"""What `status` and `inspect` share: the flags that say how to reach agents, and targets resolved to addresses."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from zeroconf import InterfaceChoice

from edge_agent.cli.errors import OperatorError
from edge_agent.discovery.mdns import SERVICE_TYPE
from edge_agent.discovery.peers import AGENT_ID_PATTERN
from edge_agent.fleet.dial import Target, browse, operator_tls, parse_address
from edge_agent.run_identity import RUN_ID_PATTERN
from edge_agent.transport.tls import ClusterTls, IdentityError

F = TypeVar("F", bound=Callable[..., Any])


class Unreachable(click.ClickException):
    """An agent that could not be asked (unknown, not listening, refusing us, gone): one line, exit status 1."""

    exit_code = 1


_OPTIONS = (
    click.option("--certs", "certs_dir", type=click.Path(file_okay=False, path_type=Path),
                 help="The cluster's certs folder: ca.crt and the certificate and key of --identity. Needed for "
                 "agents that run with --certs; --insecure agents are asked in plaintext."),
    click.option("--identity", default="operator", show_default=True,
                 help="Whose certificate in --certs to show (<identity>.crt, <identity>.key): one made by "
                 "`edge-agent certs issue operator --operator`."),
    click.option("--run", "run_id", help="With agent ids or --all: only agents of this run."),
    click.option("--timeout", type=click.FloatRange(min=0.5, max=60), default=3.0, show_default=True,
                 help="Seconds to listen on mDNS when agents are named by id or with --all."),
    click.option("--service-type", default=SERVICE_TYPE, show_default=True, hidden=True),
)


def reach_options(command: F) -> F:
    """Decorate a command with --certs, --identity, --run, --timeout and --service-type."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def operator_credentials(certs_dir: Path | None, identity: str) -> ClusterTls | None:
    """The operator's TLS credentials, or None without --certs (one line, exit status 2, when unusable)."""
    if certs_dir is None:
        return None
    if not certs_dir.is_dir():
        raise OperatorError(f"--certs: {certs_dir} is not a folder")
    try:
        return operator_tls(certs_dir, identity)
    except IdentityError as error:
        raise OperatorError(f"--certs: {error}") from None


def check_run(run_id: str | None) -> None:
    """One line and exit status 2 for a --run that cannot be a run id."""
    if run_id is not None and not RUN_ID_PATTERN.fullmatch(run_id):
        raise OperatorError(f"--run: {run_id!r:.60} is not a run id (1-32 letters, digits, '-' or '_')")


def resolve(names: Sequence[str], run_id: str | None, service_type: str, timeout: float) -> list[Target]:
    """host:port as given; agent ids looked up on mDNS (Unreachable for one nobody answers for)."""
    targets: list[Target | str] = []
    for name in names:
        try:
            address = parse_address(name)
        except ValueError as error:
            raise OperatorError(str(error)) from None
        if address is None and not AGENT_ID_PATTERN.fullmatch(name):
            raise OperatorError(f"{name!r:.60} is neither host:port nor an agent id")
        targets.append(address or name)
    wanted = [t for t in targets if isinstance(t, str)]
    if not wanted:
        return [t for t in targets if isinstance(t, Target)]
    found = {r.agent_id: r for r in find(run_id, service_type, timeout)}
    for name in wanted:
        if name not in found:
            of = f" of run {run_id}" if run_id else ""
            raise Unreachable(f"unknown peer: no agent {name}{of} answered on {service_type} within {timeout:g} s "
                              "(`edge-agent peers` lists those that do)")
    return [t if isinstance(t, Target) else Target(found[t].host, found[t].port, t) for t in targets]


def find_all(run_id: str | None, service_type: str, timeout: float,
             stop: threading.Event | None = None) -> list[Target]:
    """Every agent (of the run) that answers on mDNS now (browsing until `stop` is set, at most `timeout`);
    Unreachable when none does."""
    found = [Target(r.host, r.port, r.agent_id) for r in find(run_id, service_type, timeout, stop)]
    if not found:
        of = f" of run {run_id}" if run_id else ""
        raise Unreachable(f"no agents{of} answered on {service_type} within {timeout:g} s")
    return found


def find(run_id: str | None, service_type: str, timeout: float, stop: threading.Event | None = None) -> list[Any]:
    try:
        return browse(service_type, run_id, timeout, InterfaceChoice.All, stop)
    except OSError as error:
        raise OperatorError(f"cannot browse mDNS: {error}") from None

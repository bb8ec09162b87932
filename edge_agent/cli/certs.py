"""`edge-agent certs`: the cluster CA, one key and certificate per board, and revocation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from edge_agent.cli.errors import OperatorError
from edge_agent.deploy import certs as cluster

T = TypeVar("T")
DIR_OPTION = click.option("--dir", "folder", required=True, type=click.Path(file_okay=False, path_type=Path),
                          help="The cluster's certs folder (keep it off the boards but for each board's own files).")


@click.group()
def certs() -> None:
    """The cluster CA and per-board identities for `edge-agent run --certs DIR` (mutual TLS)."""


@certs.command()
@DIR_OPTION
def init(folder: Path) -> None:
    """Create the cluster CA (ca.crt, ca.key) and an empty revocation list in DIR (made, readable by you alone,
    when it does not exist)."""
    path = _guarded(lambda: cluster.init_ca(folder))
    click.echo(f"cluster CA created: {path} (its key, {folder / 'ca.key'}, stays on this machine)")


@certs.command()
@click.argument("name")
@DIR_OPTION
@click.option("--days", type=click.IntRange(min=1), default=cluster.BOARD_DAYS, show_default=True)
@click.option("--operator", is_flag=True, help="A client-only certificate for `edge-agent status` and `inspect`: "
              "agents answer it Status, PeerInfo and Records but refuse it round messages.")
def issue(name: str, folder: Path, days: int, operator: bool) -> None:
    """Issue board NAME's key and certificate (NAME, its agent id, in the SAN), or with --operator an operator's."""
    path = _guarded(lambda: cluster.issue(folder, name, days, operator))
    where = ("keep both on the operator's machine" if operator
             else "copy both, with ca.crt and revoked.crl, to the board")
    click.echo(f"issued {name}{' (operator)' if operator else ''}: {path} and {path.with_suffix('.key')} ({where})")


@certs.command(name="list")
@DIR_OPTION
def list_(folder: Path) -> None:
    """Show every issued certificate: name, serial, expiry, revoked."""
    rows = _guarded(lambda: cluster.listing(folder))
    width = max([4, *(len(r.name) for r in rows)])
    click.echo(f"{'name':<{width}}  {'serial':<40}  {'expires':<10}  revoked")
    for row in rows:
        click.echo(f"{row.name:<{width}}  {row.serial:<40x}  {row.not_after:%Y-%m-%d}  "
                   f"{'yes' if row.revoked else 'no'}")


@certs.command()
@click.argument("name")
@DIR_OPTION
def revoke(name: str, folder: Path) -> None:
    """Revoke board NAME: add it to revoked.crl (copy that file to every board; agents re-read it)."""
    serial = _guarded(lambda: cluster.revoke(folder, name))
    click.echo(f"revoked {name} (serial {serial:x}); copy {folder / cluster.CRL_NAME} to every board")


def _guarded(action: Callable[[], T]) -> T:
    try:
        return action()
    except cluster.CertsError as error:
        raise OperatorError(str(error)) from None
    except OSError as error:
        raise OperatorError(f"{error.filename or 'certs folder'}: {error.strerror}") from None

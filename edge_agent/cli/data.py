"""`edge-agent data download|check`: put Fashion-MNIST on this machine, and check what the agents will load."""

from __future__ import annotations

from pathlib import Path

import click

from edge_agent.learning.data import (
    FILE_NAMES,
    DataNotFoundError,
    DownloadError,
    candidate_dirs,
    data_file,
    download_dataset,
    find_data_dir,
    user_cache_dir,
    verify_dir,
)


@click.group()
def data() -> None:
    """Fashion-MNIST on this machine: fetch it, or check where the agents find it and that it is intact.

    Agents and simulations look in $EDGE_AGENT_DATA if it is set, otherwise in /usr/share/datasets/fashion-mnist
    (the Debian package dataset-fashion-mnist) and then in ~/.cache/edge-agent/fashion-mnist.
    """


@data.command("download")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the four archives (default: ~/.cache/edge-agent/fashion-mnist, or under "
                   "$XDG_CACHE_HOME; searched without setting anything).")
def download_command(dest: Path | None) -> None:
    """Fetch the four official Fashion-MNIST archives (about 30 MB), checking each one's SHA-256.

    Files already there with the official content are kept; a file appears only once it is complete and
    verified, so an interrupted download leaves nothing half-written.
    """
    target = dest or user_cache_dir()

    def report(name: str, fetched: bool) -> None:
        click.echo(f"{name}.gz: {'fetching' if fetched else 'already there and valid'}", err=True)

    try:
        download_dataset(target, report)
    except DownloadError as error:
        raise click.ClickException(str(error)) from error
    except OSError as error:
        where = f"--dest {target}" if dest is not None else f"cannot write the dataset to {target}"
        raise click.ClickException(f"{where}: {error.strerror or error}") from error
    click.echo(f"Fashion-MNIST is in {target}")
    if target.resolve() not in {place.resolve() for place in candidate_dirs()}:
        click.echo(f"Agents do not look there: set EDGE_AGENT_DATA={target} to use it.", err=True)


@data.command("check")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Check this directory instead of the places the agents search.")
def check_command(directory: Path | None) -> None:
    """Show where the dataset is found and check each file's content against the official SHA-256.

    Exits with status 1 if no place searched holds all four files or if a file's content is not the official one.
    """
    for place in candidate_dirs(directory):
        missing = [name for name in FILE_NAMES if data_file(place, name) is None]
        found_here = ("all four files" if not missing else "none of the files" if len(missing) == len(FILE_NAMES)
                      else "missing " + ", ".join(missing))
        click.echo(f"searched {place}: {found_here}")
    try:
        found = find_data_dir(directory)
    except DataNotFoundError as error:
        raise click.ClickException(str(error)) from error
    verified = verify_dir(found)
    for name, ok in verified.items():
        click.echo(f"  {name}: {'ok' if ok else 'NOT the official content'}")
    if not all(verified.values()):
        raise click.ClickException(f"{found} holds files that are not the official Fashion-MNIST; remove them and "
                                   f"run `edge-agent data download`")
    click.echo(f"Fashion-MNIST in {found} is intact")

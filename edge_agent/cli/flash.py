"""`edge-agent flash INVENTORY` and `edge-agent unflash INVENTORY`: install, upgrade, roll back and remove a fleet."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

import click

import edge_agent
from edge_agent.cli.errors import OperatorError
from edge_agent.deploy.bundle import Bundle, BundleError, build_bundle
from edge_agent.deploy.inventory import BoardEntry, Inventory, InventoryError, load_inventory
from edge_agent.deploy.push import (
    FAILED,
    Outcome,
    flash_board,
    in_parallel,
    result_table,
    rollback_board,
    unflash_board,
)
from edge_agent.deploy.ssh import SshOptions

NOT_IN_WHEEL = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
                                      "runs", "tests", "bench")
INVENTORY = click.argument("inventory_file", metavar="INVENTORY.toml",
                           type=click.Path(dir_okay=False, path_type=Path))
ONLY = click.option("--only", metavar="NAME,...", help="Only these boards of the inventory.")
PARALLEL = click.option("--parallel", type=click.IntRange(min=1), default=8, show_default=True,
                        help="Boards worked on at once.")


@click.command()
@INVENTORY
@ONLY
@click.option("--dry-run", is_flag=True,
              help="Build the bundles, check each board (architecture against its profile, Python and venv, sudo "
                   "with become, the interface to advertise, free disk) and ask what it runs; copy and change "
                   "nothing. One line per problem.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Only write each board's bundle into DIR/NAME/ (for boards provisioned offline: copy it there "
                   "and run `sh install.sh install .`).")
@click.option("--wheel", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The edge-agent wheel to install (default: built from this source checkout).")
@click.option("--wheelhouse", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A folder of wheels for the boards' platforms (`pip download`), so boards need no package index.")
@click.option("--rollback", "rollback_name", metavar="NAME", help="Return board NAME to its previous install.")
@PARALLEL
def flash(inventory_file: Path, only: str | None, dry_run: bool, out: Path | None, wheel: Path | None,
          wheelhouse: Path | None, rollback_name: str | None, parallel: int) -> None:
    """Install every board of INVENTORY.toml (or upgrade it; an unchanged board is left alone) and (re)start it.

    Each board is checked first (architecture, Python, sudo with become, the interface to advertise, free disk);
    one with a problem gets one failed line per problem and nothing is copied. Each board gets the project wheel
    (and --wheelhouse's wheels), its profile and kernels, its own certificate and the CA's (never another board's
    key, never the CA key), its agent.toml, a hardened systemd unit and an install script. Ends with a table of what
    happened on each board; exit status 1 if any board failed.
    """
    inventory = _inventory(inventory_file)
    progress = _progress_printer()
    if rollback_name is not None:
        if "," in rollback_name:
            raise OperatorError(f"--rollback takes one board, got {rollback_name!r}")
        board, = _selected(inventory, rollback_name)
        _finish([rollback_board(board, ssh_options(inventory), progress)])
        return
    boards = _selected(inventory, only)
    with tempfile.TemporaryDirectory(prefix="edge-agent-flash-") as scratch:
        wheel = wheel or build_wheel(Path(scratch), progress)
        root = out if out is not None else Path(scratch) / "bundles"
        bundles: dict[str, Bundle | Outcome] = {}
        for board in boards:  # one at a time: kernels are exported once and wheels hashed on this machine
            progress(board.name, "building its bundle")
            try:
                bundles[board.name] = build_bundle(inventory, board, root / board.name, wheel, wheelhouse)
            except (BundleError, OSError) as error:
                bundles[board.name] = Outcome(board.name, str(board.ssh), FAILED, "", str(error))
        if out is not None:
            _finish([_written(item, board) for board, item in zip(boards, bundles.values(), strict=True)])
            return
        options = ssh_options(inventory)
        jobs = [_flash_job(bundles[board.name], options, progress, inventory.python, dry_run) for board in boards]
        _finish([outcome for outcomes in in_parallel(jobs, parallel) for outcome in outcomes])


@click.command()
@INVENTORY
@ONLY
@PARALLEL
@click.option("--keep-state", is_flag=True,
              help="Leave each board's checkpoints, round records and log (and, under systemd, the service user "
                   "who owns them); a later flash resumes from the checkpoint.")
def unflash(inventory_file: Path, only: str | None, parallel: int, keep_state: bool) -> None:
    """Stop the agent on every board of INVENTORY.toml and remove all `flash` installed there (unit, releases,
    venvs, state, the service user)."""
    inventory = _inventory(inventory_file)
    progress, options = _progress_printer(), ssh_options(inventory)
    boards = _selected(inventory, only)
    _finish(in_parallel([partial(unflash_board, board, options, progress, keep_state) for board in boards],
                        parallel))


def ssh_options(inventory: Inventory) -> SshOptions:
    return SshOptions(known_hosts=inventory.known_hosts, identity=inventory.identity, become=inventory.become)


def build_wheel(scratch: Path, progress: Callable[[str, str], None]) -> Path:
    """The project's wheel, built without build isolation from a copy of this source checkout (no build/ or
    *.egg-info lands in it); OperatorError when edge-agent is not running from a checkout."""
    source = Path(edge_agent.__file__).resolve().parents[1]
    if not (source / "pyproject.toml").is_file():
        raise OperatorError("this edge-agent is not a source checkout: give --wheel FILE (build one in a checkout "
                            "with `pip wheel --no-deps -w dist .`)")
    progress("*", f"building the wheel from {source}")
    shutil.copytree(source, scratch / "src", ignore=NOT_IN_WHEEL)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                            "-w", str(scratch / "dist"), str(scratch / "src")], capture_output=True, text=True,
                           check=False, timeout=600)
    wheels = sorted((scratch / "dist").glob("edge_agent-*.whl"))
    if built.returncode != 0 or not wheels:
        last = (built.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise click.ClickException(f"building the wheel failed: {last}")
    return wheels[0]


def _flash_job(item: Bundle | Outcome, options: SshOptions, progress: Callable[[str, str], None], python: str,
               dry_run: bool) -> Callable[[], list[Outcome]]:
    if isinstance(item, Outcome):
        return lambda: [item]
    return lambda: flash_board(item, options, progress, python, dry_run)


def _written(item: Bundle | Outcome, board: BoardEntry) -> Outcome:
    if isinstance(item, Outcome):
        return item
    return Outcome(board.name, str(board.ssh), "written", item.short, str(item.folder))


def _inventory(path: Path) -> Inventory:
    try:
        return load_inventory(path)
    except InventoryError as error:
        raise OperatorError(str(error)) from None


def _selected(inventory: Inventory, only: str | None) -> tuple[BoardEntry, ...]:
    try:
        return inventory.select(only)
    except InventoryError as error:
        raise OperatorError(str(error)) from None


def _progress_printer() -> Callable[[str, str], None]:
    lock = threading.Lock()

    def progress(board: str, message: str) -> None:
        with lock:
            click.echo(f"{board}: {message}", err=True)

    return progress


def _finish(outcomes: list[Outcome]) -> None:
    click.echo(result_table(outcomes))
    failed = [outcome.board for outcome in outcomes if not outcome.ok]
    if failed:
        raise click.exceptions.Exit(1)

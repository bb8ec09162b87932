"""Flash, roll back and unflash boards over ssh, several at once, with a progress line per step and one result each.

Each board is checked first (`install.sh check`, deploy.preflight: architecture, Python, sudo, the interface to
advertise, free disk); a board with a problem gets one failed line per problem and nothing is copied. Then it is
asked what it runs (`install.sh status`): a board already on the bundle's release with its agent up is left alone
("unchanged", nothing copied, nothing restarted). Otherwise one ssh connection carries the bundle as a tar stream
and runs its install script, which installs the release beside the old one and switches over (the wheels are left
out when the board already has the venv they make).
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TypeVar

from edge_agent.deploy.bundle import Bundle, install_script
from edge_agent.deploy.inventory import BoardEntry
from edge_agent.deploy.preflight import Expected, disk_problem, problems
from edge_agent.deploy.ssh import Remote, SshOptions, run_remote

T = TypeVar("T")

Progress = Callable[[str, str], None]  # (board name, what it is doing)
FAILED = "failed"
UNPACK_AND_INSTALL = ('d=$(mktemp -d) && tar -x -C "$d" && sh "$d/install.sh" install "$d"; s=$?; rm -rf "$d"; '
                      'exit $s')


@dataclass(frozen=True)
class Outcome:
    """One board's line in the result table."""

    board: str
    target: str
    result: str  # installed, upgraded, unchanged, started, rolled-back, removed, absent, written, would-..., failed
    release: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.result != FAILED


def board_options(options: SshOptions, board: BoardEntry) -> SshOptions:
    """The fleet's ssh options with the board's own identity, if it has one."""
    return replace(options, identity=board.identity) if board.identity is not None else options


def flash_board(bundle: Bundle, options: SshOptions, progress: Progress, python: str = "python3",
                dry_run: bool = False) -> list[Outcome]:
    """Bring one board to the bundle's release: unchanged, installed, upgraded or started; failed with a reason, one
    line per problem the checks found (then nothing was copied). `python`: the inventory's command on the board."""
    board = bundle.board
    target, options = str(board.ssh), board_options(options, board)

    def failed(*reasons: str) -> list[Outcome]:
        return [Outcome(board.name, target, FAILED, bundle.short, reason) for reason in reasons]
    progress(board.name, f"checking {target}")
    check = run_remote(board.ssh, replace(options, become=False),  # as the ssh user: sudo is one of the checks
                       ["sh", "-s", "--", "check", python, board.advertise or "", "yes" if options.become else "no"],
                       stdin=install_script().encode())
    if check.status != 0:
        return failed(check.reason())
    seen = check.values()
    found = problems(seen, Expected(bundle.architecture, board.profile, python, board.advertise, options.become))
    if found:
        return failed(*found)
    progress(board.name, f"asking {target} what it runs")
    status = _script(board, options, "status")
    if status.status != 0:
        return failed(status.reason())
    now = status.values()
    if now.get("release") == bundle.release and now.get("running") == "yes":
        return [Outcome(board.name, target, "unchanged", bundle.short, f"agent running (pid {now['pid']})"
                        if "pid" in now else "agent running")]
    short_of_disk = disk_problem(seen) if now.get("release") != bundle.release else None
    if short_of_disk is not None:
        return failed(short_of_disk)
    if dry_run:
        action = ("start" if now.get("release") == bundle.release else
                  "install" if now.get("release", "none") == "none" else "upgrade")
        return [Outcome(board.name, target, f"would-{action}", bundle.short,
                        f"now on {now.get('release', 'none')[:12]}, running={now.get('running', 'no')}")]
    has_venv = bundle.venv in now.get("venvs", "").split()
    stream = bundle_tar(bundle, with_wheels=not has_venv)
    progress(board.name, f"copying {len(stream) / 1e6:.1f} MB{' (venv already there)' if has_venv else ''} and "
                         f"installing release {bundle.short}")
    done = run_remote(board.ssh, options, ["sh", "-c", UNPACK_AND_INSTALL], stdin=stream)
    if done.status != 0:
        return failed(done.reason())
    values = done.values()
    detail = f"from {values['from'][:12]}" if "from" in values else "agent started"
    return [Outcome(board.name, target, values.get("result", "installed"), bundle.short, detail)]


def rollback_board(board: BoardEntry, options: SshOptions, progress: Progress) -> Outcome:
    """Switch the board back to its previous release and restart it there."""
    progress(board.name, f"rolling {board.ssh} back")
    done = _script(board, board_options(options, board), "rollback")
    if done.status != 0:
        return Outcome(board.name, str(board.ssh), FAILED, "", done.reason())
    values = done.values()
    return Outcome(board.name, str(board.ssh), values.get("result", "rolled-back"), "",
                   f"from {values.get('from', '?')[:12]}")


def unflash_board(board: BoardEntry, options: SshOptions, progress: Progress, keep_state: bool = False) -> Outcome:
    """Stop the agent and remove all the install script put on the board (with `keep_state`, all but its
    checkpoints, round records and log, which the detail says where to find)."""
    progress(board.name, f"removing edge-agent from {board.ssh}")
    done = _script(board, board_options(options, board), "unflash", *(["keep-state"] if keep_state else []))
    if done.status != 0:
        return Outcome(board.name, str(board.ssh), FAILED, "", done.reason())
    values = done.values()
    kept = f"state kept in {values['kept']}" if "kept" in values else ""
    return Outcome(board.name, str(board.ssh), values.get("result", "removed"), "", kept)


def in_parallel(jobs: Sequence[Callable[[], T]], parallel: int) -> list[T]:
    """Run the jobs on up to `parallel` threads; results in the jobs' order."""
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(jobs)))) as pool:
        return list(pool.map(lambda job: job(), jobs))


def result_table(outcomes: Sequence[Outcome]) -> str:
    """BOARD TARGET RESULT RELEASE DETAIL, one row per board."""
    header = ("BOARD", "TARGET", "RESULT", "RELEASE", "DETAIL")
    rows = [header, *((o.board, o.target, o.result, o.release, o.detail) for o in outcomes)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    return "\n".join("  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]])
                     .rstrip() for row in rows)


def bundle_tar(bundle: Bundle, with_wheels: bool = True) -> bytes:
    """The bundle folder as an uncompressed tar (wheels do not compress), owner-only modes kept."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in sorted(bundle.folder.rglob("*")):
            relative = path.relative_to(bundle.folder)
            if not with_wheels and relative.parts[0] == "wheels":
                continue
            info = archive.gettarinfo(str(path), arcname=relative.as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if path.is_file():
                with path.open("rb") as source:
                    archive.addfile(info, source)
            else:
                archive.addfile(info)
    return buffer.getvalue()


def _script(board: BoardEntry, options: SshOptions, *args: str) -> Remote:
    return run_remote(board.ssh, options, ["sh", "-s", "--", *args], stdin=install_script().encode())

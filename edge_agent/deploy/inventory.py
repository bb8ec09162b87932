"""A fleet inventory (TOML): the boards `edge-agent flash` installs, how to reach them, and the run they all join.

```toml
certs = "certs"                 # the cluster's certs folder (or: insecure = true), relative to this file
known_hosts = "known_hosts"     # the only host keys ssh accepts (default: the operator's own known_hosts)
become = true                   # run the install as root (sudo -n): a systemd service with a dedicated user

[run]                           # every board's agent.toml: `edge-agent run` long option names, dashes kept
run = "kitchen-fleet"
setting = "edge"
rounds = 0

[[board]]
name = "kitchen"
ssh = "pi@192.168.1.23:22"
profile = "rpi-4"
shard = "0/8"                   # id defaults to client-0
listen = "0.0.0.0:50051"
advertise = "eth0"              # an IP or an interface name (optional)
```

Every mistake is one line that names the file and the board or key.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.discovery.peers import AGENT_ID_PATTERN
from edge_agent.learning.topology import client_ids

Setting = str | int | float | bool
TOP_KEYS = ("certs", "insecure", "known_hosts", "identity", "become", "python", "run", "board")
BOARD_KEYS = ("name", "ssh", "profile", "shard", "id", "listen", "advertise", "identity")
# What flash writes for each board itself, so [run] cannot set it.
PER_BOARD = ("shard", "id", "listen", "advertise", "profile", "certs", "insecure", "checkpoint-dir", "metrics",
             "config", "host", "port")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,47}")
SSH_PATTERN = re.compile(r"(?:(?P<user>[A-Za-z0-9_][A-Za-z0-9_.-]*)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^@:\s\[\]]+)"
                         r"(?::(?P<port>\d{1,5}))?")
RUN_KEY_PATTERN = re.compile(r"[a-z][a-z0-9-]*")
PYTHON_PATTERN = re.compile(r"[A-Za-z0-9_./+-]+")  # a command or path on the board, written into a shell file


class InventoryError(ValueError):
    """A mistake in the inventory (one line, naming the file and where)."""


@dataclass(frozen=True)
class SshTarget:
    """Where ssh reaches a board: user (None: ssh's default), host, port."""

    user: str | None
    host: str
    port: int = 22

    @classmethod
    def parse(cls, text: str) -> SshTarget:
        match = SSH_PATTERN.fullmatch(text)
        if match is None or not 0 < int(match["port"] or 22) < 65536:
            raise ValueError(f"expected user@host[:port], got {text!r:.80}")
        return cls(match["user"], match["host"].strip("[]"), int(match["port"] or 22))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user + '@' if self.user else ''}{host}:{self.port}"


@dataclass(frozen=True)
class BoardEntry:
    """One board: its name in the inventory, ssh target, profile, shard i of M, agent id and addresses."""

    name: str
    ssh: SshTarget
    profile: str
    shard: int
    clients: int
    agent_id: str
    listen: str
    advertise: str | None = None
    identity: Path | None = None  # an ssh key for this board alone


@dataclass(frozen=True)
class Inventory:
    """The parsed inventory: boards in file order and the fleet-wide settings."""

    path: Path
    boards: tuple[BoardEntry, ...]
    run: tuple[tuple[str, Setting], ...]  # [run] in file order
    certs: Path | None  # None: insecure
    known_hosts: Path | None = None
    identity: Path | None = None
    become: bool = False
    python: str = "python3"

    def select(self, only: str | None) -> tuple[BoardEntry, ...]:
        """The boards named in `only` ('a,b'), in inventory order; all of them for None."""
        if not only:
            return self.boards
        wanted = [name.strip() for name in only.split(",") if name.strip()]
        known = {board.name for board in self.boards}
        unknown = [name for name in wanted if name not in known]
        if unknown:
            raise InventoryError(f"{self.path}: no board named {unknown[0]!r} (boards: {', '.join(sorted(known))})")
        return tuple(board for board in self.boards if board.name in wanted)

    def setting(self, key: str) -> Setting | None:
        return dict(self.run).get(key)

    def local_path(self, path: Path) -> Path:
        """A path [run] names on this machine: relative ones are relative to the inventory's folder."""
        return _path(self.path.resolve().parent, str(path))


def load_inventory(path: Path) -> Inventory:
    """The inventory in `path`, checked: InventoryError (one line) for anything wrong."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InventoryError(f"{path}: cannot read the inventory: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise InventoryError(f"{path}: not valid TOML: {error}") from None
    try:
        return _inventory(path, raw)
    except ValueError as error:
        raise InventoryError(f"{path}: {error}") from None


def _inventory(path: Path, raw: dict[str, Any]) -> Inventory:
    _known_keys("the top level", raw, TOP_KEYS)
    folder = path.resolve().parent
    insecure = _typed(raw, "insecure", bool, False)
    certs = _typed(raw, "certs", str, None)
    if (certs is None) == (not insecure):
        raise ValueError("give `certs = \"DIR\"` (the cluster's certs folder) or, on a lab network, `insecure = true`"
                         if certs is None else "`certs` and `insecure = true` exclude each other: give one")
    run = raw.get("run", {})
    if not isinstance(run, dict):
        raise ValueError("[run] must be a table of `edge-agent run` options")
    entries = raw.get("board", [])
    if not isinstance(entries, list) or not entries or not all(isinstance(entry, dict) for entry in entries):
        raise ValueError("no boards: add one [[board]] table per board")
    boards = tuple(_board(i, entry, folder) for i, entry in enumerate(entries, 1))
    python = _typed(raw, "python", str, "python3")
    if not PYTHON_PATTERN.fullmatch(python):
        raise ValueError(f"python: {python!r:.60} must be a command or path (letters, digits, . / _ + -)")
    _check_fleet(boards)
    return Inventory(path=path, boards=boards, run=tuple(_run_settings(run)),
                     certs=_path(folder, certs) if certs else None,
                     known_hosts=_optional_path(folder, _typed(raw, "known_hosts", str, None)),
                     identity=_optional_path(folder, _typed(raw, "identity", str, None)),
                     become=_typed(raw, "become", bool, False), python=python)


def _board(number: int, raw: dict[str, Any], folder: Path) -> BoardEntry:
    where = f"[[board]] {number}" + (f" ({raw['name']})" if isinstance(raw.get("name"), str) else "")
    try:
        _known_keys("the board", raw, BOARD_KEYS)
        for key in ("name", "ssh", "profile", "shard", "listen"):
            if key not in raw:
                raise ValueError(f"{key}: missing")
        name = _typed(raw, "name", str, "")
        if not NAME_PATTERN.fullmatch(name):
            raise ValueError(f"name: {name!r:.60} must be 1-48 letters, digits, '.', '-' or '_'")
        try:
            ssh = SshTarget.parse(_typed(raw, "ssh", str, ""))
        except ValueError as error:
            raise ValueError(f"ssh: {error}") from None
        shard, clients = _shard(_typed(raw, "shard", str, ""))
        agent_id = _typed(raw, "id", str, None) or client_ids(clients)[shard]
        if not AGENT_ID_PATTERN.fullmatch(agent_id):
            raise ValueError(f"id: {agent_id!r:.60} must be 1-48 letters, digits, '-' or '_'")
        listen = _typed(raw, "listen", str, "")
        _address(listen)
        return BoardEntry(name=name, ssh=ssh, profile=_typed(raw, "profile", str, ""), shard=shard, clients=clients,
                          agent_id=agent_id, listen=listen, advertise=_typed(raw, "advertise", str, None),
                          identity=_optional_path(folder, _typed(raw, "identity", str, None)))
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def _check_fleet(boards: tuple[BoardEntry, ...]) -> None:
    for label, key in (("name", lambda b: b.name), ("ssh target", lambda b: str(b.ssh)),
                       ("shard", lambda b: b.shard), ("id", lambda b: b.agent_id)):
        seen: dict[object, str] = {}
        for board in boards:
            value = key(board)
            if value in seen:
                raise ValueError(f"boards {seen[value]} and {board.name} have the same {label} ({value})")
            seen[value] = board.name
    sizes = sorted({board.clients for board in boards})
    if len(sizes) > 1:
        raise ValueError(f"every board's shard must be i/M with the same M, got M = {', '.join(map(str, sizes))}")


def _run_settings(run: dict[str, Any]) -> list[tuple[str, Setting]]:
    settings = []
    for key, value in run.items():
        if not RUN_KEY_PATTERN.fullmatch(key):
            raise ValueError(f"[run] {key}: not an `edge-agent run` option name (long name without --, e.g. "
                             "stall-window)")
        if key in PER_BOARD:
            raise ValueError(f"[run] {key}: set per board or by flash itself, not fleet-wide")
        if not isinstance(value, str | int | float | bool):
            raise ValueError(f"[run] {key}: expected a string, number or true/false, got {type(value).__name__}")
        settings.append((key, value))
    return settings


def _shard(text: str) -> tuple[int, int]:
    try:
        index, total = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"shard: expected i/M (e.g. 0/8), got {text!r:.40}") from None
    if total < 2 or not 0 <= index < total:
        raise ValueError(f"shard: need M >= 2 and 0 <= i < M, got {text!r}")
    return index, total


def _address(text: str) -> None:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen: expected host:port (e.g. 0.0.0.0:50051), got {text!r:.60}")


def _known_keys(where: str, raw: dict[str, Any], known: tuple[str, ...]) -> None:
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown key in {where} (known: {', '.join(known)})")


def _typed(raw: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = raw.get(key, default)
    if value is not default and not isinstance(value, kind):
        raise ValueError(f"{key}: expected {'true or false' if kind is bool else 'a string'}, got {value!r:.40}")
    return value


def _path(folder: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else folder / path


def _optional_path(folder: Path, text: str | None) -> Path | None:
    return None if text is None else _path(folder, text)

"""Board profiles: one TOML per board in firmware_profiles/, loaded into frozen dataclasses and checked on load.

A profile says what a board is ([board]), how it runs the kernels ([runtime]), what SPARK sends ([spark]) and
the link it usually has ([link]). Every error names the file, the section and the field in one line.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from edge_agent.learning.algorithms.spark import PRESETS, check_row_selection
from edge_agent.learning.codec import Precision
from edge_agent.learning.projection import FAMILIES, Family
from edge_agent.transport.rates import parse_bitrate, parse_duration

Architecture = Literal["aarch64", "arm64", "armv7l", "x86_64", "riscv64"]
# auto: torch where it imports, else onnxruntime where the exported kernels are, else numpy (runtime/select.py)
Backend = Literal["auto", "onnxruntime", "torch"]
PROJECTIONS: tuple[str, ...] = tuple(family for family in FAMILIES if family != "identity")
TORCH_DEVICES = ("cpu", "cuda", "mps")
PROFILES_ENV = "EDGE_AGENT_PROFILES"


def _choice(section: str, key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"[{section}] {key}: expected one of {', '.join(choices)}, got {value!r}")


def _positive(section: str, key: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"[{section}] {key}: must be a positive integer, got {value}")


@dataclass(frozen=True)
class Board:
    """What the board is: a human name, its CPU architecture, core count and RAM, and how much slower one of its
    cores runs the kernels than one core of the machine the simulator's compute was measured on (the link model's
    `compute_scale`, an estimate documented in each profile)."""

    name: str
    description: str
    architecture: Architecture
    cores: int
    memory_mb: int
    compute_scale: float

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("[board] name: must not be empty")
        _choice("board", "architecture", self.architecture, get_args(Architecture))
        _positive("board", "cores", self.cores)
        _positive("board", "memory_mb", self.memory_mb)
        if not self.compute_scale > 0:
            raise ValueError(f"[board] compute_scale: must be positive, got {self.compute_scale}")


@dataclass(frozen=True)
class RuntimeSettings:
    """How the kernels run: backend, its execution providers (torch: devices) in order of preference, limits.

    An `auto` profile may list torch devices and ONNX Runtime providers both: the backend chosen takes its own."""

    backend: Backend
    execution_providers: tuple[str, ...]
    threads: int
    memory_budget_mb: int
    jacobian_chunk: int  # samples per chunk when computing a Jacobian reply

    def __post_init__(self) -> None:
        _choice("runtime", "backend", self.backend, get_args(Backend))
        for provider in self.execution_providers:
            if self.backend == "torch" or (self.backend == "auto" and not provider.endswith("ExecutionProvider")):
                _choice("runtime", "execution_providers", provider, TORCH_DEVICES)
            elif not provider.endswith("ExecutionProvider"):
                raise ValueError(f"[runtime] execution_providers: {provider!r} is not an ONNX Runtime provider "
                                 "name (e.g. CPUExecutionProvider)")
        for key in ("threads", "memory_budget_mb", "jacobian_chunk"):
            _positive("runtime", key, getattr(self, key))


@dataclass(frozen=True)
class SparkSettings:
    """What SPARK sends: the method preset and the projection family and dimension (shared by all peers), the element
    types on the wire of the projected Jacobians, the candidate updates and the weights, and which Jacobian rows a
    reply carries (residual share and tail rate). Everything but the preset and the projection is the board's own
    choice: a receiver decodes any precision and any rows. Flags given on the command line win; then the preset's
    values; then these."""

    preset: str
    projection: Family
    proj_dim: int
    precision: Precision
    candidates_precision: Precision
    weights_precision: Precision
    residual_share: float  # the fewest rows holding this share of the squared residual ...
    tail_rate: float  # ... plus this seeded fraction of the others, weighted to stand for all of them

    def __post_init__(self) -> None:
        _choice("spark", "preset", self.preset, tuple(PRESETS))
        _choice("spark", "projection", self.projection, PROJECTIONS)
        _positive("spark", "proj_dim", self.proj_dim)
        _choice("spark", "precision", self.precision, get_args(Precision))
        _choice("spark", "candidates_precision", self.candidates_precision, get_args(Precision))
        _choice("spark", "weights_precision", self.weights_precision, get_args(Precision))
        try:
            check_row_selection(self.residual_share, self.tail_rate)
        except ValueError as error:
            raise ValueError(f"[spark] {error}") from None


@dataclass(frozen=True)
class LinkSettings:
    """The board's usual link, as `edge-agent run --uplink/--downlink/--latency` take it (e.g. 2mbit, 20ms)."""

    uplink: str
    downlink: str
    latency: str

    def __post_init__(self) -> None:
        for key, parse in (("uplink", parse_bitrate), ("downlink", parse_bitrate), ("latency", parse_duration)):
            try:
                parse(getattr(self, key))
            except ValueError as error:
                raise ValueError(f"[link] {key}: {error}") from None

    @property
    def uplink_bps(self) -> float:
        """Uplink bits per second; 0.0 means unlimited."""
        return parse_bitrate(self.uplink)

    @property
    def downlink_bps(self) -> float:
        """Downlink bits per second; 0.0 means unlimited."""
        return parse_bitrate(self.downlink)

    @property
    def latency_s(self) -> float:
        """Added one-way latency in seconds."""
        return parse_duration(self.latency)


@dataclass(frozen=True)
class BoardProfile:
    """One board's profile; `name` is the file stem (`rpi-4`), `path` the file it came from."""

    name: str
    path: Path
    board: Board
    runtime: RuntimeSettings
    spark: SparkSettings
    link: LinkSettings

    def __post_init__(self) -> None:
        if self.runtime.memory_budget_mb >= self.board.memory_mb:
            raise ValueError(f"[runtime] memory_budget_mb: must be below [board] memory_mb "
                             f"({self.board.memory_mb}), got {self.runtime.memory_budget_mb}")
        if self.runtime.threads > self.board.cores:
            raise ValueError(f"[runtime] threads: must be at most [board] cores ({self.board.cores}), "
                             f"got {self.runtime.threads}")


_SECTIONS: dict[str, type[Board | RuntimeSettings | SparkSettings | LinkSettings]] = {
    "board": Board, "runtime": RuntimeSettings, "spark": SparkSettings, "link": LinkSettings,
}


def _typed(section: str, key: str, value: Any, hint: Any) -> Any:
    """`value` checked against the TOML form of `hint` (Literal and str: string, int: integer, float: number,
    tuple: list)."""
    if get_origin(hint) is tuple:
        if isinstance(value, list) and value and all(isinstance(item, str) and item for item in value):
            return tuple(value)
        expected = "a non-empty list of strings"
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        expected = "an integer"
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        expected = "a number"
    elif isinstance(value, str):
        return value
    else:
        expected = "a string"
    raise ValueError(f"[{section}] {key}: expected {expected}, got {value!r}")


def _section(raw: dict[str, Any], section: str) -> Any:
    """The dataclass of [section], with missing, unknown and wrongly typed keys reported."""
    cls = _SECTIONS[section]
    table = raw.get(section)
    if not isinstance(table, dict):
        raise ValueError(f"[{section}]: missing table" if table is None else f"[{section}]: expected a table")
    hints = get_type_hints(cls)
    names = [field.name for field in fields(cls)]
    unknown = sorted(set(table) - set(names))
    if unknown:
        raise ValueError(f"[{section}] {unknown[0]}: unknown key (expected: {', '.join(names)})")
    missing = [name for name in names if name not in table]
    if missing:
        raise ValueError(f"[{section}] {missing[0]}: missing key")
    return cls(**{name: _typed(section, name, table[name], hints[name]) for name in names})


def load_profile(path: Path) -> BoardProfile:
    """The profile in `path`; ValueError naming the file and the field for anything wrong with it."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        unknown = sorted(set(raw) - set(_SECTIONS))
        if unknown:
            raise ValueError(f"[{unknown[0]}]: unknown table (expected: {', '.join(_SECTIONS)})")
        return BoardProfile(path.stem, path, *(_section(raw, section) for section in _SECTIONS))
    except OSError as error:
        raise ValueError(f"{path}: cannot read profile: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML: {error}") from None
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def profile_dir() -> Path:
    """$EDGE_AGENT_PROFILES if set; else the profiles an installed wheel carries (edge_agent/deploy/firmware_profiles,
    mapped there by pyproject.toml); else, in a source checkout or an editable install, the top-level
    firmware_profiles/."""
    override = os.environ.get(PROFILES_ENV)
    if override:
        return Path(override).expanduser()
    packaged = resources.files("edge_agent.deploy") / "firmware_profiles"
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "firmware_profiles"


def list_profiles(directory: Path | None = None) -> list[BoardProfile]:
    """Every *.toml profile in `directory` (default `profile_dir()`), sorted by name."""
    folder = profile_dir() if directory is None else directory
    if not folder.is_dir():
        raise ValueError(f"profile directory {folder} does not exist (set ${PROFILES_ENV} to point elsewhere)")
    return [load_profile(path) for path in sorted(folder.glob("*.toml"))]


def names_a_file(name: str) -> bool:
    """Whether a --profile value is a path to a .toml rather than the name of a shipped profile."""
    return name.endswith(".toml") or "/" in name


def find_profile(name: str, directory: Path | None = None) -> BoardProfile:
    """The profile called `name` (a file stem such as `rpi-4`), or the file `name` if it is a path to a .toml."""
    if names_a_file(name):
        return load_profile(Path(name))
    folder = profile_dir() if directory is None else directory
    if (folder / f"{name}.toml").is_file():
        return load_profile(folder / f"{name}.toml")
    known = sorted(path.stem for path in folder.glob("*.toml")) if folder.is_dir() else []
    raise ValueError(f"unknown profile {name!r}; known profiles: {', '.join(known) or f'none in {folder}'}")

"""One board's bundle: a folder with all it installs, and a digest of its contents that says whether it changed.

    wheels/            the project wheel (+ the wheelhouse's wheels for the board's architecture)
    agent.toml         `edge-agent run --config` for this board
    certs/             ca.crt, revoked.crl, and this board's own <id>.crt and <id>.key: never another's, never ca.key
    cache/edge-agent/onnx/<key>/   the exported kernels, when the board runs them on onnxruntime
    files/             the model file (and the modules beside it that it imports) and the npz data that
                       [run] model and data name on this machine
    profiles/<name>.toml           the board's profile (EDGE_AGENT_PROFILES points here)
    edge-agent.service the hardened systemd unit
    install.sh         the idempotent install script
    BUNDLE             shell variables for install.sh: RELEASE (the digest), VENV (digest of what the venv holds)

The digest hashes what a file holds, not when it was made: a wheel by its members (a rebuilt wheel differs in zip
timestamps only), so flashing an unchanged fleet from a fresh build changes nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from edge_agent.deploy.certs import CA_NAME, CRL_NAME
from edge_agent.deploy.inventory import BoardEntry, Inventory, Setting
from edge_agent.deploy.profiles import BoardProfile, find_profile
from edge_agent.deploy.unit import UNIT_NAME, render_unit
from edge_agent.learning.datasets import DEFAULT_SOURCE, load_data
from edge_agent.learning.mlp import MLPSpec
from edge_agent.learning.models.source import file_factory, model_files
from edge_agent.runtime.backend import TORCH_EXTRA

INSTALL_SCRIPT = "install.sh"
MANIFEST = "BUNDLE"
FILES = "files"
STATE = "../../state"  # agent.toml lives in <root>/releases/<digest>/; state outlives releases (<root>/state)
ARCHITECTURES = {"aarch64": "aarch64", "arm64": "aarch64", "armv7l": "armv7l", "x86_64": "x86_64",
                 "riscv64": "riscv64"}


class BundleError(ValueError):
    """Why one board's bundle cannot be built (one line; the other boards go on)."""


@dataclass(frozen=True)
class Bundle:
    """A built bundle: its folder, its digest (the release name on the board) and its venv's digest."""

    board: BoardEntry
    folder: Path
    release: str
    venv: str
    backend: str
    architecture: str = "x86_64"  # the profile's [board] architecture, which the board must have

    @property
    def short(self) -> str:
        return self.release[:12]


def install_script() -> str:
    """The text of the install script shipped in the package."""
    return resources.files("edge_agent.deploy").joinpath(INSTALL_SCRIPT).read_text(encoding="utf-8")


def build_bundle(inventory: Inventory, board: BoardEntry, folder: Path, wheel: Path,
                 wheelhouse: Path | None = None) -> Bundle:
    """Write board's bundle into `folder` (emptied first); BundleError naming what is missing."""
    try:
        profile = find_profile(board.profile)
    except ValueError as error:
        raise BundleError(str(error)) from None
    backend = str(inventory.setting("backend") or profile.runtime.backend)
    model = str(inventory.setting("model") or "mlp")
    if model != "mlp" and backend != "torch":  # said now, not by the agent once the board is flashed
        chosen_by = "[run] backend" if inventory.setting("backend") else f"profile {profile.name}"
        raise BundleError(f"board {board.name}: [run] model = {model!r} runs on the torch backend only, not {backend} "
                          f"({chosen_by}): set backend = \"torch\" in [run]")
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "wheels").mkdir(parents=True)
    wheels = [wheel, *board_wheels(wheelhouse, profile)] if wheelhouse is not None else [wheel]
    for source in wheels:
        _place(source, folder / "wheels" / source.name)
    _copy_certs(inventory, board, folder / "certs")
    shipped = _copy_files(inventory, folder / FILES)
    if backend in ("onnxruntime", "auto"):  # auto on a board without torch takes the kernels when they are there
        _copy_kernels(inventory, profile, folder / "cache", required=backend == "onnxruntime")
    (folder / "profiles").mkdir()
    shutil.copyfile(profile.path, folder / "profiles" / f"{profile.name}.toml")
    (folder / "agent.toml").write_text(agent_toml(inventory, board, shipped), encoding="utf-8")
    (folder / UNIT_NAME).write_text(render_unit(), encoding="utf-8")
    (folder / INSTALL_SCRIPT).write_text(install_script(), encoding="utf-8")
    extras = [*(["torch"] if backend == "torch" else []), *(["data"] if inventory.setting("data") == "digits" else [])]
    extra = f"[{','.join(extras)}]" if extras else ""
    venv = _digest([inventory.python, extra, *(file_digest(path) for path in sorted(folder.glob("wheels/*.whl")))])
    release = folder_digest(folder, exclude=frozenset({MANIFEST}))
    (folder / MANIFEST).write_text(
        f"RELEASE={release}\nVENV={venv}\nPYTHON='{inventory.python}'\nEXTRA='{extra}'\nBOARD='{board.name}'\n"
        f"WHEELHOUSE={'yes' if wheelhouse is not None else 'no'}\n", encoding="utf-8")
    return Bundle(board, folder, release, venv, backend, profile.board.architecture)


def agent_toml(inventory: Inventory, board: BoardEntry, shipped: dict[str, str] | None = None) -> str:
    """The board's `edge-agent run --config` file: its own keys, then the fleet's [run] settings (those naming a
    file the bundle carries, `shipped`, pointing at its copy)."""
    own: list[tuple[str, Setting]] = [("shard", f"{board.shard}/{board.clients}"), ("id", board.agent_id),
                                      ("profile", board.profile), ("listen", board.listen)]
    if board.advertise is not None:
        own.append(("advertise", board.advertise))
    own += [("certs", "certs")] if inventory.certs is not None else [("insecure", True)]
    own += [("checkpoint-dir", f"{STATE}/checkpoints"), ("metrics", f"{STATE}/metrics.jsonl")]
    lines = [f"# board {board.name}, written by `edge-agent flash`; paths are relative to this file",
             *(f"{key} = {_toml_value((shipped or {}).get(key, value))}" for key, value in [*own, *inventory.run])]
    return "\n".join(lines) + "\n"


def board_wheels(wheelhouse: Path, profile: BoardProfile) -> list[Path]:
    """The wheelhouse's wheels a board of this profile can install: pure ones and those of its architecture."""
    if not wheelhouse.is_dir():
        raise BundleError(f"--wheelhouse {wheelhouse} is not a folder")
    arch = ARCHITECTURES[profile.board.architecture]
    chosen = []
    for path in sorted(wheelhouse.glob("*.whl")):
        if path.name.startswith("edge_agent-"):
            continue  # the project wheel flash was given wins
        platforms = path.stem.split("-")[-1].split(".")
        if platforms == ["any"] or any(tag.endswith(f"_{arch}") for tag in platforms):
            chosen.append(path)
    return chosen


def file_digest(path: Path) -> str:
    """sha256 of what a file holds; a wheel's is over its members' names and contents, not the zip's timestamps."""
    if path.suffix != ".whl":
        return hashlib.sha256(path.read_bytes()).hexdigest()
    stat = path.stat()
    key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _WHEEL_DIGESTS:
        with zipfile.ZipFile(path) as archive:
            _WHEEL_DIGESTS[key] = _digest(f"{info.filename}:{hashlib.sha256(archive.read(info)).hexdigest()}"
                                          for info in sorted(archive.infolist(), key=lambda info: info.filename))
    return _WHEEL_DIGESTS[key]


# A wheel's digest per file (device, inode, size, mtime): every board's bundle links the same wheels, and unpacking
# them all again for each board, twice per bundle, took most of a re-flash.
_WHEEL_DIGESTS: dict[tuple[int, int, int, int], str] = {}


def folder_digest(folder: Path, exclude: frozenset[str] = frozenset()) -> str:
    """sha256 over every file's relative path, mode (owner-only or not) and content digest."""
    entries = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and relative not in exclude:
            private = "private" if path.stat().st_mode & 0o077 == 0 else "shared"
            entries.append(f"{relative}:{private}:{file_digest(path)}")
    return _digest(entries)


def _copy_certs(inventory: Inventory, board: BoardEntry, target: Path) -> None:
    """ca.crt, revoked.crl and the board's own certificate and key (0600), from the inventory's certs folder."""
    if inventory.certs is None:
        return
    target.mkdir(mode=0o700)
    needed = [f"{CA_NAME}.crt", f"{board.agent_id}.crt", f"{board.agent_id}.key"]
    for name in needed:
        if not (inventory.certs / name).is_file():
            hint = (f"edge-agent certs issue {board.agent_id} --dir {inventory.certs}" if name != f"{CA_NAME}.crt"
                    else f"edge-agent certs init --dir {inventory.certs}")
            raise BundleError(f"{inventory.certs / name} is missing ({hint})")
    for name in [*needed, CRL_NAME]:
        if (inventory.certs / name).is_file():
            shutil.copyfile(inventory.certs / name, target / name)
    os.chmod(target / f"{board.agent_id}.key", 0o600)


def _copy_files(inventory: Inventory, target: Path) -> dict[str, str]:
    """Copy the model file (with the modules beside it that it imports, at the same relative paths) and the npz
    data that [run] names (relative to the inventory) into `target`; the settings that name the copies, relative to
    agent.toml. A file that is not here is one line naming its key."""
    wanted: dict[str, tuple[Path, str]] = {}  # key -> (file here, what follows its path in the setting)
    model, data = inventory.setting("model"), inventory.setting("data")
    named = file_factory(model) if isinstance(model, str) else None
    if named is not None:
        wanted["model"] = (inventory.local_path(named[0]), f":{named[1]}")
    if isinstance(data, str) and data.endswith(".npz"):
        wanted["data"] = (inventory.local_path(Path(data)), "")
    shipped = {}
    for key, (source, suffix) in wanted.items():
        if not source.is_file():
            raise BundleError(f"{inventory.path}: [run] {key} names {source}, which is not a file on this machine")
        for file in model_files(source) if key == "model" else (source,):
            copy = target / file.relative_to(source.parent)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, copy)
            os.chmod(copy, 0o644)  # the service's own user reads it
        shipped[key] = f"{target.name}/{source.name}{suffix}"
    return shipped


def _copy_kernels(inventory: Inventory, profile: BoardProfile, cache: Path, required: bool) -> None:
    """The board kernels for the profile's projection dimension and the fleet's data, from this machine's export
    cache (made with torch if missing), placed where XDG_CACHE_HOME=<release>/cache makes the agent look. Without
    them: one line naming the export command when they are `required`, else nothing (an `auto` board then runs
    numpy, and says so)."""
    from edge_agent.runtime.onnx_backend import cache_subpath, ensure_exported
    from edge_agent.runtime.onnx_export import MissingKernelsError

    dim = int(inventory.setting("proj-dim") or profile.spark.proj_dim)
    try:
        spec, data = _mlp_for_data(inventory)
    except BundleError:
        if required:
            raise
        return  # an `auto` board whose data this machine cannot read: it runs torch or numpy, and says which
    try:
        source = ensure_exported(spec, dim)
    except MissingKernelsError:
        if not required:
            return
        named = f" --data {data}" if data != DEFAULT_SOURCE else ""
        command = f"edge-agent export --profile {profile.name}{named}" if dim == profile.spark.proj_dim else \
            f"edge-agent export --profile NAME{named} (a profile with proj_dim = {dim})"
        raise BundleError(f"profile {profile.name} runs its kernels on onnxruntime and this machine has none for "
                          f"m = {dim}: run `{command}` here (needs torch: {TORCH_EXTRA})") from None
    shutil.copytree(source, cache / cache_subpath(spec, dim))


def _mlp_for_data(inventory: Inventory) -> tuple[MLPSpec, str]:
    """The MLP sized to the fleet's [run] data (read here: its samples' shape and classes), and the source named."""
    data = str(inventory.setting("data") or DEFAULT_SOURCE)
    if data == DEFAULT_SOURCE:
        return MLPSpec(), data
    source = str(inventory.local_path(Path(data))) if data.endswith(".npz") else data
    try:
        labelled = load_data(source)
    except (ValueError, ImportError) as error:  # bad content, or digits without scikit-learn here
        raise BundleError(f"{inventory.path}: [run] data = {data!r}: {error}") from None
    return MLPSpec.for_data(labelled.input_shape, labelled.num_classes), data


def _place(source: Path, target: Path) -> None:
    try:
        os.link(source, target)  # wheels are large and read-only here: share the blocks when we can
    except OSError:
        shutil.copyfile(source, target)


def _toml_value(value: Setting) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _digest(parts: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()

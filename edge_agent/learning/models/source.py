"""How a `--model` source is spelled, and the files it comes from: a model file and the modules beside it that it
imports, found by reading their imports (no model built, no torch), so a digest and a board's copy cover them all."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path


def file_factory(source: str) -> tuple[Path, str] | None:
    """The file and the factory's name of a path/to/file.py:factory source; None for any other source."""
    where, _, name = source.rpartition(":")
    return (Path(where), name) if where.endswith(".py") else None


def absolute_source(source: str) -> str:
    """A file factory with its path made absolute, so worker processes find it from any directory."""
    named = file_factory(source)
    return source if named is None else f"{named[0].resolve()}:{named[1]}"


def model_files(path: Path) -> tuple[Path, ...]:
    """The model file, then (sorted) every module beside it that it imports, transitively: `name.py`, or every .py
    file of a package folder `name/`. Imports of anything else (torch, the standard library) are not files here."""
    root = path.parent
    found, pending = {path}, [path]
    while pending:
        for name in _imported_names(pending.pop()):
            for file in _local_module(root, name):
                if file not in found:
                    found.add(file)
                    pending.append(file)
    return (path, *sorted(found - {path}))


def files_digest(files: tuple[Path, ...]) -> str:
    """SHA-256 of a model's files: the file's own for a lone file; else over each file's path relative to the first
    file's folder and its bytes' SHA-256, so a changed or moved helper is another model."""
    if len(files) == 1:
        return hashlib.sha256(files[0].read_bytes()).hexdigest()
    root, digest = files[0].parent, hashlib.sha256()
    for file in files:
        digest.update(f"{file.relative_to(root).as_posix()}\0".encode())
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def _imported_names(path: Path) -> list[str]:
    """Every absolute import in the file, as dotted names (`from a import b` gives a and a.b); none if the file does
    not parse (importing it will say why)."""
    try:
        tree = ast.parse(path.read_bytes(), str(path))
    except (OSError, SyntaxError, ValueError):
        return []
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.extend([node.module, *(f"{node.module}.{alias.name}" for alias in node.names)])
    return names


def _local_module(root: Path, dotted: str) -> list[Path]:
    """The files under `root` that importing `dotted` may run: its top-level module file, or its package's files."""
    top = dotted.partition(".")[0]
    package = root / top
    if package.is_dir():
        return sorted(file for file in package.rglob("*.py") if "__pycache__" not in file.parts)
    module = root / f"{top}.py"
    return [module] if module.is_file() else []

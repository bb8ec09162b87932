"""How a `--model` source is spelled: the file and factory of path/to/file.py:factory, with no model built."""

from __future__ import annotations

from pathlib import Path


def file_factory(source: str) -> tuple[Path, str] | None:
    """The file and the factory's name of a path/to/file.py:factory source; None for any other source."""
    where, _, name = source.rpartition(":")
    return (Path(where), name) if where.endswith(".py") else None


def absolute_source(source: str) -> str:
    """A file factory with its path made absolute, so worker processes find it from any directory."""
    named = file_factory(source)
    return source if named is None else f"{named[0].resolve()}:{named[1]}"

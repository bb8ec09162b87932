"""Durable outputs shared by the simulator and the agent: append-only JSON lines, atomic JSON and npz files."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


class JsonLinesLog:
    """Appends one JSON object per line and fsyncs it, so a crash loses at most the line being written."""

    def __init__(self, path: Path, append: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a" if append else "w", encoding="utf-8")

    def append(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def write_text_atomic(path: Path, text: str) -> None:
    """Write text to a temporary sibling and rename it into place, so readers see the old file or the new one."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON to a temporary sibling and rename it into place."""
    write_text_atomic(path, json.dumps(payload, indent=2) + "\n")


def write_npz_atomic(path: Path, arrays: Mapping[str, np.ndarray | np.generic]) -> None:
    """Write arrays to a temporary file in the same directory, fsync, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".npz.tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            named: dict[str, Any] = {name: np.asarray(value) for name, value in arrays.items()}
            np.savez(file, **named)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

"""The error every command raises for a mistake in how it was called: one line, exit status 2."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click


class OperatorError(click.ClickException):
    """A bad argument, path or address the operator can fix: `Error: <one line>` and exit status 2."""

    exit_code = 2


def writable_folder(option: str, folder: Path) -> Path:
    """`folder`, made if missing and checked writable; an OperatorError naming `option` when it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise OperatorError(f"{option} {folder}: {error.strerror or error}") from None
    return folder

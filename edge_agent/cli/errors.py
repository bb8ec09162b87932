"""The error every command raises for a mistake in how it was called: one line, exit status 2."""

from __future__ import annotations

import click


class OperatorError(click.ClickException):
    """A bad argument, path or address the operator can fix: `Error: <one line>` and exit status 2."""

    exit_code = 2

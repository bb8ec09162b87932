"""`--data SOURCE`, shared by simulate, run, demo and bench link: the option, and its data loaded or one Error line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from edge_agent.cli.errors import OperatorError
from edge_agent.learning.datasets import DEFAULT_SOURCE, LabelledData, MissingExtraError, check_source, load_data

F = TypeVar("F", bound=Callable[..., Any])
DATA_HELP = ("Training data: fashion-mnist, digits (scikit-learn's 8x8 digits: pip install 'edge-agent[data]') or a "
             "PATH.npz holding x (N, ...) float32 or uint8, y (N,) integers and optionally x_test, y_test "
             "(docs/method.md, Data). Every agent of a run needs the same data.")


def data_option(command: F) -> F:
    """The --data option; its value is checked (a known source, an npz that exists) but not yet loaded."""
    return click.option("--data", "data_source", default=DEFAULT_SOURCE, show_default=True, metavar="SOURCE",
                        callback=_checked, help=DATA_HELP)(command)


def _checked(_ctx: click.Context, _param: click.Parameter, source: str) -> str:
    try:
        return check_source(source)
    except ValueError as error:
        raise OperatorError(f"--data {source}: {error}") from None


def labelled_data(source: str, data_dir: Path | None = None) -> LabelledData:
    """The data --data names; a source that cannot be used is one OperatorError line naming --data (Fashion-MNIST
    that is not here stays DataNotFoundError, which says how to get it)."""
    try:
        return load_data(source, data_dir)
    except MissingExtraError as error:
        raise OperatorError(f"--data {source} {error}") from None
    except ValueError as error:
        raise OperatorError(f"--data {source}: {error}") from None

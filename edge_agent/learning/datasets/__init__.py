"""Labelled data from a named source: Fashion-MNIST (the default), scikit-learn's digits, or an npz file."""

from __future__ import annotations

from pathlib import Path

from edge_agent.learning.datasets import digits, fashion_mnist, npz
from edge_agent.learning.datasets.digits import MissingExtraError
from edge_agent.learning.datasets.labelled import DataLayout, LabelledData

DEFAULT_SOURCE = fashion_mnist.NAME
SOURCES = (fashion_mnist.NAME, digits.NAME, "PATH.npz")

__all__ = ["DEFAULT_SOURCE", "SOURCES", "DataLayout", "LabelledData", "MissingExtraError", "check_source",
           "load_data", "source_name"]


def source_name(source: str) -> str:
    """The name a source's data goes by (fashion-mnist, digits, npz); ValueError for one that is none of them."""
    if source in (fashion_mnist.NAME, digits.NAME):
        return source
    if source.endswith(".npz"):
        return npz.NAME
    raise ValueError(f"unknown data source {source!r:.80}: use {fashion_mnist.NAME}, {digits.NAME} or a path to an "
                     ".npz file")


def check_source(source: str) -> str:
    """`source` if it names a source that can be read here (an npz path must be a file); ValueError if not."""
    if source_name(source) == npz.NAME and not Path(source).is_file():
        raise ValueError(f"no such file: {source}")
    return source


def load_data(source: str, data_dir: Path | None = None) -> LabelledData:
    """The labelled data `source` names (`data_dir`: Fashion-MNIST's folder, see learning/data.py).

    ValueError for an unknown source, a missing file or refused content; MissingExtraError for digits without
    scikit-learn; DataNotFoundError for Fashion-MNIST that is not on this machine.
    """
    name = source_name(check_source(source))
    if name == fashion_mnist.NAME:
        return fashion_mnist.load(data_dir)
    if name == digits.NAME:
        return digits.load()
    return npz.load(Path(source))

"""load_data: one entry point per source name, with Fashion-MNIST's arrays exactly those of load_fashion_mnist."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_agent.learning.data import load_fashion_mnist
from edge_agent.learning.datasets import fashion_mnist, load_data, source_name
from edge_agent.learning.mlp import MLPSpec


def test_fashion_mnist_is_todays_loader_and_model_bit_for_bit() -> None:
    data = load_data("fashion-mnist")
    train, test = load_fashion_mnist()
    np.testing.assert_array_equal(data.train.x, train.x)
    np.testing.assert_array_equal(data.test.y, test.y)
    assert (data.input_shape, data.num_classes, data.digest) == ((1, 28, 28), 10, fashion_mnist.DIGEST)
    layout = fashion_mnist.FashionMnistLayout()
    assert MLPSpec.for_data(data.input_shape, data.num_classes) == MLPSpec() == MLPSpec.for_data(layout.input_shape,
                                                                                                 layout.num_classes)


@pytest.mark.parametrize(("source", "name"), [("fashion-mnist", "fashion-mnist"), ("digits", "digits"),
                                              ("runs/mine.npz", "npz")])
def test_sources_go_by_their_name(source: str, name: str) -> None:
    assert source_name(source) == name


@pytest.mark.parametrize(("source", "message"), [("mnist", "unknown data source 'mnist'"),
                                                 ("data.csv", "unknown data source"),
                                                 ("missing.npz", "no such file: missing.npz")])
def test_an_unknown_source_or_a_missing_file_is_refused(source: str, message: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message):
        load_data(source)


def test_an_npz_source_loads_its_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.npz"
    np.savez(path, x=np.ones((12, 4), np.float32), y=np.arange(12) % 4)
    data = load_data(str(path))
    assert (data.name, data.input_shape, data.num_classes) == ("npz", (4,), 4)
    assert MLPSpec.for_data(data.input_shape, data.num_classes).sizes == (4, 100, 4)

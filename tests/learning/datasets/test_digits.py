"""scikit-learn's digits: shapes, classes, a fixed held-out sixth, standardised on the train split."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from edge_agent.learning.datasets import digits
from edge_agent.learning.mlp import MLPSpec

pytest.importorskip("sklearn")


def test_digits_are_8x8_images_of_ten_classes_with_a_sixth_held_out() -> None:
    data = digits.load()
    assert (data.train.x.shape, data.test.x.shape) == ((1498, 64), (299, 64))
    assert (data.input_shape, data.num_classes, data.name) == ((1, 8, 8), 10, "digits")
    assert set(np.unique(data.train.y)) == set(range(10)) and data.train.x.dtype == np.float32
    assert abs(float(data.train.x.mean())) < 1e-5 and abs(float(data.train.x.std()) - 1) < 1e-5
    assert MLPSpec.for_data(data.input_shape, data.num_classes).sizes == (64, 100, 10)


def test_digits_load_the_same_bits_every_time() -> None:
    first, second = digits.load(), digits.load()
    np.testing.assert_array_equal(first.test.x, second.test.x)
    assert first.digest == second.digest and len(first.digest) == 16


def test_without_scikit_learn_digits_say_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import fails as if it were not installed
    with pytest.raises(digits.MissingExtraError, match=r"needs scikit-learn: pip install 'edge-agent\[data\]'"):
        digits.load()

"""A `--model` source's spelling: which sources name a file, and the absolute form worker processes are given."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.learning.models.source import absolute_source, file_factory


@pytest.mark.parametrize(("source", "expected"), [
    ("models/mine.py:factory", (Path("models/mine.py"), "factory")),
    ("/abs/c:d/net.py:build", (Path("/abs/c:d/net.py"), "build")),
    ("edge_agent.learning.models.cnn:reference_cnn", None),
    ("cnn", None),
    ("mlp", None),
])
def test_only_a_py_file_before_the_last_colon_is_a_file_factory(source: str, expected: object) -> None:
    assert file_factory(source) == expected


def test_a_file_factory_is_made_absolute_and_every_other_source_is_left_alone(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert absolute_source("net.py:build") == f"{tmp_path.resolve() / 'net.py'}:build"
    assert absolute_source("edge_agent.learning.models.cnn:reference_cnn") == \
        "edge_agent.learning.models.cnn:reference_cnn"
    assert absolute_source("cnn") == "cnn"

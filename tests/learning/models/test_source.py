"""A `--model` source's spelling (which sources name a file, the absolute form worker processes are given) and the
files a model file comes with, with their digest."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from edge_agent.learning.models.source import absolute_source, file_factory, files_digest, model_files


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


def _tree(root: Path) -> Path:
    """model.py importing a sibling (which imports another) and a package; an unrelated file beside them."""
    (root / "blocks").mkdir(parents=True)
    (root / "blocks" / "__init__.py").write_text("from blocks.conv import stem\n")
    (root / "blocks" / "conv.py").write_text("def stem():\n    return 1\n")
    (root / "heads.py").write_text("import math\nfrom layout import WIDTH\n")
    (root / "layout.py").write_text("WIDTH = 3\n")
    (root / "unrelated.py").write_text("import heads\n")
    model = root / "model.py"
    model.write_text("import numpy as np\nimport heads\nfrom blocks import stem\n\n\ndef build(shape, classes):\n"
                     "    import os.path\n    return None\n")
    return model


def test_a_model_file_comes_with_the_modules_beside_it_that_it_imports_and_no_others(tmp_path: Path) -> None:
    model = _tree(tmp_path)
    assert model_files(model) == (model, tmp_path / "blocks" / "__init__.py", tmp_path / "blocks" / "conv.py",
                                  tmp_path / "heads.py", tmp_path / "layout.py")
    (tmp_path / "lone.py").write_text("import torch\nfrom . import heads\n")  # a relative import is not followed
    assert model_files(tmp_path / "lone.py") == (tmp_path / "lone.py",)
    (tmp_path / "broken.py").write_text("import heads\ndef (:\n")  # importing it will say why; no file is guessed
    assert model_files(tmp_path / "broken.py") == (tmp_path / "broken.py",)


def test_the_digest_is_a_lone_files_own_and_covers_every_helper_and_where_it_lies(tmp_path: Path) -> None:
    model = _tree(tmp_path)
    assert files_digest((model,)) == hashlib.sha256(model.read_bytes()).hexdigest()
    before = files_digest(model_files(model))
    (tmp_path / "unrelated.py").write_text("# edited\n")
    assert files_digest(model_files(model)) == before
    (tmp_path / "layout.py").write_text("WIDTH = 4\n")  # two imports away
    edited = files_digest(model_files(model))
    assert edited != before
    moved = tmp_path / "moved"
    shutil.copytree(tmp_path, moved, ignore=shutil.ignore_patterns("moved"))
    assert files_digest(model_files(moved / "model.py")) == edited  # the same files elsewhere: the same model
    for folder in ("x", "y"):
        (moved / folder).mkdir()
        (moved / folder / "h.py").write_text("same bytes\n")
    assert files_digest((model, moved / "x" / "h.py")) != files_digest((model, moved / "y" / "h.py"))

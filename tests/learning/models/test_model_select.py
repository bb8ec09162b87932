"""`--model` names: the built-ins, a user's file or module factory, and one clear line for each way to get it wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.learning.mlp import MLPSpec
from edge_agent.learning.models.contract import ModelError
from edge_agent.learning.models.select import is_default, load_model
from edge_agent.learning.models.torch_module import TorchModuleModel

GOOD = ("from torch import nn\n\ndef tiny(input_shape, num_classes):\n"
        "    return nn.Linear(input_shape[0], num_classes)\n")


def user_file(folder: Path, text: str, name: str = "user_model.py") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_mlp_is_sized_to_the_data_and_only_fashion_mnists_is_the_default() -> None:
    assert load_model("mlp", (1, 28, 28), 10) == MLPSpec((784, 100, 10))
    assert is_default(load_model("mlp", (1, 28, 28), 10))
    digits = load_model("mlp", (1, 8, 8), 10)
    assert digits == MLPSpec((64, 100, 10)) and not is_default(digits)


def test_cnn_and_a_file_factory_build_and_name_their_source(tmp_path: Path) -> None:
    cnn = load_model("cnn", (1, 28, 28), 10)
    assert isinstance(cnn, TorchModuleModel) and cnn.num_params == 333_526
    assert cnn.identity()["name"] == "cnn" and len(cnn.identity()["source_sha256"]) == 64
    path = user_file(tmp_path, GOOD)
    tiny = load_model(f"{path}:tiny", (6,), 3)
    assert tiny.num_params == 6 * 3 + 3 and tiny.identity()["parameters"] == [["weight", [3, 6]], ["bias", [3]]]
    path.write_text(GOOD + "# edited\n")
    edited = load_model(f"{path}:tiny", (6,), 3)  # a fresh process would see the edit; the digest tells them apart
    assert isinstance(edited, TorchModuleModel)


def test_the_same_file_at_another_path_is_the_same_model_and_another_file_is_not(tmp_path: Path) -> None:
    """Each board keeps the model file flash copied under its own release folder: the run names the file's name and
    content, never where it lies."""
    here = load_model(f"{user_file(tmp_path, GOOD)}:tiny", (6,), 3)
    (tmp_path / "board").mkdir()
    there = load_model(f"{user_file(tmp_path / 'board', GOOD)}:tiny", (6,), 3)
    assert here.identity() == there.identity() and here.identity()["name"] == "user_model.py:tiny"
    other = load_model(f"{user_file(tmp_path / 'board', GOOD + '# edited', 'other.py')}:tiny", (6,), 3)
    assert other.identity()["source_sha256"] != here.identity()["source_sha256"]


def test_a_model_file_imports_the_modules_beside_it_and_they_are_part_of_the_model(tmp_path: Path) -> None:
    """As `python model.py` would: the file's folder is where its own imports are found, from any working directory;
    an edited helper is another model, so agents with different helpers never join one run."""
    (tmp_path / "sibling_widths.py").write_text("HIDDEN = 5\n")
    user_file(tmp_path, "from torch import nn\nfrom sibling_widths import HIDDEN\n\ndef deep(s, c):\n"
                        "    return nn.Sequential(nn.Linear(s[0], HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, c))\n",
              "sibling_user.py")
    model = load_model(f"{tmp_path / 'sibling_user.py'}:deep", (6,), 3)
    assert model.num_params == 6 * 5 + 5 + 5 * 3 + 3
    (tmp_path / "sibling_widths.py").write_text("HIDDEN = 5  # edited\n")
    edited = TorchModuleModel(f"{tmp_path / 'sibling_user.py'}:deep", (6,), 3)
    assert edited.identity()["source_sha256"] != model.identity()["source_sha256"]


def test_a_module_factory_by_dotted_name() -> None:
    model = load_model("edge_agent.learning.models.cnn:reference_cnn", (8, 8), 4)
    assert model.num_classes == 4 and model.input_shape == (8, 8)


@pytest.mark.parametrize(("text", "source", "match"), [
    (None, "resnet", "expected mlp, cnn, path/to/file.py:factory"),
    (None, "missing_file.py:f", "no file"),
    (GOOD, "{path}:nope", "has no function 'nope'"),
    ("raise RuntimeError('broken import')\n", "{path}:tiny", "importing .* failed: RuntimeError: broken import"),
    ("def tiny(input_shape, num_classes):\n    return 3\n", "{path}:tiny", "returned int, not a torch.nn.Module"),
    ("from torch import nn\n\ndef tiny(s, c):\n    return nn.Linear(s[0], c + 1)\n", "{path}:tiny",
     r"logits of 2 samples have shape \(2, 4\), expected \(2, 3\)"),
    ("from torch import nn\n\ndef tiny(s, c):\n    return nn.Linear(s[0] + 1, c)\n", "{path}:tiny",
     r"fails on samples of shape \(6,\)"),
    ("from torch import nn\n\ndef tiny(s, c):\n    return nn.ReLU()\n", "{path}:tiny", "has no parameters"),
    (None, "no_such_package.models:f", "cannot import no_such_package.models"),
])
def test_every_mistake_is_one_line_naming_the_model(tmp_path: Path, text: str | None, source: str, match: str) -> None:
    path = user_file(tmp_path, text) if text is not None else tmp_path / "absent.py"
    with pytest.raises(ModelError, match=match) as raised:
        load_model(source.format(path=path), (6,), 3)
    assert "\n" not in str(raised.value)


def test_the_cnn_refuses_samples_that_are_not_images() -> None:
    with pytest.raises(ModelError, match=r"needs image samples .* shape \(64,\)"):
        load_model("cnn", (64,), 10)

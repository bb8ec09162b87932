"""`auto` takes torch where it imports, else ONNX Runtime where the exported kernels are, else numpy, and says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.learning.mlp import MLPSpec
from edge_agent.runtime import select
from edge_agent.runtime.backend import NumpyBackend
from edge_agent.runtime.select import BackendChoice, choose_backend, make_backend

SPEC = MLPSpec()


def test_auto_takes_torch_where_it_imports() -> None:
    assert choose_backend("auto", SPEC, 1024) == BackendChoice("torch", "auto: torch imports here")


def test_auto_without_torch_takes_onnxruntime_where_the_kernels_are_in_the_cache(
        onnx_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(select, "torch_missing", lambda: "No module named 'torch'")
    monkeypatch.setenv("XDG_CACHE_HOME", str(onnx_cache))
    choice = choose_backend("auto", SPEC, 1024)
    assert choice.name == "onnxruntime"
    assert choice.reason.startswith("auto: no torch here, and the ONNX kernels for m = 1024 are in ")
    assert str(onnx_cache / "edge-agent" / "onnx") in choice.reason


def test_auto_without_torch_or_kernels_takes_numpy_and_says_how_to_get_either(
        onnx_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(select, "torch_missing", lambda: "No module named 'torch'")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    choice = choose_backend("auto", SPEC, 1024)
    assert choice.name == "numpy"
    assert "pip install 'edge-agent[torch]'" in choice.reason and "`edge-agent export`" in choice.reason
    monkeypatch.setenv("XDG_CACHE_HOME", str(onnx_cache))
    assert choose_backend("auto", SPEC, 512).name == "numpy"  # kernels for another m do not count


def test_a_named_backend_is_taken_as_named_with_who_named_it() -> None:
    assert str(choose_backend("numpy", SPEC, 1024, "profile rpi-4")) == "numpy (profile rpi-4)"
    with pytest.raises(ValueError, match="choose auto, numpy, torch, onnxruntime"):
        choose_backend("tflite", SPEC, 1024)
    assert isinstance(make_backend("numpy", SPEC), NumpyBackend)

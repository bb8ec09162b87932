"""`--model`: a name (mlp, cnn) or a user's factory (path/to/file.py:factory, package.module:factory) -> a Model.

Only the MLP runs without torch; torch is imported when another model is asked for. A model's identity carries a
SHA-256 of the source that defines it, so agents whose model files differ never join one run.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from edge_agent.learning.mlp import DEFAULT_SIZES, MLPSpec
from edge_agent.learning.models.contract import Model

BUILT_IN = ("mlp", "cnn")
TORCH_EXTRA = "pip install 'edge-agent[torch]'"


class ModelError(ValueError):
    """`--model` names nothing that builds a model; the message says what is wrong in one line."""


def load_model(source: str, input_shape: tuple[int, ...], num_classes: int) -> Model:
    """The model `source` names, built for samples of `input_shape` and `num_classes` classes."""
    if source == "mlp":
        return MLPSpec.for_data(input_shape, num_classes)
    if ":" not in source and source != "cnn":
        raise ModelError(f"--model {source!r}: expected mlp, cnn, path/to/file.py:factory or package.module:factory")
    torch_module = _torch_models()
    if source == "cnn":
        from edge_agent.learning.models import cnn
        return _built(torch_module, cnn.reference_cnn, input_shape, num_classes, "cnn", _file_digest(cnn.__file__))
    where, _, name = source.rpartition(":")
    module = _module_from_file(Path(where)) if where.endswith(".py") else _module_by_name(where)
    factory = getattr(module, name, None)
    if not callable(factory):
        raise ModelError(f"--model {source!r}: {where} has no function {name!r}")
    return _built(torch_module, factory, input_shape, num_classes, source, _file_digest(module.__file__))


def is_default(model: Model) -> bool:
    """Whether `model` is the published runs' MLP, which the run identity leaves unnamed (old fingerprints hold)."""
    return isinstance(model, MLPSpec) and model.sizes == DEFAULT_SIZES


def _torch_models() -> ModuleType:
    try:
        from edge_agent.learning.models import torch_module
    except ImportError as error:
        raise ModelError(f"models other than mlp need torch ({error}): {TORCH_EXTRA}") from None
    return torch_module


def _built(torch_module: ModuleType, factory: Callable[..., Any], input_shape: tuple[int, ...], num_classes: int,
           name: str, digest: str) -> Model:
    try:
        model: Model = torch_module.TorchModuleModel(factory, input_shape, num_classes, name, digest)
    except ModelError:
        raise
    except Exception as error:  # a user's factory may fail in any way; say so in one line, naming the model
        raise ModelError(f"--model {name!r} does not build for samples {input_shape} and {num_classes} classes: "
                         f"{type(error).__name__}: {error}") from None
    return model


def _module_from_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise ModelError(f"--model: no file {path}")
    name = f"edge_agent_user_model_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelError(f"--model: {path} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise ModelError(f"--model: importing {path} failed: {type(error).__name__}: {error}") from None
    return module


def _module_by_name(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except Exception as error:
        raise ModelError(f"--model: cannot import {name}: {type(error).__name__}: {error}") from None


def _file_digest(path: str | None) -> str:
    """SHA-256 of the file that defines the factory (its source, as loaded)."""
    if path is None:
        return "unknown"
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()



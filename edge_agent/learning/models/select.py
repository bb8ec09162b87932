"""`--model`: mlp, cnn, path/to/file.py:factory or package.module:factory -> a Model for the data's samples.

Only the MLP runs without torch; torch is imported when another model is asked for. A model's identity carries a
SHA-256 of the source that defines it, so agents whose model files differ never join one run.
"""

from __future__ import annotations

from edge_agent.learning.mlp import DEFAULT_SIZES, MLPSpec
from edge_agent.learning.models.contract import Model, ModelError
from edge_agent.learning.models.source import absolute_source

TORCH_EXTRA = "pip install 'edge-agent[torch]'"


def load_model(source: str, input_shape: tuple[int, ...], num_classes: int) -> Model:
    """The model `source` names, built for samples of `input_shape` and `num_classes` classes."""
    if source == "mlp":
        return MLPSpec.for_data(input_shape, num_classes)
    if ":" not in source and source != "cnn":
        raise ModelError(f"--model {source!r}: expected mlp, cnn, path/to/file.py:factory or package.module:factory")
    try:
        from edge_agent.learning.models.torch_module import TorchModuleModel
    except ImportError as error:
        raise ModelError(f"--model {source}: models other than mlp need torch ({error}): {TORCH_EXTRA}") from None
    return TorchModuleModel(absolute_source(source), input_shape, num_classes)


def is_default(model: Model) -> bool:
    """Whether `model` is the published runs' MLP, which the run identity leaves unnamed (old fingerprints hold)."""
    return isinstance(model, MLPSpec) and model.sizes == DEFAULT_SIZES

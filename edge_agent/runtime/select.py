"""Which kernel backend runs here, and building it: `auto` picks torch, else ONNX Runtime with kernels, else numpy.

The factory lives apart from backend.py, which the torch and ONNX Runtime backends import: nothing in runtime/
imports a module that imports it back. `choose_backend` says why it chose what it chose, so the agent's start-up
line can tell the user (a board without torch or kernels runs numpy, and should know it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from edge_agent.learning.mlp import MLPSpec
from edge_agent.runtime.backend import (
    TORCH_EXTRA,
    BackendName,
    BackendUnavailableError,
    ChunkedBackend,
    KernelBackend,
    NumpyBackend,
)

AUTO = "auto"
BACKEND_CHOICES: tuple[str, ...] = (AUTO, *get_args(BackendName))


@dataclass(frozen=True)
class BackendChoice:
    """The backend that runs the kernels and why (e.g. "auto: torch imports here")."""

    name: BackendName
    reason: str

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


def torch_missing() -> str | None:
    """Why torch cannot be imported here, or None when it can."""
    try:
        import torch  # noqa: F401
    except ImportError as error:
        return str(error) or "not installed"
    return None


def choose_backend(requested: str, spec: MLPSpec, dim: int, given: str = "asked for") -> BackendChoice:
    """`requested` as it will run: a named backend as is (`given` says who named it), `auto` resolved here."""
    if requested != AUTO:
        if requested not in get_args(BackendName):
            raise ValueError(f"unknown kernel backend {requested!r}; choose {', '.join(BACKEND_CHOICES)}")
        return BackendChoice(requested, given)  # type: ignore[arg-type]
    if torch_missing() is None:
        return BackendChoice("torch", "auto: torch imports here")
    from edge_agent.runtime.onnx_backend import cache_directory, usable_cache

    kernels = usable_cache(spec, dim)
    if kernels is not None:
        return BackendChoice("onnxruntime", f"auto: no torch here, and the ONNX kernels for m = {dim} are in "
                                            f"{kernels}")
    return BackendChoice("numpy", f"auto: no torch here ({TORCH_EXTRA}) and no ONNX kernels for m = {dim} in "
                                  f"{cache_directory(spec, dim)} (`edge-agent export`)")


def make_backend(name: BackendName, spec: MLPSpec, providers: Sequence[str] | None = None,
                 threads: int | None = None, *, dim: int = 1024, directory: Path | None = None,
                 chunk: int | None = None) -> KernelBackend:
    """The named backend for `spec`. providers: ONNX Runtime execution providers, or torch devices (first used).

    onnxruntime only: `dim` is the projection dimension the exported graph is built for, and `directory` holds
    pre-exported files (default: a per-spec cache, exported on first use when torch is importable).
    `chunk` (the profile's jacobian_chunk) runs the kernels that many samples at a time.
    """
    backend: KernelBackend
    if name == "numpy":
        backend = NumpyBackend(spec, threads)
    elif name == "torch":
        try:
            from edge_agent.runtime.torch_kernels import TorchBackend
        except ImportError as error:
            raise BackendUnavailableError(f"the torch backend needs torch, which is not importable here ({error}): "
                                          f"{TORCH_EXTRA}, or run --backend auto") from None

        backend = TorchBackend(spec, device=providers[0] if providers else "cpu", threads=threads)
    elif name == "onnxruntime":
        from edge_agent.runtime.onnx_backend import OnnxBackend

        backend = OnnxBackend(spec, directory=directory, providers=providers, threads=threads, dim=dim)
    else:
        raise ValueError(f"unknown kernel backend {name!r}; choose numpy, torch or onnxruntime")
    return backend if chunk is None else ChunkedBackend(backend, chunk)

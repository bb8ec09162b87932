"""The ONNX Runtime backend: the board-side kernels from checked ONNX exports, with numpy and onnxruntime alone.

Exports come from a directory given by the caller (copied to a board that has no torch), or from a per-spec cache
(`$XDG_CACHE_HOME` or ~/.cache, then edge-agent/onnx/<hash of format version, sizes and m>) that
`edge-agent export` fills, and that the first agent fills itself when torch is importable, as quietly. Without torch
and without a valid export the backend refuses with one line naming the command that makes one (MissingKernelsError).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped,unused-ignore]

from edge_agent.learning.mlp import FloatArray, MLPSpec
from edge_agent.runtime.backend import SketchState
from edge_agent.runtime.onnx_export import (
    EXPORT_COMMAND,
    FORMAT_VERSION,
    KERNELS,
    MANIFEST,
    Manifest,
    MissingKernelsError,
    check_exports,
    export_kernels,
)

DEFAULT_PROVIDERS = ("CPUExecutionProvider",)
log = logging.getLogger(__name__)


def cache_subpath(spec: MLPSpec, dim: int) -> Path:
    """The cache directory of (spec, dim) below the cache root: edge-agent/onnx/<16 hex digits>."""
    key = hashlib.sha256(f"v{FORMAT_VERSION}:{','.join(map(str, spec.sizes))}:m{dim}".encode()).hexdigest()[:16]
    return Path("edge-agent", "onnx", key)


def cache_directory(spec: MLPSpec, dim: int) -> Path:
    """Where exports for (spec, dim) are cached: ~/.cache/edge-agent/onnx/<16 hex digits>."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / cache_subpath(spec, dim)


def export_to_cache(spec: MLPSpec, dim: int) -> Path:
    """The cache directory for (spec, dim), freshly exported there (needs torch); the swap is atomic, so agents
    starting together never read half an export."""
    directory = cache_directory(spec, dim)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=directory.parent))
    try:
        export_kernels(spec, staging, dim=dim)
        shutil.rmtree(directory, ignore_errors=True)
        staging.rename(directory)  # another process may have won the race; its export is as good as ours
    except OSError:
        pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    check_exports(directory, spec, dim)
    return directory


def usable_cache(spec: MLPSpec, dim: int) -> Path | None:
    """The cache directory for (spec, dim) if it holds a valid export, else None."""
    directory = cache_directory(spec, dim)
    try:
        check_exports(directory, spec, dim)
    except ValueError:
        return None
    return directory


def ensure_exported(spec: MLPSpec, dim: int) -> Path:
    """The cache directory for (spec, dim), exported there first (needs torch) if it holds no valid export."""
    directory = usable_cache(spec, dim)
    if directory is not None:
        return directory
    try:
        import torch  # noqa: F401  (only to ask whether this machine can export)
    except ImportError:
        directory = cache_directory(spec, dim)
        raise MissingKernelsError(dim, directory, (directory / MANIFEST).exists()) from None
    directory = export_to_cache(spec, dim)
    log.info("exported the board kernels for m = %d to %s (what `%s` does)", dim, directory, EXPORT_COMMAND)
    return directory


class OnnxBackend:
    """One InferenceSession per kernel, on the given execution providers and intra-op thread count."""

    def __init__(self, spec: MLPSpec, directory: Path | None = None, providers: Sequence[str] | None = None,
                 threads: int | None = None, dim: int = 1024) -> None:
        self.spec = spec
        self.directory = Path(directory) if directory is not None else ensure_exported(spec, dim)
        self.manifest: Manifest = check_exports(self.directory, spec, dim)
        chosen = list(providers or DEFAULT_PROVIDERS)
        self._sessions = {name: ort.InferenceSession(str(self.directory / self.manifest.kernels[name].file),
                                                     sess_options=_session_options(name, threads), providers=chosen)
                          for name in KERNELS}

    def _run(self, name: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        kernel = self.manifest.kernels[name]
        return list(self._sessions[name].run(list(kernel.outputs), {key: feeds[key] for key in kernel.inputs}))

    def logits(self, w: FloatArray, x: FloatArray) -> FloatArray:
        return self._run("logits", {"w": _f32(w), "x": _f32(x)})[0]

    def projected_jacobian(self, w: FloatArray, x: FloatArray, state: SketchState) -> tuple[FloatArray, FloatArray]:
        if (state.dim, state.layout) != (self.manifest.dim, self.manifest.layout):
            raise ValueError(f"sketch state (m = {state.dim}, blocks {state.layout}) does not match the export in "
                             f"{self.directory} (m = {self.manifest.dim}, blocks {self.manifest.layout})")
        jt, logits = self._run("projected_jacobian", {"w": _f32(w), "x": _f32(x), **state.feeds()})
        return jt, logits

    def loss_sums(self, w: FloatArray, updates: FloatArray, x: FloatArray, y: np.ndarray) -> FloatArray:
        feeds = {"w": _f32(w), "updates": _f32(updates), "x": _f32(x), "y": np.ascontiguousarray(y, dtype=np.int64)}
        return self._run("loss_sums", feeds)[0]


def _f32(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float32)


def _session_options(kernel: str, threads: int | None) -> ort.SessionOptions:
    """Session options; the sketch kernel runs on one intra-op thread, and idle intra-op threads sleep.

    ONNX Runtime's CPU ScatterND with reduction="add" splits updates across threads without guarding duplicate
    indices, and a CountSketch has many: with several threads the sums come out wrong, differently on each run
    (measured: errors from 2.5e-7 to 6e-2 relative over five identical calls; exact on one thread).
    By default a session's worker threads spin after each run, taking the cores the agent's own evolution and
    server threads need between kernel calls: measured on 4 agents of the edge setting (4 threads each, 2 cores),
    a round took 1.75 s with spinning and 1.33 s without.
    """
    options = ort.SessionOptions()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if kernel == "projected_jacobian":
        options.intra_op_num_threads = 1
    elif threads is not None:
        options.intra_op_num_threads = threads
    return options

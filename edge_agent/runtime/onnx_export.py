"""Export the torch kernels to versioned ONNX files with a checked manifest; checking needs neither torch nor onnx.

`export_kernels` writes logits.onnx, projected_jacobian.onnx and loss_sums.onnx with the dynamo exporter, the sample
axis N (and the candidate axis T) dynamic, and a manifest.json naming the format version, the MLP sizes, the
projection dimension and sketch block layout the Jacobian graph is built for, every graph's input and output names,
and the sha256 of every file. `check_exports` refuses a directory whose manifest or files do not match.
The exporter's own logging and warnings (some 280 lines per export) are silenced: a user sees only the result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.learning.mlp import MLPSpec
from edge_agent.learning.projection import TensorSketchProjection
from edge_agent.runtime.backend import BackendUnavailableError, BlockLayout, SketchState

FORMAT_VERSION = 1  # bump when a graph's inputs, outputs or semantics change: every cached export goes stale
DEFAULT_OPSET = 18  # ScatterND with reduction="add" needs >= 16
MANIFEST = "manifest.json"
KERNELS = ("logits", "projected_jacobian", "loss_sums")
EXPORT_COMMAND = "edge-agent export --profile NAME"  # what makes the kernels, NAME a profile with the board's m


class MissingKernelsError(BackendUnavailableError):
    """No usable ONNX export for (spec, dim) here and no torch to make one: says in one line how to export them."""

    def __init__(self, dim: int, directory: Path, found: bool) -> None:
        self.dim, self.directory, self.found = dim, directory, found
        super().__init__(self.line())

    def line(self, profile: str = "NAME") -> str:
        """The one line a user reads: what is missing where, and the command that makes it (for `profile`)."""
        there = f"the one in {self.directory} is stale or damaged" if self.found else f"none in {self.directory}"
        return (f"no ONNX kernels for m = {self.dim} here ({there}): on a machine with torch run "
                f"`{EXPORT_COMMAND.replace('NAME', profile)} --out DIR` and copy DIR to {self.directory}")


@dataclass(frozen=True)
class KernelFile:
    """One exported graph: its file name, input and output names in order, and the sha256 of its bytes."""

    file: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What an export directory holds and what it was built for."""

    format_version: int
    opset: int
    sizes: tuple[int, ...]
    dim: int
    layout: tuple[BlockLayout, ...]
    kernels: dict[str, KernelFile]


def example_state(spec: MLPSpec, dim: int) -> SketchState:
    """A sketch state of the layout every round of (spec, dim) has; its values only serve as example inputs."""
    return SketchState.from_projection(TensorSketchProjection(spec, dim, (0, 0, 0)))


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextmanager
def exporter_silenced() -> Iterator[None]:
    """No log record at WARNING or below and no Python warning while it lasts: torch.export, onnxscript and onnx_ir
    log every pass they run (INFO) and every optional op they skip (WARNING), some 280 lines for three graphs."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def export_kernels(spec: MLPSpec, directory: Path, opset: int = DEFAULT_OPSET, dim: int = 1024) -> dict[str, Path]:
    """Export the three kernels for `spec` (Jacobian: tensorsketch of dimension `dim`) into `directory`, quietly."""
    with exporter_silenced():
        return _export(spec, directory, opset, dim)


def _export(spec: MLPSpec, directory: Path, opset: int, dim: int) -> dict[str, Path]:
    import torch

    from edge_agent.runtime.torch_kernels import Logits, LossSums, ProjectedJacobian

    directory.mkdir(parents=True, exist_ok=True)
    state = example_state(spec, dim)
    n, t = torch.export.Dim("N", min=1), torch.export.Dim("T", min=1)
    w = torch.zeros(spec.num_params)
    x = torch.randn(8, spec.sizes[0])
    sketch = {name: torch.as_tensor(value) for name, value in state.feeds().items()}
    plans: dict[str, tuple[torch.nn.Module, tuple[Any, ...], tuple[Any, ...], tuple[str, ...], tuple[str, ...]]] = {
        "logits": (Logits(spec), (w, x), (None, {0: n}), ("w", "x"), ("logits",)),
        "projected_jacobian": (ProjectedJacobian(spec, dim, state.layout), (w, x, *sketch.values()),
                               (None, {0: n}, None, None), ("w", "x", *sketch), ("jt", "logits")),
        "loss_sums": (LossSums(spec), (w, torch.zeros(3, spec.num_params), x, torch.zeros(8, dtype=torch.int64)),
                      (None, {0: t}, {0: n}, {0: n}), ("w", "updates", "x", "y"), ("loss_sums",)),
    }
    paths, kernels = {}, {}
    for name, (module, args, dynamic, inputs, outputs) in plans.items():
        path = directory / f"{name}.onnx"
        program = torch.onnx.export(module.eval(), args, dynamo=True, dynamic_shapes=dynamic, verbose=False,
                                    input_names=list(inputs), output_names=list(outputs), opset_version=opset,
                                    external_data=False)
        if program is None:
            raise RuntimeError(f"torch.onnx.export returned no program for {name}")
        program.save(str(path), external_data=False)
        paths[name] = path
        kernels[name] = KernelFile(path.name, inputs, outputs, file_sha256(path))
    _write_manifest(directory, Manifest(FORMAT_VERSION, opset, spec.sizes, dim, state.layout, kernels))
    return paths


def _write_manifest(directory: Path, manifest: Manifest) -> None:
    body = {"format_version": manifest.format_version, "opset": manifest.opset, "sizes": list(manifest.sizes),
            "projection": {"family": "tensorsketch", "dim": manifest.dim, "blocks": [list(b) for b in manifest.layout]},
            "kernels": {name: {"file": k.file, "inputs": list(k.inputs), "outputs": list(k.outputs),
                               "sha256": k.sha256} for name, k in manifest.kernels.items()}}
    (directory / MANIFEST).write_text(json.dumps(body, indent=2) + "\n")


def read_manifest(directory: Path) -> Manifest:
    """The manifest of an export directory, or a ValueError naming what is missing or malformed."""
    path = directory / MANIFEST
    try:
        body = json.loads(path.read_text())
        projection = body["projection"]
        return Manifest(int(body["format_version"]), int(body["opset"]), tuple(int(s) for s in body["sizes"]),
                        int(projection["dim"]), tuple(_block_layout(block) for block in projection["blocks"]),
                        {name: KernelFile(k["file"], tuple(k["inputs"]), tuple(k["outputs"]), k["sha256"])
                         for name, k in body["kernels"].items()})
    except FileNotFoundError:
        raise ValueError(f"no ONNX export in {directory}: {MANIFEST} is missing") from None
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"malformed ONNX export manifest {path}: {error!r}") from None


def _block_layout(values: list[int]) -> BlockLayout:
    layer, o0, o1, k0, k1 = (int(value) for value in values)
    return layer, o0, o1, k0, k1


def check_exports(directory: Path, spec: MLPSpec, dim: int | None = None) -> Manifest:
    """The directory's manifest, if its version, spec, projection and file hashes all match; else a ValueError."""
    manifest = read_manifest(directory)
    stale = f"re-export it with `{EXPORT_COMMAND}` (on a machine with torch)"
    if manifest.format_version != FORMAT_VERSION:
        raise ValueError(f"ONNX export in {directory} has format version {manifest.format_version}, this agent "
                         f"reads version {FORMAT_VERSION}: {stale}")
    if manifest.sizes != spec.sizes:
        raise ValueError(f"ONNX export in {directory} is for an MLP {manifest.sizes}, not {spec.sizes}: {stale}")
    if dim is not None and manifest.dim != dim:
        raise ValueError(f"ONNX export in {directory} projects to m = {manifest.dim}, not {dim}: {stale}")
    missing = sorted(set(KERNELS) - set(manifest.kernels))
    if missing:
        raise ValueError(f"ONNX export in {directory} lacks kernels {', '.join(missing)}: {stale}")
    for name, kernel in manifest.kernels.items():
        path = directory / kernel.file
        if not path.is_file():
            raise ValueError(f"ONNX export in {directory}: {kernel.file} ({name}) is missing: {stale}")
        if file_sha256(path) != kernel.sha256:
            raise ValueError(f"ONNX export in {directory}: {kernel.file} does not match the sha256 in {MANIFEST} "
                             f"(modified or corrupt): {stale}")
    return manifest

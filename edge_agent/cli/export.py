"""`edge-agent export --profile NAME [--out DIR]`: the board kernels as checked ONNX files, made where torch is."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from edge_agent.cli.data_source import data_option, labelled_data
from edge_agent.cli.errors import OperatorError
from edge_agent.cli.options import model_option
from edge_agent.deploy.profiles import find_profile
from edge_agent.learning.datasets import DEFAULT_SOURCE
from edge_agent.learning.datasets.fashion_mnist import FashionMnistLayout
from edge_agent.learning.mlp import MLPSpec
from edge_agent.runtime.backend import TORCH_EXTRA
from edge_agent.runtime.onnx_backend import cache_subpath, export_to_cache
from edge_agent.runtime.onnx_export import MANIFEST, check_exports, export_kernels, read_manifest


@contextmanager
def output_captured() -> Iterator[None]:
    """File descriptors 1 and 2 go to a temporary file while it lasts, so output the logging silence cannot reach
    (C++ warnings, prints) stays off the terminal; if the block raises, that output is replayed on stderr."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            if failed:
                sink.seek(0)
                sys.stderr.write(sink.read().decode(errors="replace"))


def summary(directory: Path) -> str:
    """'4 files, 118.4 kB in DIR': the manifest and every kernel file it lists, and their total size."""
    manifest = read_manifest(directory)
    files = [directory / MANIFEST, *(directory / kernel.file for kernel in manifest.kernels.values())]
    size = sum(path.stat().st_size for path in files)
    return f"{len(files)} files, {size / 1000:.1f} kB in {directory}"


@click.command()
@click.option("--profile", "profile_name", required=True,
              help="Board profile (see `edge-agent profiles list`); the kernels are built for its projection "
                   "dimension.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write into (default: the cache folder agents on this machine read, "
                   "~/.cache/edge-agent/onnx/<key>).")
@data_option
@model_option
def export(profile_name: str, out: Path | None, data_source: str, model: str) -> None:
    """Export the board kernels (forward pass, projected Jacobian, candidate losses) with their manifest.

    Needs torch (pip install 'edge-agent[torch]'); a board then runs them with ONNX Runtime alone. Copy the folder
    to ~/.cache/edge-agent/onnx/<key>/ on each board of the profile (the result line names <key>).
    """
    if model != "mlp":
        raise OperatorError(f"--model {model}: only the mlp's kernels export to ONNX; run this model's agents with "
                            "--backend torch")
    try:
        profile = find_profile(profile_name)
    except ValueError as error:
        raise OperatorError(str(error)) from None
    if profile.spark.projection != "tensorsketch":
        raise OperatorError(f"profile {profile.name} projects with {profile.spark.projection}; the board kernels "
                            "are built for tensorsketch only")
    try:
        import torch  # noqa: F401  (only to ask whether this machine can export)
    except ImportError:
        raise click.ClickException(f"export needs torch, which is not importable here: {TORCH_EXTRA}") from None
    layout = FashionMnistLayout() if data_source == DEFAULT_SOURCE else labelled_data(data_source)
    # the kernels are built for the data's input and classes
    spec, dim = MLPSpec.for_data(layout.input_shape, layout.num_classes), profile.spark.proj_dim
    try:
        with output_captured():
            if out is None:
                directory = export_to_cache(spec, dim)
            else:
                export_kernels(spec, out, dim=dim)
                directory = out
        check_exports(directory, spec, dim)
    except OSError as error:  # --out (or the cache) cannot be written
        where = f"--out {out}" if out is not None else f"the cache ({error.filename})"
        raise OperatorError(f"{where}: cannot write the kernels for profile {profile.name}: "
                            f"{error.strerror or error}") from None
    except ValueError as error:
        raise click.ClickException(f"export for profile {profile.name} failed: {error}") from None
    click.echo(f"exported the board kernels for profile {profile.name} (m = {dim}): {summary(directory)}; "
               f"boards read them from ~/.cache/{cache_subpath(spec, dim)}/")

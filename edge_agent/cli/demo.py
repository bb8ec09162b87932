"""`edge-agent demo`: the `edge` setting as separate agent processes on loopback, throttled, found by mDNS."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

import click
import numpy as np
from click.core import ParameterSource

from edge_agent.agent.checkpoint import checkpoint_path
from edge_agent.agent.launcher import LocalRun, launch_local_agents
from edge_agent.cli.data_source import data_option, labelled_data
from edge_agent.cli.errors import OperatorError, writable_folder
from edge_agent.cli.options import model_option
from edge_agent.deploy.certs import throwaway_cluster
from edge_agent.learning.algorithms.baselines import accuracy_in_chunks
from edge_agent.learning.algorithms.spark import PRESETS
from edge_agent.learning.codec import Precision
from edge_agent.learning.data import DataNotFoundError
from edge_agent.learning.datasets import DEFAULT_SOURCE
from edge_agent.learning.models.contract import Model
from edge_agent.learning.models.select import load_model
from edge_agent.learning.models.source import absolute_source
from edge_agent.learning.settings import SETTINGS
from edge_agent.learning.topology import client_ids
from edge_agent.runtime.select import AUTO, BACKEND_CHOICES


@click.command()
@click.option("--setting", type=click.Choice(list(SETTINGS)), default="edge", show_default=True)
@click.option("--agents", type=click.IntRange(min=3), help="Number of agent processes (default: the setting's).")
@click.option("--rounds", type=click.IntRange(min=1), help="Rounds (default: the setting's).")
@click.option("--uplink", default="50mbit", show_default=True, help="Every agent's uplink rate.")
@click.option("--downlink", default="100mbit", show_default=True, help="Every agent's downlink rate.")
@click.option("--latency", default="5ms", show_default=True, help="Added one-way latency.")
@click.option("--precision", type=click.Choice(get_args(Precision)), default="fp32", show_default=True,
              help="Element type of the projected Jacobians on the wire.")
@click.option("--preset", type=click.Choice(list(PRESETS)), default="published", show_default=True,
              help="SPARK's preset for every agent (`run --preset`; lean: kernel sketches, int4 weights, residual "
                   "rows); --precision given explicitly wins over it.")
@click.option("--backend", type=click.Choice(BACKEND_CHOICES), default=AUTO, show_default=True,
              help="The agents' kernel backend: auto takes torch where it imports, else onnxruntime where the "
                   "exported kernels are, else numpy (each agent's log names the one it took).")
@model_option
@data_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/demo"),
              show_default=True, help="Metrics, logs and checkpoints of the agents.")
def demo(setting: str, agents: int | None, rounds: int | None, uplink: str, downlink: str, latency: str,
         precision: str, preset: str, backend: str, model: str, data_source: str, out: Path) -> None:
    """Launch one agent process per client on 127.0.0.1 (SPARK, mDNS, throttled links), follow them, and
    print a per-round table of accuracy, megabytes and seconds when they are done."""
    base = SETTINGS[setting]
    count, total_rounds = agents or base.clients, rounds or base.rounds
    writable_folder("--out", out)
    try:
        data = labelled_data(data_source)
    except DataNotFoundError as error:
        raise click.ClickException(str(error)) from error
    try:
        classifier = load_model(model, data.input_shape, data.num_classes)
    except ValueError as error:
        raise OperatorError(str(error)) from None
    # A run of its own each time: checkpoints a finished demo left in `out` belong to another run and are not resumed.
    args = ["--setting", setting, "--rounds", str(total_rounds), "--uplink", uplink, "--downlink", downlink,
            "--latency", latency, "--preset", preset, "--backend", backend, "--run", f"demo-{uuid.uuid4().hex[:8]}",
            "--quiet"]
    if data_source != DEFAULT_SOURCE:  # an npz path as every agent, whatever its folder, finds it
        args += ["--data", str(Path(data_source).resolve()) if data.name == "npz" else data_source]
    if model != "mlp":  # a model file as every agent, whatever its folder, finds it
        args += ["--model", absolute_source(model)]
    if click.get_current_context().get_parameter_source("precision") != ParameterSource.DEFAULT:
        args += ["--precision", precision]  # a default here would hide the preset's precision
    click.echo(f"starting {count} agents ({setting}, {total_rounds} rounds, links {uplink} up / {downlink} down, "
               f"{latency}); logs and metrics in {out}", err=True)
    # The secure path is the one exercised every day: mutual TLS with a throwaway CA made for this demo.
    args += ["--certs", str(throwaway_cluster(out / "certs", list(client_ids(count))))]
    run = launch_local_agents(count, out, args)
    try:
        _follow(run, count * total_rounds)
    except KeyboardInterrupt:
        raise click.ClickException("interrupted; agents stopped") from None
    finally:
        run.stop()
    if run.failed():
        raise click.ClickException(f"agents {run.failed()} failed ({run.first_error()}); see {out}/agent-N.log")
    click.echo(_table(run.records()))
    final = _aggregated_accuracy(out / "checkpoints", client_ids(count), classifier, data.test.x, data.test.y)
    click.echo(f"aggregated model (mean of the {count} agents' final weights): test accuracy {final:.4f}")


def _follow(run: LocalRun, expected: int) -> None:
    with click.progressbar(length=expected, label="agent rounds", file=click.get_text_stream("stderr")) as bar:
        done = 0
        while run.running() and not run.failed():
            now = sum(len(r) for r in run.records())
            bar.update(now - done)
            done = now
            time.sleep(1.0)
        bar.update(sum(len(r) for r in run.records()) - done)


def _table(records: list[list[dict[str, Any]]]) -> str:
    trained = [r for agent in records for r in agent if r.get("status") == "trained"]
    lines = ["round  mean test acc  MB sent/agent  seconds  peak RSS MB",
             "-----  -------------  -------------  -------  -----------"]
    for k in sorted({r["round"] for r in trained}):
        row = [r for r in trained if r["round"] == k]
        acc = np.mean([r["test_accuracy"] for r in row])
        mb = np.mean([r["payload_sent_bytes"] for r in row]) / 1e6
        seconds = max(r["seconds"]["total"] for r in row)
        peak = max(r["peak_rss_mb"] for r in row)
        lines.append(f"{k:5d}  {acc:13.4f}  {mb:13.2f}  {seconds:7.1f}  {peak:11.0f}")
    return "\n".join(lines)


def _aggregated_accuracy(checkpoints: Path, agents: Sequence[str], spec: Model, x: np.ndarray,
                         y: np.ndarray) -> float:
    """Test accuracy of the mean of the agents' last checkpointed weights (not the best ones kept beside them)."""
    weights = []
    for agent_id in agents:
        with np.load(checkpoint_path(checkpoints, agent_id)) as data:
            weights.append(data["weights"])
    return accuracy_in_chunks(spec, np.mean(weights, axis=0).astype(np.float32), x, y)

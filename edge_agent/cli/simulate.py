"""`edge-agent simulate`: run many clients in one process and write per-round records and a summary."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from edge_agent.cli.data_source import data_option, labelled_data
from edge_agent.cli.errors import OperatorError, writable_folder
from edge_agent.cli.options import apply_preset, method_configs, method_options, model_option, robust_option
from edge_agent.cli.round_progress import RoundProgress
from edge_agent.deploy.profiles import find_profile
from edge_agent.learning.data import DataNotFoundError
from edge_agent.learning.datasets import DEFAULT_SOURCE
from edge_agent.learning.models.contract import ModelError
from edge_agent.learning.models.select import load_model
from edge_agent.learning.robust import RobustConfig
from edge_agent.learning.settings import SETTINGS
from edge_agent.sim.config import ALGORITHMS, SimulationConfig
from edge_agent.sim.engine import Simulation
from edge_agent.sim.engines.base import ENGINES, EngineConfig, EngineError, EngineHooks
from edge_agent.sim.engines.select import require_engine
from edge_agent.sim.link_model import ModelledLink
from edge_agent.sim.run_dir import RunDirectory
from edge_agent.transport.rates import UNLIMITED, parse_bitrate, parse_duration


@click.command()
@click.option("--setting", type=click.Choice(list(SETTINGS)), default="smoke", show_default=True,
              help="Named setting (SPEC section 7): clients, samples per client, alpha, kappa, rounds.")
@click.option("--algorithm", type=click.Choice(list(ALGORITHMS)), default="spark", show_default=True)
@click.option("--rounds", type=int, help="Rounds to run (default: the setting's).")
@click.option("--clients", type=int, help="Number of clients M (default: the setting's).")
@click.option("--samples", "samples_per_client", type=int, help="Samples drawn per client S.")
@click.option("--alpha", type=float, help="Dirichlet concentration of the non-IID split (> 0).")
@click.option("--kappa", type=int, help="Neighbours per client per round.")
@click.option("--topology", type=click.Choice(["random-regular", "ring", "static"]), default="random-regular",
              show_default=True, help="Graph drawn each round from (seed, round).")
@click.option("--partition", "partition_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read the split from an npz file (client_000, ...) instead of generating it.")
@model_option
@method_options
@robust_option
@data_option
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Fashion-MNIST directory (default: $EDGE_AGENT_DATA, the Debian package, the user cache).")
@click.option("--workers", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default="CPU count",
              help="Worker processes for the per-client neighbourhood work (each uses one BLAS thread); with "
                   "--engine ray, the CPUs of the local Ray it starts (a cluster joined with --address uses all of "
                   "its own CPUs).")
@click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True,
              help="Where the per-client neighbourhood work runs: local processes, or Ray tasks of one CPU each "
                   "(pip install 'edge-agent[ray]'). Results are the same bits either way.")
@click.option("--address", help="With --engine ray: join the running Ray cluster at HOST:PORT (its head's address) "
                                "or `auto` (the one started on this machine) and use all its CPUs, instead of "
                                "starting a local Ray for the run.")
@click.option("--link", "link_rate", metavar="RATE",
              help="Model each round's wall-clock seconds on links of this rate between two clients, each way "
              "(e.g. 1mbit, 10mbit): records gain modelled_seconds, the summary the modelled seconds to each level.")
@click.option("--latency", default="0", show_default=True, help="With --link: one-way latency per message, e.g. 20ms.")
@click.option("--board", help="With --link: the board profile whose compute_scale turns compute measured here into "
              "the board's (e.g. rpi-4; `edge-agent profiles list`).")
@click.option("--compute-scale", type=click.FloatRange(min=0, min_open=True),
              help="With --link: board seconds per second measured here (default: the --board profile's, else 1).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory for rounds.jsonl, state.npz and summary.json.")
@click.option("--resume", is_flag=True,
              help="Continue the run saved in OUT (same settings; --rounds may grow except for spark) instead of "
                   "starting afresh; starts afresh if OUT holds no rounds yet.")
def simulate(setting: str, algorithm: str, rounds: int | None, clients: int | None, samples_per_client: int | None,
             alpha: float | None, kappa: int | None, topology: str, partition_file: Path | None,
             data_source: str, data_dir: Path | None, workers: int, engine: str, address: str | None,
             link_rate: str | None, latency: str, board: str | None, compute_scale: float | None, out: Path,
             resume: bool, robust: str, model: str, **method: Any) -> None:
    """Simulate decentralized training of all clients: one process, its per-client work on local worker processes
    or a Ray cluster.

    Writes OUT/rounds.jsonl (one line per round: accuracies, bytes per client, tau, seconds), OUT/state.npz
    after every round (so `--resume` continues an interrupted run, on either engine) and OUT/summary.json
    (resolved configuration, rounds and bytes to 85% aggregated accuracy).
    """
    writable_folder("--out", out)
    try:
        engine_config = EngineConfig(engine, workers, address)  # type: ignore[arg-type]
        require_engine(engine_config)
    except (ValueError, EngineError) as error:
        raise OperatorError(str(error)) from error
    try:
        data = labelled_data(data_source, data_dir)
    except DataNotFoundError as error:
        raise click.ClickException(str(error)) from error
    try:
        classifier = load_model(model, data.input_shape, data.num_classes)
    except ModelError as error:
        raise OperatorError(str(error)) from None
    try:
        config = SimulationConfig.from_setting(
            setting, algorithm,  # type: ignore[arg-type]
            rounds=rounds, clients=clients, samples_per_client=samples_per_client, alpha=alpha, kappa=kappa,
            seed=method["seed"], topology=topology, partition_file=partition_file,
        )
        ntk, spark, weights_codec = method_configs(**apply_preset(click.get_current_context(), method))
        config = replace(config, ntk=ntk, spark=spark, weights_codec=weights_codec,
                         link=link_model(link_rate, latency, board, compute_scale),
                         robust=RobustConfig(robust), data=data.name, data_digest=data.digest,  # type: ignore[arg-type]
                         model=model)
        progress = RoundProgress(config.rounds, click.get_text_stream("stderr"))
        simulation = Simulation(config, data.train, data.test, spec=classifier, engine=engine_config,
                                hooks=EngineHooks(progress.requesters, progress.notice))
        run = RunDirectory(out, simulation, resume=resume)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    on_data = "" if data_source == DEFAULT_SOURCE else f", data {data_source} ({len(data.train)} training samples)"
    click.echo(f"{config.algorithm} on {config.clients} clients, {config.rounds} rounds, engine {engine}{on_data}",
               err=True)
    if run.resumed_at:
        click.echo(f"resuming {out} at round {run.resumed_at} ({run.resumed_at} of {config.rounds} done)", err=True)
    progress.start(run.resumed_at)
    try:
        for record in run.run():
            progress.round_done(record)
    except EngineError as error:
        raise click.ClickException(str(error)) from error
    click.echo(_summary_line(run.finish()))


def link_model(rate: str | None, latency: str, board: str | None, compute_scale: float | None
               ) -> ModelledLink | None:
    """The link model the options ask for (None without --link); ValueError naming the option at fault."""
    if rate is None:
        if board is not None or compute_scale is not None or latency != "0":
            raise ValueError("--latency, --board and --compute-scale model a link: give --link RATE too")
        return None
    try:
        bits_per_s, latency_s = parse_bitrate(rate), parse_duration(latency)
    except ValueError as error:
        raise ValueError(f"--link/--latency: {error}") from None
    if bits_per_s == UNLIMITED:
        raise ValueError("--link: a modelled link needs a finite rate, e.g. 10mbit")
    scale = compute_scale or (find_profile(board).board.compute_scale if board else 1.0)
    return ModelledLink(bits_per_s, latency_s, scale)


def _summary_line(summary: dict[str, Any]) -> str:
    reached = summary["rounds_to_target"]
    target = f"reached {summary['target_accuracy']:.0%} at round {reached}" if reached else "target not reached"
    return (f"final aggregated accuracy {summary['final_agg_accuracy']:.4f}, mean client accuracy "
            f"{summary['final_mean_client_accuracy']:.4f}; {target}; "
            f"{summary['total_bytes_per_client'] / 1e6:.1f} MB per client in total")

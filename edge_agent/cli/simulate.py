"""`edge-agent simulate`: run many clients in one process and write per-round records and a summary."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from edge_agent.cli.errors import writable_folder
from edge_agent.cli.options import method_configs, method_options, robust_option
from edge_agent.learning.data import DataNotFoundError, load_fashion_mnist
from edge_agent.learning.robust import RobustConfig
from edge_agent.learning.settings import SETTINGS
from edge_agent.sim.config import ALGORITHMS, SimulationConfig
from edge_agent.sim.engine import Simulation
from edge_agent.sim.run_dir import RunDirectory


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
@method_options
@robust_option
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Fashion-MNIST directory (default: $EDGE_AGENT_DATA, the Debian package, the user cache).")
@click.option("--workers", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default="CPU count",
              help="Worker processes for the per-client neighbourhood work (each uses one BLAS thread).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory for rounds.jsonl, state.npz and summary.json.")
@click.option("--resume", is_flag=True,
              help="Continue the run saved in OUT (same settings; --rounds may grow except for spark) instead of "
                   "starting afresh; starts afresh if OUT holds no rounds yet.")
def simulate(setting: str, algorithm: str, rounds: int | None, clients: int | None, samples_per_client: int | None,
             alpha: float | None, kappa: int | None, topology: str, partition_file: Path | None,
             data_dir: Path | None, workers: int, out: Path, resume: bool, robust: str, **method: Any) -> None:
    """Simulate decentralized training of all clients in this process.

    Writes OUT/rounds.jsonl (one line per round: accuracies, bytes per client, tau, seconds), OUT/state.npz
    after every round (so `--resume` continues an interrupted run) and OUT/summary.json (resolved configuration,
    rounds and bytes to 85% aggregated accuracy).
    """
    writable_folder("--out", out)
    try:
        config = SimulationConfig.from_setting(
            setting, algorithm,  # type: ignore[arg-type]
            rounds=rounds, clients=clients, samples_per_client=samples_per_client, alpha=alpha, kappa=kappa,
            seed=method["seed"], topology=topology, partition_file=partition_file,
        )
        ntk, spark, weights_codec = method_configs(**method)
        config = replace(config, ntk=ntk, spark=spark, weights_codec=weights_codec,
                         robust=RobustConfig(robust))  # type: ignore[arg-type]
        train, test = load_fashion_mnist(data_dir)
        simulation = Simulation(config, train, test, workers=workers)
        run = RunDirectory(out, simulation, resume=resume)
    except (ValueError, DataNotFoundError) as error:
        raise click.ClickException(str(error)) from error
    if run.resumed_at:
        click.echo(f"resuming {out} at round {run.resumed_at} ({run.resumed_at} of {config.rounds} done)", err=True)
    _run_with_progress(run)
    click.echo(_summary_line(run.finish()))


def _run_with_progress(run: RunDirectory) -> None:
    config = run.simulation.config
    label = f"{config.algorithm} on {config.clients} clients"
    with click.progressbar(length=config.rounds, label=label, file=click.get_text_stream("stderr"),
                           item_show_func=lambda r: r) as bar:
        bar.update(run.resumed_at)
        for record in run.run():
            bar.update(1, f"round {record.round}: acc {record.agg_accuracy:.3f}")


def _summary_line(summary: dict[str, Any]) -> str:
    reached = summary["rounds_to_target"]
    target = f"reached {summary['target_accuracy']:.0%} at round {reached}" if reached else "target not reached"
    return (f"final aggregated accuracy {summary['final_agg_accuracy']:.4f}, mean client accuracy "
            f"{summary['final_mean_client_accuracy']:.4f}; {target}; "
            f"{summary['total_bytes_per_client'] / 1e6:.1f} MB per client in total")

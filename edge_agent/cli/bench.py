"""`edge-agent bench`: benchmarks of real agent fleets; `bench link` runs one fleet per algorithm and link rate."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import click

from edge_agent.agent.config import AGENT_ALGORITHMS
from edge_agent.cli.data_source import data_option, labelled_data
from edge_agent.cli.errors import OperatorError, writable_folder
from edge_agent.cli.options import model_option
from edge_agent.learning.algorithms.spark import PRESETS
from edge_agent.learning.datasets import DEFAULT_SOURCE, source_name
from edge_agent.learning.datasets.fashion_mnist import FashionMnistLayout
from edge_agent.learning.models.select import load_model
from edge_agent.learning.models.source import absolute_source
from edge_agent.learning.settings import SETTINGS
from edge_agent.linkbench.report import fleet_line, plots_missing, write_report
from edge_agent.linkbench.runner import FleetPlan, Link, Progress, run_fleets
from edge_agent.runtime.select import AUTO, BACKEND_CHOICES
from edge_agent.transport.kernel_link import unavailable_reason
from edge_agent.transport.rates import parse_bitrate, parse_duration

LEVELS = "0.5,0.6,0.7,0.8,0.85"
_BUDGET = re.compile(r"(\d+(?:\.\d+)?)(s|m|min|h)?")
_BUDGET_UNIT = {None: 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_budget(text: str) -> float:
    """Seconds of `30m`, `90s`, `1.5h` or a plain number of seconds."""
    match = _BUDGET.fullmatch(text.strip().lower())
    if match is None or float(match.group(1)) <= 0:
        raise click.BadParameter(f"expected a positive duration such as 30m, 90s or 1h, got {text!r}")
    return float(match.group(1)) * _BUDGET_UNIT[match.group(2)]


def agent_data(source: str) -> str:
    """--data as every agent is given it: an npz path made absolute, since the agents run in folders of their own."""
    return str(Path(source).resolve()) if source_name(source) == "npz" else source


def split_list(text: str, name: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise click.BadParameter(f"give at least one {name}")
    return items


@click.group()
def bench() -> None:
    """Benchmarks of real agent fleets on this host."""


@bench.command()
@click.option("--agents", type=click.IntRange(min=3), help="Agents per fleet (default: the setting's clients).")
@click.option("--setting", type=click.Choice(list(SETTINGS)), default="edge", show_default=True)
@click.option("--algorithms", default=",".join(("spark", "dfedavg", "ntk-dfl")), show_default=True,
              help=f"Comma-separated, of {', '.join(AGENT_ALGORITHMS)}.")
@click.option("--rate", "rates", default="1mbit,10mbit", show_default=True,
              help="Comma-separated link rates. The agents' throttle gives the rate to each link between two "
                   "agents, each way; --kernel-tc to each agent's access link.")
@click.option("--latency", default="20ms", show_default=True, help="One-way latency added to every message.")
@click.option("--rounds", type=click.IntRange(min=1), help="Rounds per fleet (default: the setting's).")
@click.option("--until", type=click.FloatRange(0, 1, min_open=True),
              help="Stop a fleet once its agents' mean test accuracy reaches this (within --rounds).")
@click.option("--time-budget", "budget", default="30m", show_default=True,
              help="Wall clock each fleet may have from launch (30m, 90s, 1h); then its agents get SIGTERM.")
@click.option("--levels", default=LEVELS, show_default=True,
              help="Accuracy levels the summary gives rounds, MB and seconds to.")
@click.option("--kernel-tc", is_flag=True,
              help="Shape the rate with tc between network namespaces instead of the agents' throttle (root).")
@click.option("--backend", type=click.Choice(BACKEND_CHOICES), default=AUTO, show_default=True,
              help="Every agent's kernel backend: auto takes torch where it imports, else onnxruntime where the "
                   "exported kernels are, else numpy (each agent's log names the one it took).")
@click.option("--preset", type=click.Choice(list(PRESETS)), default="published", show_default=True,
              help="The SPARK fleets' preset (`run --preset`; lean: kernel sketches, int4 weights, residual rows); "
                   "the other algorithms' fleets run as they are.")
@model_option
@data_option
@click.option("--agent-args", default="", help="Further `edge-agent run` flags for every agent, e.g. '--solver euler'.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Where the fleets' records, report.md, the plots and summary.json go.")
def link(agents: int | None, setting: str, algorithms: str, rates: str, latency: str, rounds: int | None,
         until: float | None, budget: str, levels: str, kernel_tc: bool, backend: str, preset: str, model: str,
         data_source: str, agent_args: str, out: Path) -> None:
    """Run a fleet of real agents per algorithm and link rate, each in a run of its own and one after the other,
    and write OUT/report.md (it opens with the verdict per link rate), OUT/summary.json and PNG plots of accuracy
    against rounds, MB per agent and seconds (with matplotlib: pip install 'edge-agent[bench]')."""
    base = SETTINGS[setting]
    chosen = split_list(algorithms, "algorithm")
    unknown = [a for a in chosen if a not in AGENT_ALGORITHMS]
    if unknown:
        raise click.BadParameter(f"{', '.join(unknown)}: the agent runs {', '.join(AGENT_ALGORITHMS)}",
                                 param_hint="--algorithms")
    links = [Link(rate, latency, kernel_tc) for rate in split_list(rates, "rate")]
    try:
        for item in links:
            parse_bitrate(item.rate)
        parse_duration(latency)
        level_values = sorted({float(v) for v in split_list(levels, "level")} | ({until} if until else set()))
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    reason = unavailable_reason() if kernel_tc else None
    if reason is not None:
        raise click.ClickException(f"--kernel-tc: {reason}")
    missing = plots_missing()
    if missing is not None:  # said before the fleets run, so nobody waits for plots that will not come
        click.echo(missing, err=True)
    budget_s = parse_budget(budget)
    # refused here in one line rather than by every agent of every fleet
    layout = FashionMnistLayout() if data_source == DEFAULT_SOURCE else labelled_data(data_source)
    try:
        load_model(model, layout.input_shape, layout.num_classes)
    except ValueError as error:
        raise OperatorError(str(error)) from None
    plans = [FleetPlan(algorithm, item, agents or base.clients, setting, rounds or base.rounds, budget_s, until,
                       tuple(shlex.split(agent_args)), backend, preset, agent_data(data_source),
                       absolute_source(model))
             for item in links for algorithm in chosen]
    writable_folder("--out", out)
    click.echo(f"{len(plans)} fleets of {plans[0].agents} agents ({setting}, {plans[0].rounds} rounds, "
               f"{budget} budget each); records in {out}/fleets", err=True)

    def report(progress: Progress) -> None:
        click.echo(progress.line(), err=True)

    results = run_fleets(plans, out, report)
    given = sys.argv[sys.argv.index("link") + 1:] if "link" in sys.argv else []
    command = {"argv": shlex.join(["edge-agent", "bench", "link", *given]), "setting": setting,
               "agents": plans[0].agents, "budget_s": budget_s, "until": until, "backend": backend,
               "shaping": "tc between network namespaces: each agent's access link, up and down (latency: the "
                          "agents' throttle, as the kernel has no netem)"
               if kernel_tc else "the agents' own throttle: each link between two agents, each way (an agent "
                                 "busy with k neighbours at once moves up to k times the rate in all)"}
    data = write_report(out, results, level_values, command)
    for fleet in data["fleets"]:  # the figures of report.md's table, and its stop sentence
        click.echo(fleet_line(fleet), err=True)
    click.echo(f"report: {out / 'report.md'}")

"""Options shared by `simulate` and `run`: the same flags build the same method configuration in both."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, get_args

import click
from click.core import ParameterSource

from edge_agent.learning.algorithms.ntk_dfl import NTKDFLConfig
from edge_agent.learning.algorithms.spark import PRESETS, SparkConfig
from edge_agent.learning.codec import CodecConfig, Precision
from edge_agent.learning.ntk import EvolutionConfig
from edge_agent.learning.projection import FAMILIES, ProjectionConfig
from edge_agent.learning.robust import DEFAULT_RULE, RULES

F = TypeVar("F", bound=Callable[..., Any])
DEFAULTS = NTKDFLConfig()


def parse_taus(_ctx: click.Context | None, _param: click.Parameter | None, text: str) -> tuple[int, ...]:
    """'100,200,400' -> (100, 200, 400); the evolution config checks they are positive and increasing."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers such as 100,200,400, got {text!r}") from None

def apply_preset(ctx: click.Context, method: dict[str, Any], preset: str | None = None) -> dict[str, Any]:
    """The method flags (for method_configs) with the preset's values wherever the user left a flag at its default;
    the preset is `preset` if given (a board profile's), else the --preset flag's. A preset's kernel sketch at
    least as wide as the projection (a small --proj-dim) is left out, not an error: it would save nothing."""
    values = dict(PRESETS[preset or method["preset"]])
    if values.get("kernel_dim", 0) >= method["proj_dim"]:  # a sketch as wide as the rows it sketches saves nothing
        values["kernel_dim"] = 0
    return {key: values[key] if key in values and ctx.get_parameter_source(key) == ParameterSource.DEFAULT else value
            for key, value in method.items() if key != "preset"}


_METHOD_OPTIONS = (
    click.option("--preset", type=click.Choice(list(PRESETS)), default="published", show_default=True,
                 help="A named set of the method flags below; flags given explicitly win. lean: int4 kernel sketches "
                 "of m' = 32 values a row (--kernel-dim 32) for the rows holding 90% of the squared residual and a "
                 "quarter of the rest, an int8 pull-back, int4 weights, fp16 candidates."),
    click.option("--seed", type=int, default=0, show_default=True,
                 help="Seed of the split, the initial weights, the graphs and the projections."),
    click.option("--solver", type=click.Choice(["rk45", "euler"]), default="rk45", show_default=True,
                 help="Function-space ODE solver (NTK methods)."),
    click.option("--eta0", type=float, default=DEFAULTS.eta0, show_default=True,
                 help="NTK methods: initial learning rate (step of the function-space time grid)."),
    click.option("--gamma", type=float, default=DEFAULTS.gamma, show_default=True,
                 help="NTK methods: learning-rate decay, eta_k = eta0 * exp(-gamma * k); 0 keeps it constant."),
    click.option("--taus", default=",".join(map(str, DEFAULTS.evolution.taus)), show_default=True,
                 callback=parse_taus, help="NTK methods: candidate evolution horizons tau, comma-separated."),
    click.option("--projection", type=click.Choice([f for f in FAMILIES if f != "identity"]),
                 default="tensorsketch", show_default=True, help="SPARK: random projection family for the Jacobians."),
    click.option("--proj-dim", type=click.IntRange(min=1), default=1024, show_default=True,
                 help="SPARK: projected dimension m."),
    click.option("--proj-rank", type=click.IntRange(min=1), default=1, show_default=True,
                 help="SPARK: rank-one terms per column of the kron projection."),
    click.option("--precision", type=click.Choice(get_args(Precision)), default="fp32", show_default=True,
                 help="SPARK: element type of projected Jacobians on the wire (int8 and int4 use per-block scales)."),
    click.option("--candidates-precision", type=click.Choice(get_args(Precision)), default="fp32", show_default=True,
                 help="SPARK: element type on the wire of the candidate updates (one per tau, in R^m) a client sends "
                 "its neighbours to score."),
    click.option("--weights-precision", type=click.Choice(get_args(Precision)), default="fp32", show_default=True,
                 help="Every algorithm: element type of the weights on the wire (exchange, Jacobian request)."),
    click.option("--no-momentum", is_flag=True, help="SPARK: switch Nesterov momentum off."),
    click.option("--no-distill", is_flag=True, help="SPARK: switch the annealed soft-label regulariser off."),
    click.option("--residual-share", type=click.FloatRange(min=0.0, max=1.0, min_open=True), default=1.0,
                 show_default=True, help="SPARK: each neighbour sends the Jacobian rows of its samples with the "
                 "largest residuals, as many as hold this share of its squared residual (1: every row, as published)."),
    click.option("--tail-rate", type=click.FloatRange(min=0.0, max=1.0), default=0.0, show_default=True,
                 help="SPARK, with --residual-share below 1: the share of the other rows still sent, drawn at random, "
                 "each standing for an equal part of them."),
    click.option("--kernel-dim", type=click.IntRange(min=0), default=0, show_default=True,
                 help="SPARK: each reply carries a CountSketch of its projected Jacobian to this many dimensions m' "
                 "for the requester's kernel; the residual sums then go back to the neighbours, who pull them back "
                 "through the full m (a second, small exchange). 0: replies carry all m, as published."),
    click.option("--pullback-precision", type=click.Choice(get_args(Precision)), default="fp32", show_default=True,
                 help="SPARK with --kernel-dim: element type on the wire of the residual sums sent to the neighbours "
                 "and of the sums they pull back."),
    click.option("--schedule-rounds", type=click.IntRange(min=0), default=0, show_default=True,
                 help="SPARK: rounds its stages (soft-label weights, momentum) are spread over; 0: --rounds. "
                 "Rounds after them stay in the last stage, so a run can go on past its schedule."),
)


def robust_option(command: F) -> F:
    """Decorate a command with --robust, the rule that bounds what one neighbour can do (learning/robust.py)."""
    return click.option(
        "--robust", type=click.Choice(RULES), default=DEFAULT_RULE, show_default=True,
        help="How far one neighbour's messages may move this agent: screen leaves out of the round a neighbour "
             "whose weights lie 3x farther than the others' (and bounds every neighbour's Jacobian rows and "
             "candidate scores by our own); clip keeps it, its weights clipped to that radius; off is the "
             "published method. A fleet of honest boards trains the same either way (bench/results/robust.md).",
    )(command)


def model_option(command: F) -> F:
    """`--model`: which classifier every client trains (one run's agents must all name the same)."""
    return click.option(
        "--model", "model", default="mlp", show_default=True, metavar="MODEL",
        help="The classifier trained: mlp (784-100-10 on Fashion-MNIST, sized to the data), cnn (the reference's "
             "two-conv CNN, needs torch), or your own: path/to/file.py:factory or package.module:factory, a function "
             "(input_shape, num_classes) -> torch.nn.Module.")(command)


def method_options(command: F) -> F:
    """Decorate a command with the method flags (seed, solver, projection, precision, switches)."""
    for option in reversed(_METHOD_OPTIONS):
        command = option(command)
    return command


def method_configs(seed: int, solver: str, eta0: float, gamma: float, taus: tuple[int, ...], projection: str,
                   proj_dim: int, proj_rank: int, precision: str, candidates_precision: str, weights_precision: str,
                   no_momentum: bool, no_distill: bool, residual_share: float, tail_rate: float, schedule_rounds: int,
                   kernel_dim: int, pullback_precision: str) -> tuple[NTKDFLConfig, SparkConfig, CodecConfig]:
    """The NTK-DFL and SPARK configurations and the weights' codec the flags describe (ValueError when out of range)."""
    ntk = NTKDFLConfig(eta0=eta0, gamma=gamma, evolution=EvolutionConfig(taus=taus, solver=solver))  # type: ignore[arg-type]
    spark = SparkConfig(
        ntk=ntk, projection=ProjectionConfig(family=projection, dim=proj_dim, rank=proj_rank, seed=seed),  # type: ignore[arg-type]
        codec=CodecConfig(precision=precision), candidates_codec=CodecConfig(precision=candidates_precision),  # type: ignore[arg-type]
        momentum=not no_momentum, distill=not no_distill,
        residual_share=residual_share, tail_rate=tail_rate, schedule_rounds=schedule_rounds,
        kernel_dim=kernel_dim, pullback_codec=CodecConfig(precision=pullback_precision),  # type: ignore[arg-type]
    )
    return ntk, spark, CodecConfig(precision=weights_precision)  # type: ignore[arg-type]

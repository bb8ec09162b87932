"""Paper-setting benchmark: methods and SPARK variants to 85% aggregated accuracy; prints a table, writes records.

Usage: python bench/bench_paper.py --variants ntk-dfl,dfedavg,spark [--clients 300] [--rounds 50] [--out DIR]
                                   [--workers N] [--engine local|ray [--address auto|HOST:PORT]]
Each run stops once it reaches the target (unless --full); records go to OUT/VARIANT/rounds.jsonl and a
markdown table to OUT/table.md. `--clients M` runs the first M clients of the published split (SPEC section 2).
The `-lean` variants put another projection family on the lean wire of `spark-int4-w8-r90-t25`; `spark-lean-c8`
and `spark-lean-c4` send its candidate updates in int8 and int4; `spark-lean-m2048`, `-m4096` and `-m16384` are
the lean preset with a wider P (bench/results/cnn.md), `spark-lean-m4096-c8` with int8 candidates too.
Ablations share SPARK's first stage: run `spark` with `--pause-after 7`, then start `spark-no-momentum` and
`spark-no-distill` with `--fork-from OUT/spark` instead of running those 7 rounds again.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from edge_agent.cli.round_progress import RoundProgress
from edge_agent.cli.simulate import link_model
from edge_agent.learning.algorithms.ntk_dfl import NTKDFLConfig
from edge_agent.learning.algorithms.spark import PRESETS
from edge_agent.learning.codec import CodecConfig
from edge_agent.learning.data import IMAGE_SIDE, NUM_CLASSES, load_fashion_mnist
from edge_agent.learning.models.select import load_model
from edge_agent.learning.ntk import EvolutionConfig
from edge_agent.learning.projection import ProjectionConfig
from edge_agent.learning.settings import TARGET_ACCURACY
from edge_agent.sim.config import SimulationConfig
from edge_agent.sim.engine import Simulation
from edge_agent.sim.engines.base import ENGINES, EngineConfig, EngineError, EngineHooks
from edge_agent.sim.engines.select import require_engine
from edge_agent.sim.records import summarize
from edge_agent.sim.run_dir import RunDirectory, read_records

# The published 300-client split, vendored beside this script (bench/data/README.md says where it comes from).
DEFAULT_SPLIT = Path(__file__).resolve().parent / "data" / "fmnist300-alpha0.1-split0.npz"
# The lean wire: int4 Jacobians, int8 weights, the rows holding 90% of the squared residual plus a weighted 25% tail.
LEAN: dict[str, Any] = {"precision": "int4", "weights_precision": "int8", "residual_share": 0.9, "tail_rate": 0.25}
# int4 kernel sketches of m' = 64 values a row, int8 weights, every row, fp32 pull-back.
SKETCH: dict[str, Any] = {"precision": "int4", "weights_precision": "int8", "kernel_dim": 64}
# name -> (algorithm, overrides: SPARK's projection family/dim/rank, Jacobian and candidate precisions, momentum,
# distill, residual share and tail rate, kernel sketch dimension and pull-back precision; every algorithm's weights
# precision)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "ntk-dfl": ("ntk-dfl", {}),
    "dfedavg": ("dfedavg", {}),
    "dfedavg-w8": ("dfedavg", {"weights_precision": "int8"}),
    "dfedavgm": ("dfedavgm", {}),
    "dpsgd": ("dpsgd", {}),
    "spark": ("spark", {}),
    "spark-gaussian": ("spark", {"family": "gaussian"}),
    "spark-sparse": ("spark", {"family": "sparse"}),
    "spark-kron": ("spark", {"family": "kron"}),
    "spark-kron4": ("spark", {"family": "kron", "rank": 4}),
    "spark-tensorsketch": ("spark", {"family": "tensorsketch"}),
    "spark-no-momentum": ("spark", {"momentum": False}),
    "spark-no-distill": ("spark", {"distill": False}),
    "spark-fp16": ("spark", {"precision": "fp16"}),
    "spark-int8": ("spark", {"precision": "int8"}),
    "spark-m256-int8": ("spark", {"dim": 256, "precision": "int8"}),
    "spark-m512-int8": ("spark", {"dim": 512, "precision": "int8"}),
    "spark-int4": ("spark", {"precision": "int4"}),
    "spark-int4-w8": ("spark", {"precision": "int4", "weights_precision": "int8"}),
    "spark-int4-w16": ("spark", {"precision": "int4", "weights_precision": "fp16"}),
    "spark-int4-w8-r90": ("spark", {"precision": "int4", "weights_precision": "int8", "residual_share": 0.9}),
    "spark-int4-w8-r90-t25": ("spark", LEAN),
    "spark-gaussian-lean": ("spark", {**LEAN, "family": "gaussian"}),
    "spark-sparse-lean": ("spark", {**LEAN, "family": "sparse"}),
    "spark-kron-lean": ("spark", {**LEAN, "family": "kron"}),
    "spark-kron4-lean": ("spark", {**LEAN, "family": "kron", "rank": 4}),
    "spark-lean-c8": ("spark", {**LEAN, "candidates_precision": "int8"}),
    "spark-lean-c4": ("spark", {**LEAN, "candidates_precision": "int4"}),
    # the kernel sketch (--kernel-dim): replies carry m' values a row, the update keeps m through the pull-back
    "spark-lean": ("spark", dict(PRESETS["lean"])),  # the lean preset of run and simulate
    # the lean preset with a wider P: its reply is the kernel sketch's m' values a row whatever m is, while the lifted
    # update P dz spreads d / m parameters over each of P's buckets (bench/results/cnn.md)
    "spark-lean-m2048": ("spark", {**PRESETS["lean"], "dim": 2048}),
    "spark-lean-m4096": ("spark", {**PRESETS["lean"], "dim": 4096}),
    "spark-lean-m4096-c8": ("spark", {**PRESETS["lean"], "dim": 4096, "candidates_precision": "int8"}),
    "spark-lean-m16384": ("spark", {**PRESETS["lean"], "dim": 16384}),
    "spark-sketch": ("spark", SKETCH),
    "spark-sketch-k16": ("spark", {**SKETCH, "kernel_dim": 16}),
    "spark-sketch-k32": ("spark", {**SKETCH, "kernel_dim": 32}),
    "spark-sketch-p16": ("spark", {**SKETCH, "pullback_precision": "fp16"}),
    "spark-sketch-p8": ("spark", {**SKETCH, "pullback_precision": "int8"}),
    "spark-sketch-w4": ("spark", {**SKETCH, "weights_precision": "int4"}),
    "spark-sketch-r90-t25": ("spark", {**SKETCH, "residual_share": 0.9, "tail_rate": 0.25}),
    "dfedavg-w4": ("dfedavg", {"weights_precision": "int4"}),
    # combinations of the sketch's levers: k32 with int8 pull-back and residual rows, then also int4 weights
    "spark-sketch-k32-p8-r90-t25": ("spark", {**SKETCH, "kernel_dim": 32, "pullback_precision": "int8",
                                             "residual_share": 0.9, "tail_rate": 0.25}),
    "spark-sketch-k32-p8-r90-t25-w4": ("spark", {**SKETCH, "kernel_dim": 32, "pullback_precision": "int8",
                                                "residual_share": 0.9, "tail_rate": 0.25, "weights_precision": "int4"}),
    "spark-sketch-k32-p8-r90-t25-w4-c16": ("spark", {**SKETCH, "kernel_dim": 32, "pullback_precision": "int8",
                                                    "residual_share": 0.9, "tail_rate": 0.25,
                                                    "weights_precision": "int4", "candidates_precision": "fp16"}),
    "spark-sketch-k16-p8-r90-t25-w4-c16": ("spark", {**SKETCH, "kernel_dim": 16, "pullback_precision": "int8",
                                                    "residual_share": 0.9, "tail_rate": 0.25,
                                                    "weights_precision": "int4", "candidates_precision": "fp16"}),
}


def variant_config(name: str, args: argparse.Namespace) -> SimulationConfig:
    """The simulation configuration of a named variant on the paper setting."""
    algorithm, overrides = VARIANTS[name]
    config = SimulationConfig.from_setting(
        "paper", algorithm, rounds=args.rounds, clients=args.clients, seed=args.seed, alpha=args.alpha,  # type: ignore[arg-type]
        partition_file=args.partition,
    )
    ntk = NTKDFLConfig(eta0=args.eta0, gamma=args.gamma, evolution=EvolutionConfig(taus=args.taus))
    spark = replace(config.spark, ntk=ntk)
    projection = ProjectionConfig(family=overrides.get("family", spark.projection.family),
                                  dim=overrides.get("dim", spark.projection.dim),
                                  rank=overrides.get("rank", spark.projection.rank), seed=args.seed)
    switches = {key: value for key, value in overrides.items()
                if key in ("momentum", "distill", "residual_share", "tail_rate", "kernel_dim")}
    spark = replace(spark, projection=projection, codec=CodecConfig(overrides.get("precision", "fp32")),
                    candidates_codec=CodecConfig(overrides.get("candidates_precision", "fp32")),
                    pullback_codec=CodecConfig(overrides.get("pullback_precision", "fp32")),
                    schedule_rounds=args.schedule_rounds, **switches)
    weights_codec = CodecConfig(overrides.get("weights_precision", "fp32"))
    link = link_model(args.link, args.latency, args.board, args.compute_scale)
    return replace(config, ntk=ntk, spark=spark, weights_codec=weights_codec, link=link, model=args.model)


def run_variant(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one variant until the target (or all rounds), continuing a saved run with --resume; returns its summary."""
    config = variant_config(name, args)
    train, test = load_fashion_mnist()
    progress = RoundProgress(config.rounds, sys.stderr, label=f"  {name}")
    model = load_model(args.model, (1, IMAGE_SIDE, IMAGE_SIDE), NUM_CLASSES)
    simulation = Simulation(config, train, test, spec=model, engine=args.engine_config,
                            hooks=EngineHooks(progress.requesters, progress.notice))
    run = RunDirectory(args.out / name, simulation, resume=args.resume, fork_from=args.fork_from)
    target = args.stop_at or config.target_accuracy
    if run.resumed_at:
        print(f"  {name}: continuing after round {run.resumed_at}", file=sys.stderr, flush=True)
    paused = args.pause_after is not None and run.resumed_at >= args.pause_after
    if not paused and (args.full or not any(record.agg_accuracy >= target for record in run.records)):
        progress.start(run.resumed_at)
        for record in run.run():
            progress.round_done(record)
            if (record.agg_accuracy >= target and not args.full) or record.round + 1 == args.pause_after:
                break
    return run.finish()


def table(summaries: dict[str, dict[str, Any]]) -> str:
    """Markdown table: rounds, bytes and seconds to target, bytes per round, with ratios to DFedAvg and NTK-DFL."""
    lines = ["| method | rounds to 85% | MB/client to 85% | rounds to 80% | MB/client to 80% | MB/client per round "
             "| s per round | best agg. acc. (round) |", "|---|---|---|---|---|---|---|---|"]
    for name, s in summaries.items():
        mb = "-" if s["bytes_to_target"] is None else f"{s['bytes_to_target'] / 1e6:,.1f}"
        mb80 = "-" if s["bytes_to_80"] is None else f"{s['bytes_to_80'] / 1e6:,.1f}"
        per_round = s["total_bytes_per_client"] / s["rounds_run"] / 1e6
        lines.append(f"| {name} | {s['rounds_to_target'] or 'not reached'} | {mb} | {s['rounds_to_80'] or '-'} | "
                     f"{mb80} | {per_round:,.1f} | {s['mean_seconds_per_round']:.1f} | "
                     f"{s['best_agg_accuracy']:.4f} ({s['rounds_run']} rounds run) |")
    for key, label in (("rounds_to_target", "85%"), ("rounds_to_80", "80%")):
        base = summaries.get("dfedavg", {}).get(key)
        for name, s in summaries.items():
            if base and s[key] and name != "dfedavg":
                lines.append(f"\nDFedAvg / {name} rounds to {label}: {base / s[key]:.2f}x")
    return "\n".join(lines)


def table_from_runs(directory: Path) -> str:
    """Rebuild the table from the summary.json files of earlier runs in `directory`."""
    summaries = {}
    for path in sorted(directory.glob("*/rounds.jsonl")):
        records = read_records(path)
        if records:
            summary_file = path.parent / "summary.json"
            config = json.loads(summary_file.read_text())["config"] if summary_file.exists() else {}
            summaries[path.parent.name] = summarize(config, records, TARGET_ACCURACY)
    return table(summaries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="ntk-dfl,dfedavg", help=f"comma-separated, from: {', '.join(VARIANTS)}")
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--clients", type=int, default=None, help="first M clients (default: the setting's 300)")
    parser.add_argument("--alpha", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eta0", type=float, default=NTKDFLConfig().eta0, help="NTK methods' initial learning rate")
    parser.add_argument("--gamma", type=float, default=NTKDFLConfig().gamma, help="learning-rate decay (0: constant)")
    parser.add_argument("--taus", type=lambda text: tuple(int(t) for t in text.split(",")),
                        default=EvolutionConfig().taus, help="candidate horizons, comma-separated")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="local worker processes, or the CPUs of the local Ray that --engine ray starts")
    parser.add_argument("--engine", choices=ENGINES, default="local",
                        help="where the requesters' work runs (ray: pip install 'edge-agent[ray]')")
    parser.add_argument("--address", help="with --engine ray: join this running cluster (auto or HOST:PORT)")
    parser.add_argument("--partition", type=Path, help=f"npz split (default: the published split, {DEFAULT_SPLIT})")
    parser.add_argument("--generated-split", action="store_true", help="use the seeded generator, not the file")
    parser.add_argument("--full", action="store_true", help="run all rounds even after reaching the target")
    parser.add_argument("--stop-at", type=float, help="stop at this aggregated accuracy instead of 85%%")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-paper"))
    parser.add_argument("--table-only", action="store_true", help="print the table of the runs already in --out")
    parser.add_argument("--resume", action="store_true", help="continue each variant's saved run in --out")
    parser.add_argument("--pause-after", type=int, help="stop once a run has this many rounds (continue with --resume)")
    parser.add_argument("--schedule-rounds", type=int, default=0,
                        help="SPARK: rounds its stages are spread over (0: --rounds); a saved run continued for more "
                        "rounds with --resume keeps its schedule with this")
    parser.add_argument("--link", help="model each round's seconds on links of this rate (e.g. 10mbit); work.jsonl "
                        "keeps each round's messages and compute, to model other links later (bench_frontier.py)")
    parser.add_argument("--latency", default="0", help="with --link: one-way latency, e.g. 20ms")
    parser.add_argument("--board", help="with --link: board profile whose compute_scale applies (e.g. rpi-4)")
    parser.add_argument("--compute-scale", type=float, help="with --link: board seconds per second measured here")
    parser.add_argument("--model", default="mlp", help="the model every client trains: mlp, cnn or file.py:factory "
                        "(`edge-agent simulate --model`)")
    parser.add_argument("--fork-from", type=Path, help="start each variant without a run of its own from this run's "
                        "saved rounds (only SPARK switches and schedule that have not acted there may differ)")
    args = parser.parse_args()
    try:
        args.engine_config = EngineConfig(args.engine, args.workers, args.address)
        require_engine(args.engine_config)
    except (ValueError, EngineError) as error:
        parser.error(str(error))
    if args.table_only:
        print(table_from_runs(args.out))
        return
    if args.generated_split:
        args.partition = None
    elif args.partition is None:
        if not DEFAULT_SPLIT.exists():  # never fall back to another split silently: its numbers would differ
            parser.error(f"the published split {DEFAULT_SPLIT} is not there; "
                         "pass --partition FILE or --generated-split")
        args.partition = DEFAULT_SPLIT
    generated = f"seeded Dirichlet generator (alpha {args.alpha or 'of the setting'}, seed {args.seed})"
    print(f"split: {args.partition or generated}", file=sys.stderr, flush=True)
    unknown = [name for name in args.variants.split(",") if name not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    summaries = {}
    for name in args.variants.split(","):
        start = time.perf_counter()
        try:
            summaries[name] = run_variant(name, args)
        except (ValueError, EngineError) as error:  # a run that cannot be continued, a bad link, an engine that failed
            sys.exit(f"bench_paper: {name}: {error}")
        print(f"{name}: {time.perf_counter() - start:.0f}s", file=sys.stderr)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "table.md").write_text(table(summaries) + "\n", encoding="utf-8")
        (args.out / "summaries.json").write_text(json.dumps(summaries, indent=2), encoding="utf-8")
    print(table(summaries))


if __name__ == "__main__":
    main()

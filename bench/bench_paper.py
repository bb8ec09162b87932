"""Paper-setting benchmark: NTK-DFL vs DFedAvg to 85% aggregated accuracy; prints a table, writes records.

Usage: python bench/bench_paper.py [--algorithms ntk-dfl,dfedavg] [--rounds 50] [--partition FILE] [--out DIR]
Each run stops once it reaches the target (unless --full); records go to OUT/ALGORITHM/rounds.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from edge_agent.learning.data import load_fashion_mnist
from edge_agent.learning.ntk import EvolutionConfig
from edge_agent.sim.config import SimulationConfig
from edge_agent.sim.engine import Simulation
from edge_agent.sim.records import RoundLog, RoundRecord, summarize, write_json_atomic

DEFAULT_SPLIT = Path(__file__).resolve().parents[2] / "shared" / "data" / "fmnist300-alpha0.1-split0.npz"


def run_one(algorithm: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one algorithm on the paper setting until the target (or all rounds) and return its summary."""
    config = SimulationConfig.from_setting(
        "paper", algorithm, rounds=args.rounds, clients=args.clients, seed=args.seed, alpha=args.alpha,  # type: ignore[arg-type]
        partition_file=args.partition,
    )
    config = replace(config, ntk=replace(config.ntk, evolution=EvolutionConfig(solver=args.solver)))  # type: ignore[arg-type]
    train, test = load_fashion_mnist()
    simulation = Simulation(config, train, test)
    out = args.out / algorithm
    log = RoundLog(out / "rounds.jsonl")
    records: list[RoundRecord] = []
    try:
        for record in simulation.run():
            records.append(record)
            log.append(record)
            print(f"  {algorithm} round {record.round + 1}: agg {record.agg_accuracy:.4f} "
                  f"mean {record.mean_client_accuracy:.4f} {record.seconds:.1f}s", file=sys.stderr, flush=True)
            if record.agg_accuracy >= config.target_accuracy and not args.full:
                break
    finally:
        log.close()
    summary = summarize(config.to_json(), records, config.target_accuracy)
    write_json_atomic(out / "summary.json", summary)
    return summary


def table(summaries: dict[str, dict[str, Any]]) -> str:
    """Markdown table of rounds, bytes and seconds to target, with the round ratio to DFedAvg."""
    lines = ["| method | rounds to 85% | MB per client to 85% | s per round | best agg. acc. |",
             "|---|---|---|---|---|"]
    for name, s in summaries.items():
        mb = "-" if s["bytes_to_target"] is None else f"{s['bytes_to_target'] / 1e6:,.0f}"
        lines.append(f"| {name} | {s['rounds_to_target'] or 'not reached'} | {mb} | "
                     f"{s['mean_seconds_per_round']:.1f} | {s['best_agg_accuracy']:.4f} |")
    ntk, base = summaries.get("ntk-dfl"), summaries.get("dfedavg")
    if ntk and base and ntk["rounds_to_target"] and base["rounds_to_target"]:
        lines.append(f"\nDFedAvg / NTK-DFL rounds to target: {base['rounds_to_target'] / ntk['rounds_to_target']:.2f}x "
                     "(published: 4.6x)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algorithms", default="ntk-dfl,dfedavg")
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--clients", type=int, default=None)
    parser.add_argument("--alpha", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--solver", choices=["rk45", "euler"], default="rk45")
    parser.add_argument("--partition", type=Path, default=DEFAULT_SPLIT if DEFAULT_SPLIT.exists() else None,
                        help="npz split (default: the published split beside the project, if present)")
    parser.add_argument("--full", action="store_true", help="run all rounds even after reaching the target")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-paper"))
    args = parser.parse_args()
    summaries = {}
    for algorithm in args.algorithms.split(","):
        start = time.perf_counter()
        summaries[algorithm] = run_one(algorithm, args)
        print(f"{algorithm}: {time.perf_counter() - start:.0f}s", file=sys.stderr)
    report = table(summaries)
    print(report)
    (args.out / "table.md").write_text(report + "\n", encoding="utf-8")
    (args.out / "summaries.json").write_text(json.dumps(summaries, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()

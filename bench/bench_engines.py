"""Engine overhead: seconds per SPARK round on the ray engine against the local engine, same workers, in one run.

Usage: python bench/bench_engines.py [--clients 60] [--rounds 3] [--workers 2] [--partition split.npz] [--out FILE]

Both engines run the same simulation (the paper setting's first M clients) in lockstep: round k on one engine, then
round k on the other, the order alternating, so load from elsewhere on the machine falls on both alike. After each
round the two runs' weights must be equal bit for bit. Prints a markdown table (and writes it to --out): seconds per
round on each engine and their ratio, each engine's start-up, and the peak resident memory of each worker process.
Without --partition the split is the seeded generator's; pass the published split file to measure on it.

A local Ray listens on every address of its host: run this in a loopback-only network namespace, for example
    unshare --net sh -c 'ip link set lo up && exec python bench/bench_engines.py ...'
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from edge_agent.learning.data import load_fashion_mnist
from edge_agent.sim.config import SimulationConfig
from edge_agent.sim.engine import Simulation
from edge_agent.sim.engines.base import ENGINES, Engine, EngineConfig, EngineKind
from edge_agent.sim.engines.select import open_engine

MIB = 1 << 20


def measure(args: argparse.Namespace) -> tuple[dict[EngineKind, list[float]], dict[EngineKind, float],
                                                 dict[EngineKind, dict[str, int]]]:
    """Per engine: each round's seconds, the seconds to open the engine, and each worker's peak RSS in bytes."""
    config = SimulationConfig.from_setting("paper", "spark", rounds=args.rounds, clients=args.clients,
                                           partition_file=args.partition)
    train, test = load_fashion_mnist()
    simulations = {kind: Simulation(config, train, test) for kind in ENGINES}
    engines: dict[EngineKind, Engine] = {}
    started: dict[EngineKind, float] = {}
    seconds: dict[EngineKind, list[float]] = {kind: [] for kind in ENGINES}
    cumulative = dict.fromkeys(ENGINES, 0.0)
    try:
        for kind in ENGINES:
            start = time.perf_counter()
            engines[kind] = open_engine(EngineConfig(kind, args.workers), simulations[kind].clients)
            started[kind] = time.perf_counter() - start
        for round_index in range(args.rounds):
            for kind in ENGINES if round_index % 2 == 0 else ENGINES[::-1]:
                record = simulations[kind].run_round(round_index, cumulative[kind], engines[kind])
                cumulative[kind] = record.cumulative_bytes_per_client
                seconds[kind].append(record.seconds)
                print(f"round {round_index + 1}/{args.rounds} {kind}: {record.seconds:.1f} s, aggregated accuracy "
                      f"{record.agg_accuracy:.4f}", file=sys.stderr, flush=True)
            local, ray = (simulations[kind] for kind in ENGINES)
            if local.weights.tobytes() != ray.weights.tobytes() or local.velocity.tobytes() != ray.velocity.tobytes():
                sys.exit(f"bench_engines: the engines' weights differ after round {round_index + 1}")
        peaks = {kind: dict(engines[kind].usage.peak_rss_by_worker) for kind in ENGINES}
    finally:
        for engine in engines.values():
            engine.close()
    return seconds, started, peaks


def table(seconds: dict[EngineKind, list[float]], started: dict[EngineKind, float],
          peaks: dict[EngineKind, dict[str, int]], workers: int) -> str:
    """Rounds, their mean (and the mean without the first round, which starts the workers), ratio, memory."""
    lines = ["| round | local s | ray s | ray / local |", "|---|---|---|---|"]
    for index, (local, ray) in enumerate(zip(seconds["local"], seconds["ray"], strict=True)):
        lines.append(f"| {index + 1} | {local:.1f} | {ray:.1f} | {ray / local:.3f} |")
    spans = [("mean", slice(None))] + ([("mean without round 1", slice(1, None))] if len(seconds["local"]) > 1 else [])
    for label, span in spans:
        local_mean, ray_mean = (float(np.mean(seconds[kind][span])) for kind in ENGINES)
        lines.append(f"| {label} | {local_mean:.1f} | {ray_mean:.1f} | **{ray_mean / local_mean:.3f}** |")
    lines += ["", f"| engine ({workers} workers) | start-up s | workers | peak RSS per worker, MiB |",
              "|---|---|---|---|"]
    for kind in ENGINES:
        rss = ", ".join(f"{value / MIB:.0f}" for value in sorted(peaks[kind].values()))
        lines.append(f"| {kind} | {started[kind]:.1f} | {len(peaks[kind])} | {rss} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=60, help="the paper setting's first M clients")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="local worker processes, and the local Ray's CPUs")
    parser.add_argument("--partition", type=Path, help="npz split (default: the seeded generator's)")
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args()
    seconds, started, peaks = measure(args)
    text = table(seconds, started, peaks, args.workers)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

"""Plot test accuracy against rounds and against megabytes sent per client, for simulator and agent runs.

Usage: python bench/plot_curves.py RUN [RUN ...] --out curves.png
A RUN is a directory holding VARIANT/rounds.jsonl files (bench_paper.py, `edge-agent simulate`), a simulation's own
directory, a directory of agent metrics files (agent-N.jsonl, as `edge-agent demo` writes), or one such file.
Simulator runs plot the aggregated model's accuracy; agent runs the agents' mean test accuracy and mean payload
MB sent per agent (docs/records.md). A RUN with no round records is an error, never an empty plot.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from edge_agent.round_records import find_curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=Path("curves.png"))
    parser.add_argument("--target", type=float, default=0.85)
    args = parser.parse_args()
    per_run = {run: find_curves(run) for run in args.runs}
    empty = [str(run) for run, found in per_run.items() if not found]
    if empty:
        sys.exit(f"plot_curves: no round records (simulator or agent) in {', '.join(empty)}; nothing to plot")
    figure, (by_round, by_bytes) = plt.subplots(1, 2, figsize=(12, 4.5))
    for curve in (curve for found in per_run.values() for curve in found):
        by_round.plot(curve.rounds, curve.accuracy, label=curve.label)
        by_bytes.plot(curve.megabytes, curve.accuracy, label=curve.label)
    for axis in (by_round, by_bytes):
        axis.axhline(args.target, color="grey", linestyle=":", linewidth=1)
        axis.set_ylabel("test accuracy (simulator: aggregated; agents: mean)")
        axis.grid(alpha=0.3)
    by_round.set_xlabel("round (0-based)")
    by_bytes.set_xlabel("MB sent per client (cumulative, log scale)")
    by_bytes.set_xscale("log")
    by_round.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

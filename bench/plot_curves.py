"""Plot aggregated test accuracy against rounds and against megabytes per client for benchmark runs.

Usage: python bench/plot_curves.py RUN_DIR [RUN_DIR ...] --out curves.png
Each RUN_DIR holds VARIANT/rounds.jsonl files (as written by bench_paper.py or `edge-agent simulate`); a RUN_DIR
with no records in them is an error, so a mistyped or unfinished run never becomes a silently empty plot.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def curves(directories: list[Path]) -> dict[str, list[dict[str, float]]]:
    """label -> per-round records, for every rounds.jsonl under the given directories."""
    found = {}
    for directory in directories:
        for path in sorted(directory.glob("*/rounds.jsonl")):
            records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            if records:
                found[f"{path.parent.name} ({directory.name})"] = records
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=Path("curves.png"))
    parser.add_argument("--target", type=float, default=0.85)
    args = parser.parse_args()
    per_directory = {directory: curves([directory]) for directory in args.runs}
    empty = [str(directory) for directory, found in per_directory.items() if not found]
    if empty:
        sys.exit(f"plot_curves: no records in any VARIANT/rounds.jsonl under {', '.join(empty)}; nothing to plot")
    plotted = {label: records for found in per_directory.values() for label, records in found.items()}
    figure, (by_round, by_bytes) = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, records in plotted.items():
        accuracy = [r["agg_accuracy"] for r in records]
        by_round.plot([r["round"] + 1 for r in records], accuracy, label=label)
        by_bytes.plot([r["cumulative_bytes_per_client"] / 1e6 for r in records], accuracy, label=label)
    for axis in (by_round, by_bytes):
        axis.axhline(args.target, color="grey", linestyle=":", linewidth=1)
        axis.set_ylabel("aggregated test accuracy")
        axis.grid(alpha=0.3)
    by_round.set_xlabel("round")
    by_bytes.set_xlabel("MB sent per client (cumulative, log scale)")
    by_bytes.set_xscale("log")
    by_round.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

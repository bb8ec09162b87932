"""The bytes/rounds frontier of simulator runs: MB per client and rounds to a target accuracy, one point per variant,
and, where a run kept its work (`--link`), the modelled wall-clock seconds to the target on each link asked for.

Usage: python bench/bench_frontier.py RUN_DIR [RUN_DIR ...] [--target 0.85] [--links 1mbit,10mbit]
           [--latency 20ms] [--board rpi-4 | --compute-scale X] [--plot FILE.png] [--table FILE.md]
           [--earlier NAME=ROUNDS:MB ...]
Each RUN_DIR holds VARIANT/rounds.jsonl (bench_paper.py's --out, or simulate's --out itself). A variant that never
reached the target is listed with its best accuracy and left off the plot. Modelled seconds come from
VARIANT/work.jsonl (each round's messages and measured compute), modelled on each link with the board's scale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edge_agent.cli.simulate import link_model
from edge_agent.sim.link_model import ModelledLink, model_round
from edge_agent.sim.records import RoundRecord, rounds_to_target
from edge_agent.sim.round_work import read_work
from edge_agent.sim.run_dir import ROUNDS_FILE, WORK_FILE, read_records


def runs_in(directories: list[Path]) -> dict[str, Path]:
    """variant name -> its directory, for every directory holding a rounds.jsonl (the directory itself or one below)."""
    found: dict[str, Path] = {}
    for directory in directories:
        for rounds in sorted([directory / ROUNDS_FILE, *directory.glob(f"*/{ROUNDS_FILE}")]):
            if rounds.exists():
                found[rounds.parent.name] = rounds.parent
    return found


def point(name: str, run: Path, target: float, links: dict[str, ModelledLink]) -> dict[str, Any]:
    """One variant's row: rounds and MB per client to the target, best accuracy, modelled seconds per link."""
    records: list[RoundRecord] = read_records(run / ROUNDS_FILE)
    hit = rounds_to_target(records, target)
    row: dict[str, Any] = {"variant": name, "rounds_run": len(records),
                           "best": max((r.agg_accuracy for r in records), default=0.0),
                           "rounds": None if hit is None else hit.round + 1,
                           "mb": None if hit is None else hit.cumulative_bytes_per_client / 1e6,
                           "mb_per_round": records[-1].cumulative_bytes_per_client / len(records) / 1e6 if records
                           else 0.0, "seconds": {}}
    work = read_work(run / WORK_FILE)
    if hit is not None and all(k in work for k in range(hit.round + 1)):
        row["seconds"] = {label: sum(model_round(work[k], link).seconds for k in range(hit.round + 1))
                          for label, link in links.items()}
    return row


def seconds(value: float) -> str:
    """Whole seconds with thousands separators; three significant digits below 100 s (a smoke run's sub-second)."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def table(rows: list[dict[str, Any]], target: float, links: list[str]) -> str:
    """Markdown: rounds and MB per client to the target, MB per round, best accuracy, modelled seconds per link."""
    head = f"| variant | rounds to {target:.0%} | MB/client to {target:.0%} | MB/client per round | best (rounds run) |"
    head += "".join(f" modelled s to {target:.0%} at {label} |" for label in links)
    lines = [head, "|---" * (5 + len(links)) + "|"]
    for row in sorted(rows, key=lambda r: (r["mb"] is None, r["mb"] or 0.0)):
        reached = row["rounds"] is not None
        earlier = row.get("earlier", False)
        cells = [row["variant"] + (" (earlier run)" if earlier else ""), str(row["rounds"]) if reached else
                 "not reached", f"{row['mb']:,.1f}" if reached else "-",
                 "-" if earlier else f"{row['mb_per_round']:,.2f}",
                 "-" if earlier else f"{row['best']:.4f} ({row['rounds_run']})"]
        cells += [seconds(row["seconds"][label]) if label in row["seconds"] else "-" for label in links]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def earlier_point(text: str) -> dict[str, Any]:
    """NAME=ROUNDS:MB, a variant measured earlier whose run folder is gone (its figures from a results table)."""
    name, _, figures = text.partition("=")
    rounds, _, mb = figures.partition(":")
    try:
        return {"variant": name, "rounds": int(rounds), "mb": float(mb), "earlier": True, "seconds": {},
                "best": None, "rounds_run": None, "mb_per_round": None}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=ROUNDS:MB, got {text!r}") from None


def plot(rows: list[dict[str, Any]], target: float, path: Path) -> None:
    """Bytes to the target against rounds to it, one labelled point per variant that reached it."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter
    reached = [row for row in rows if row["rounds"] is not None]
    figure, axes = plt.subplots(figsize=(8, 5.5))
    for row in reached:
        baseline = row["variant"].startswith("dfedavg")
        color = "tab:gray" if baseline else "tab:blue"
        axes.scatter(row["rounds"], row["mb"], marker="s" if baseline else "o", zorder=3,
                     facecolors="none" if row.get("earlier") else color, edgecolors=color)
        axes.annotate(row["variant"], (row["rounds"], row["mb"]), textcoords="offset points", xytext=(5, 4),
                      fontsize=8)
    axes.set_xlabel(f"rounds to {target:.0%} aggregated test accuracy")
    axes.set_ylabel(f"MB sent per client to {target:.0%}")
    axes.set_yscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    axes.yaxis.set_major_formatter(plain)
    axes.yaxis.set_minor_formatter(plain)
    axes.grid(True, which="both", alpha=0.3)
    hollow = ", hollow: earlier runs" if any(row.get("earlier") for row in reached) else ""
    axes.set_title(f"bytes against rounds to the target (squares: DFedAvg{hollow})")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--target", type=float, default=0.85)
    parser.add_argument("--links", default="1mbit,10mbit")
    parser.add_argument("--latency", default="20ms")
    parser.add_argument("--board", help="board profile whose compute_scale applies (e.g. rpi-4)")
    parser.add_argument("--compute-scale", type=float, help="board seconds per second measured in the runs")
    parser.add_argument("--plot", type=Path, help="write the frontier as a PNG here")
    parser.add_argument("--table", type=Path, help="write the markdown table here too")
    parser.add_argument("--earlier", type=earlier_point, action="append", default=[], metavar="NAME=ROUNDS:MB",
                        help="a point measured earlier whose run folder is gone (plotted hollow, tabled as such)")
    args = parser.parse_args()
    try:
        links = {rate: link_model(rate, args.latency, args.board, args.compute_scale)
                 for rate in args.links.split(",")}
    except ValueError as error:
        sys.exit(f"bench_frontier: {error}")
    runs = runs_in(args.runs)
    if not runs:
        sys.exit(f"bench_frontier: no {ROUNDS_FILE} in {', '.join(map(str, args.runs))} or the folders in them")
    rows = [point(name, run, args.target, {k: v for k, v in links.items() if v is not None})
            for name, run in runs.items()]
    rows += args.earlier
    text = table(rows, args.target, list(links))
    print(text)
    if args.table:
        args.table.write_text(text + "\n")
    if args.plot:
        plot(rows, args.target, args.plot)


if __name__ == "__main__":
    main()

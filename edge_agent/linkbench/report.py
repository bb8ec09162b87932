"""The link bench's output: summary.json, report.md and the PNG plots, from the fleets' own records.

matplotlib is not a dependency of the wheel: it is imported only to draw. Without it the report and summary are
written all the same, and the report says which extra draws the plots (`plots_missing` tells the command first).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge_agent.linkbench.runner import FleetResult
from edge_agent.linkbench.summary import PHASES, fleet_summary
from edge_agent.linkbench.verdict import duration, link_label, stop_sentence, verdict

PLOTS = {
    "accuracy_vs_rounds.png": "test accuracy against rounds",
    "accuracy_vs_megabytes.png": "test accuracy against MB sent per agent",
    "accuracy_vs_seconds.png": "test accuracy against wall-clock seconds",
    "seconds_per_round.png": "seconds per round by phase",
}
PLOTS_EXTRA = "pip install 'edge-agent[bench]' (matplotlib)"


def plots_missing() -> str | None:
    """Why no plots can be drawn here (matplotlib is not installed, and the extra that installs it), or None."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return f"no plots: matplotlib is not installed ({PLOTS_EXTRA}); report.md and summary.json only"
    return None


def summary(results: Sequence[FleetResult], levels: Sequence[float], command: dict[str, Any]) -> dict[str, Any]:
    """summary.json: the command's settings and, per fleet, what ran it, what stopped it, and its numbers."""
    fleets = []
    for result in results:
        plan = result.plan
        fleets.append({
            "fleet": plan.name, "algorithm": plan.method, "rate": plan.link.rate, "latency": plan.link.latency,
            "agents": plan.agents, "rounds_planned": plan.rounds, "budget_s": plan.budget_s,
            "stopped_by": result.stopped_by, "failed_agents": list(result.failed_agents),
            "failed_exits": list(result.failed_exits), "failure": result.failure,
            "elapsed_s": result.elapsed_s, "records": str(result.out),
            **fleet_summary(result.records(), levels),
        })
    return {"schema": 1, "command": command, "levels": list(levels), "fleets": fleets}


def write_report(out: Path, results: Sequence[FleetResult], levels: Sequence[float],
                 command: dict[str, Any]) -> dict[str, Any]:
    """Write OUT/summary.json, the plots (where matplotlib is) and OUT/report.md; returns the summary."""
    data = summary(results, levels, command)
    (out / "summary.json").write_text(json.dumps(data, indent=2) + "\n")
    missing = plots_missing()
    if missing is None:
        draw_plots(out, data)
    (out / "report.md").write_text(markdown(data, plots=missing is None))
    return data


def fleet_line(fleet: dict[str, Any]) -> str:
    """The console's closing line for a fleet: the figures of its row in report.md, and why it stopped."""
    accuracy = "-" if fleet["final_accuracy"] is None else f"{fleet['final_accuracy']:.4f}"
    return (f"{fleet['algorithm']} {link_label(fleet)}: {fleet['rounds_done']} rounds done, accuracy {accuracy}, "
            f"{fleet['megabytes_per_agent']:.2f} MB per agent, {fleet['seconds']:.1f} s; {stop_sentence(fleet)}")


def markdown(data: dict[str, Any], plots: bool = True) -> str:
    """report.md: the command, one table row per fleet, the cost to each accuracy level, and the plots."""
    command = data["command"]
    lines = [
        "# Link bench", "",
        f"`{command['argv']}`", "",
        *verdict(data),
        "## Fleets", "",
        f"{command['agents']} agents per fleet on the `{command['setting']}` setting, one fleet at a time on this "
        f"host; links shaped to the rate by {command['shaping']}, latency one-way. "
        "Accuracy: the agents' mean test accuracy after a round. MB: payload megabytes (1e6 bytes) sent per agent, "
        "cumulative. Seconds: wall clock from the fleet's first round (start-up and discovery excluded). "
        "Rounds are 0-based, as in the agents' records. "
        f"Budget: {duration(command['budget_s'])} per fleet, from launch. A round cut short by the budget is not "
        "recorded, nor are its bytes.", "",
        "| algorithm | link | rounds done | accuracy | MB/agent | seconds | s/round | stopped |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fleet in data["fleets"]:
        accuracy = "-" if fleet["final_accuracy"] is None else f"{fleet['final_accuracy']:.4f}"
        per_round = fleet["seconds"] / fleet["rounds_done"] if fleet["rounds_done"] else None
        lines.append(f"| {fleet['algorithm']} | {link_label(fleet)} | {fleet['rounds_done']} | {accuracy} | "
                     f"{fleet['megabytes_per_agent']:.2f} | {fleet['seconds']:.1f} | "
                     f"{'-' if per_round is None else f'{per_round:.1f}'} | {stop_sentence(fleet)} |")
    lines += ["", "## Cost to each accuracy level (round reached / MB per agent / seconds; - : not reached)", "",
              "| algorithm | link | " + " | ".join(f"{level:g}" for level in data["levels"]) + " |",
              "|---|---|" + "---|" * len(data["levels"])]
    for fleet in data["fleets"]:
        cells = []
        for level in data["levels"]:
            reached = fleet["to_level"][f"{level:g}"]
            cells.append("-" if reached is None else
                         f"round {reached['round']} / {reached['megabytes']:.2f} / {reached['seconds']:.1f}")
        lines.append(f"| {fleet['algorithm']} | {link_label(fleet)} | " + " | ".join(cells) + " |")
    lines += ["", "## Seconds per round by phase (mean over agents and rounds)", "",
              "train: DFedAvg's local SGD; average: the weights exchange and averaging; transfer: waiting on "
              "neighbours' Jacobian replies and scores; jacobian+score: own work in those phases; evolve: the "
              "function-space evolution; other: what the round's total leaves.", "",
              "| algorithm | link | " + " | ".join(PHASES) + " |", "|---|---|" + "---|" * len(PHASES)]
    for fleet in data["fleets"]:
        phases = fleet["seconds_per_round"]
        cells = [f"{phases[p]:.2f}" if phases else "-" for p in PHASES]
        lines.append(f"| {fleet['algorithm']} | {link_label(fleet)} | " + " | ".join(cells) + " |")
    lines += ["", *([f"![{title}]({name})" for name, title in PLOTS.items()] if plots else
                    [f"No plots: matplotlib was not installed ({PLOTS_EXTRA})."]), ""]
    return "\n".join(lines)


def draw_plots(out: Path, data: dict[str, Any]) -> None:
    """The four PNGs of PLOTS in OUT, drawn from summary.json's curves and phases (the report's own numbers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fleets = data["fleets"]
    labels = [f"{fleet['algorithm']} {link_label(fleet)}" for fleet in fleets]
    for name, key, xlabel in (("accuracy_vs_rounds.png", "round", "round (0-based, as in the records)"),
                              ("accuracy_vs_megabytes.png", "megabytes", "MB sent per agent"),
                              ("accuracy_vs_seconds.png", "seconds", "wall-clock seconds")):
        figure, axes = plt.subplots(figsize=(7, 4.5))
        for label, fleet in zip(labels, fleets, strict=True):
            axes.plot(fleet["curve"][key], fleet["curve"]["accuracy"], marker="o", markersize=3, label=label)
        axes.set(xlabel=xlabel, ylabel="mean test accuracy of the agents", title=PLOTS[name])
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(out / name, dpi=120)
        plt.close(figure)
    figure, axes = plt.subplots(figsize=(max(6.0, 1.1 * len(fleets) + 2), 4.5))
    bottoms = [0.0] * len(fleets)
    for phase in PHASES:
        heights = [fleet["seconds_per_round"].get(phase, 0.0) for fleet in fleets]
        axes.bar(labels, heights, bottom=bottoms, label=phase)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    axes.set(ylabel="seconds per round (mean over agents)", title=PLOTS["seconds_per_round.png"])
    axes.tick_params(axis="x", labelrotation=30, labelsize=8)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "seconds_per_round.png", dpi=120)
    plt.close(figure)

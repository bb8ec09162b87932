"""A service's accuracy over time: real agents trained for three times their setting's rounds, before and after.

Two fleets of `edge-agent run` processes on loopback, one after the other, each for R rounds (default 3x the
setting's rounds, over which SPARK's stages are spread as `run --rounds 0` spreads them):
- `before`: `--rounds R --schedule-rounds S`: past the schedule SPARK stays in its last stage with momentum on, which
  is what a service (`--rounds 0`) did until momentum stopped with the schedule;
- `after`: `--rounds 0`, a service as it runs now, stopped (SIGTERM) once every agent has recorded R rounds.
Prints the agents' mean test accuracy per round for both, each curve's best round and its final accuracy, and writes
OUT/service.json and OUT/service.png (needs matplotlib).

    python bench/bench_service.py --setting smoke --agents 3 --out runs/bench-service
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from pathlib import Path
from typing import Any

from edge_agent.agent.launcher import LocalRun, launch_local_agents
from edge_agent.learning.settings import SETTINGS
from edge_agent.round_records import fleet_curve


def fleet(name: str, service: bool, args: argparse.Namespace) -> dict[str, Any]:
    """Run one fleet for args.rounds rounds; its mean accuracy per round, best round and final accuracy."""
    folder = args.out / name
    rounds = ["--rounds", "0"] if service else ["--rounds", str(args.rounds), "--schedule-rounds", str(args.schedule)]
    run = launch_local_agents(args.agents, folder, [
        "--setting", args.setting, *rounds, "--backend", args.backend, "--solver", args.solver, "--insecure",
        "--run", f"svc-{name}-{uuid.uuid4().hex[:6]}", "--wait-peers", "60", "--stall-window", str(args.stall_window),
        "--quiet"])
    try:
        wait_for_rounds(run, args.rounds, folder)
    finally:
        run.stop()
    records = [[r for r in agent if r["round"] < args.rounds] for agent in run.records()]  # a service runs on
    if any(r.get("missing") for agent in records for r in agent):  # a smaller fleet would be measured
        raise SystemExit(f"{name}: an agent trained without some neighbours; see {folder}")
    curve = fleet_curve(name, records)
    if curve is None or curve.rounds != list(range(args.rounds)):
        raise SystemExit(f"{name}: the agents did not record rounds 0..{args.rounds - 1}; see {folder}")
    best = max(range(args.rounds), key=lambda k: (curve.accuracy[k], -k))
    return {"command": "edge-agent run " + " ".join(rounds), "accuracy": curve.accuracy, "best_round": best,
            "best_accuracy": curve.accuracy[best], "final_accuracy": curve.accuracy[-1],
            "agents_best_round": [agent[args.rounds - 1].get("best_round") for agent in records]}


def wait_for_rounds(run: LocalRun, rounds: int, folder: Path) -> None:
    while not all(len(agent) >= rounds for agent in run.records()):
        if run.failed():
            raise SystemExit(f"agents {run.failed()} failed ({run.first_error()}); see {folder}")
        if not run.running():
            return
        time.sleep(0.5)


def plot(results: dict[str, dict[str, Any]], args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, label in (("before", "momentum on past the schedule (before)"),
                        ("after", "momentum stops with the schedule (after)")):
        axes.plot(range(args.rounds), results[name]["accuracy"], marker="o", markersize=3, label=label)
    axes.axvline(args.schedule - 0.5, color="grey", linestyle=":", label="end of SPARK's schedule")
    axes.set(xlabel="round (0-based, as in the records)", ylabel="mean test accuracy of the agents",
             title=f"a service: {args.agents} agents, {args.setting} setting, {args.rounds} rounds")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setting", default="smoke", choices=list(SETTINGS))
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--rounds", type=int, help="rounds per fleet (default: 3x the setting's)")
    parser.add_argument("--backend", default="numpy", help="the agents' kernel backend")
    parser.add_argument("--solver", default="rk45", choices=["rk45", "euler"])
    parser.add_argument("--stall-window", type=float, default=60.0,
                        help="the agents' --stall-window: long enough that a loaded machine leaves nobody out")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-service"))
    args = parser.parse_args()
    args.schedule = SETTINGS[args.setting].rounds
    args.rounds = args.rounds or 3 * args.schedule
    results = {"before": fleet("before", False, args), "after": fleet("after", True, args)}
    print(f"| round | before | after |  ({args.agents} agents, {args.setting} setting, schedule {args.schedule} "
          "rounds; mean test accuracy of the agents)")
    print("|---|---|---|")
    for k in range(args.rounds):
        print(f"| {k} | {results['before']['accuracy'][k]:.4f} | {results['after']['accuracy'][k]:.4f} |")
    for name, result in results.items():
        print(f"{name}: best {result['best_accuracy']:.4f} at round {result['best_round']}, final "
              f"{result['final_accuracy']:.4f} ({result['best_accuracy'] - result['final_accuracy']:.4f} below it); "
              f"the agents' own best rounds: {result['agents_best_round']}")
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {"setting": args.setting, "agents": args.agents, "rounds": args.rounds, "schedule": args.schedule,
                "backend": args.backend, "solver": args.solver}
    (args.out / "service.json").write_text(json.dumps({**settings, **results}, indent=2) + "\n")
    try:
        plot(results, args, args.out / "service.png")
    except ImportError:
        print("no plot: pip install 'edge-agent[bench]' (matplotlib)")


if __name__ == "__main__":
    main()

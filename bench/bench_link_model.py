"""Does the simulator's link model tell a real fleet's round time? Modelled over measured seconds, round by round.

Usage: python bench/bench_link_model.py [--agents 8] [--setting edge] [--rates 1mbit,10mbit] [--latency 20ms]
           [--rounds 4] [--variants spark,spark-lean,dfedavg] [--compute-scale 4] [--agent-args '--backend numpy']
           --out DIR
For each variant and rate it runs a fleet of real agents (`edge-agent bench link`: mutual TLS, each link between two
agents shaped by the agents' throttle) and the simulator on the same setting, clients, seed and wire (`edge-agent
simulate --link RATE --latency L`), then tabulates each round's measured seconds (the fleet's wall clock from one
round's end to the next's, as `bench link` reports it), modelled seconds and their ratio. The model's target is
0.8-1.25. Round 0 is shown but left out of the means: the agents' first round also opens their connections.
The modelled seconds come from the simulation's work.jsonl, so `--reuse` can model runs already made again.
--compute-scale: board seconds per second the simulator measured on one core. Here the boards are the fleet's
agent processes, which share this machine's cores: 8 agents on 2 cores get about a quarter of a core each when
they all compute, hence 4. --agent-args '--backend numpy' gives the agents the simulator's own kernels.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from edge_agent.sim.link_model import ModelledLink, model_round
from edge_agent.sim.round_work import read_work
from edge_agent.sim.run_dir import WORK_FILE
from edge_agent.transport.rates import parse_bitrate, parse_duration

# variant -> (algorithm, flags for both the agents and the simulator)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "spark": ("spark", []),
    "spark-lean": ("spark", ["--preset", "lean"]),
    "dfedavg": ("dfedavg", []),
    "dfedavg-w8": ("dfedavg", ["--weights-precision", "int8"]),
}


def edge_agent(*args: str) -> None:
    """Run `edge-agent ARGS` with this Python; exit with its output when it fails."""
    done = subprocess.run([sys.executable, "-m", "edge_agent", *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"bench_link_model: edge-agent {' '.join(args[:2])} failed:\n{done.stderr[-2000:]}")


def measured_seconds(bench_dir: Path) -> list[float]:
    """Each round's wall-clock seconds in the fleet `bench link` ran into `bench_dir` (its only fleet)."""
    fleet = json.loads((bench_dir / "summary.json").read_text())["fleets"][0]
    if fleet["failed_agents"]:
        sys.exit(f"bench_link_model: agents of {fleet['fleet']} failed: {fleet['failed_agents']}")
    ends = fleet["curve"]["seconds"]
    return [end - start for start, end in zip([0.0, *ends], ends, strict=False)]


def modelled_seconds(sim_dir: Path, link: ModelledLink) -> list[float]:
    """Each round's seconds in the simulation written to `sim_dir`, modelled on `link` from its work.jsonl."""
    work = read_work(sim_dir / WORK_FILE)
    return [model_round(work[k], link).seconds for k in sorted(work)]


def compare(variant: str, rate: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run the fleet and the simulation of one variant at one rate; their seconds by round."""
    algorithm, flags = VARIANTS[variant]
    common = ["--setting", args.setting, "--rounds", str(args.rounds)]
    bench_dir, sim_dir = args.out / f"agents-{variant}-{rate}", args.out / f"sim-{variant}-{rate}"
    if not (args.reuse and (bench_dir / "summary.json").exists()):
        print(f"{variant} at {rate}: fleet of {args.agents} agents", file=sys.stderr, flush=True)
        edge_agent("bench", "link", *common, "--agents", str(args.agents), "--algorithms", algorithm, "--rate", rate,
                   "--latency", args.latency, "--agent-args", shlex.join([*flags, *shlex.split(args.agent_args)]),
                   "--out", str(bench_dir))
    if not (args.reuse and (sim_dir / WORK_FILE).exists()):
        print(f"{variant} at {rate}: simulation", file=sys.stderr, flush=True)
        edge_agent("simulate", *common, "--clients", str(args.agents), "--algorithm", algorithm, *flags,
                   "--link", rate, "--latency", args.latency, "--compute-scale", str(args.compute_scale),
                   "--workers", str(args.workers), "--out", str(sim_dir))
    link = ModelledLink(parse_bitrate(rate), parse_duration(args.latency), args.compute_scale)
    measured, modelled = measured_seconds(bench_dir), modelled_seconds(sim_dir, link)
    rounds = min(len(measured), len(modelled))
    return {"variant": variant, "rate": rate, "measured": measured[:rounds], "modelled": modelled[:rounds]}


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: per fleet, mean measured and modelled seconds per round after round 0, their ratio, its range."""
    lines = ["| variant | rate | rounds | measured s/round | modelled s/round | modelled / measured | per round | "
             "round 0 measured / modelled |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        measured, modelled = row["measured"][1:], row["modelled"][1:]
        ratios = [m / s for m, s in zip(modelled, measured, strict=True)]
        mean_measured, mean_modelled = sum(measured) / len(measured), sum(modelled) / len(modelled)
        lines.append(f"| {row['variant']} | {row['rate']} | {len(row['measured'])} | {mean_measured:.2f} | "
                     f"{mean_modelled:.2f} | {mean_modelled / mean_measured:.2f} | {min(ratios):.2f}-{max(ratios):.2f}"
                     f" | {row['measured'][0]:.2f} / {row['modelled'][0]:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--setting", default="edge")
    parser.add_argument("--rates", default="1mbit,10mbit")
    parser.add_argument("--latency", default="20ms")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--variants", default="spark,spark-lean,dfedavg")
    parser.add_argument("--compute-scale", type=float, default=4.0)
    parser.add_argument("--agent-args", default="--backend numpy")
    parser.add_argument("--workers", type=int, default=2, help="simulator worker processes")
    parser.add_argument("--reuse", action="store_true", help="keep the fleets and simulations already in --out and "
                        "model their saved work again (after a change to the model)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds must be at least 2 (round 0 is left out of the means)")
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    rows = [compare(variant, rate, args) for variant in args.variants.split(",") for rate in args.rates.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rows.json").write_text(json.dumps(rows, indent=2))
    text = table(rows)
    (args.out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()

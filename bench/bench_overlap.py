"""Overlap of compute and transfer (issue 24 item 4): a SPARK fleet's round wall time against max(compute, bytes/rate).

Runs the same fleet of real agents twice on shaped links, with `--no-overlap` (a Jacobian reply computed whole,
then sent: the behaviour before) and without it (each `--jacobian-chunk` block of rows sent as soon as it is
computed, the next block computed while it is on the wire). The weights are the same bits either way.

Per agent and round, from its record (round 0 left out as warm-up):
- compute: `served_seconds.jacobian` (its Jacobian replies, its own request's included) + `served_seconds.score`
  (scoring candidates, its own included) + `seconds.evolve` (its evolution and candidates): the CPU work of the
  round in this agent, none of it waiting on a link;
- bytes/rate: the busiest of its links, max over peers and directions of its wire bytes that round, over the rate
  (links are per peer and per direction, so they carry their bytes in parallel);
- wall: `seconds.total`; ratio = wall / max(compute, bytes/rate). The issue's target: ratio <= 1.15.

    python bench/bench_overlap.py --setting edge --agents 4 --rounds 4 --rate 10mbit --latency 20ms --chunk 50
"""

from __future__ import annotations

import argparse
import statistics
import uuid
from pathlib import Path
from typing import Any

from edge_agent.agent.launcher import launch_local_agents
from edge_agent.transport.rates import parse_bitrate

MODES = {"off": ["--no-overlap"], "on": []}


def fleet(mode: str, args: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    """Run one fleet to the end; every agent's round records after round 0."""
    folder = out / mode
    run = launch_local_agents(args.agents, folder, [
        "--setting", args.setting, "--algorithm", "spark", "--rounds", str(args.rounds), "--backend", "numpy",
        "--jacobian-chunk", str(args.chunk), "--uplink", args.rate, "--downlink", args.rate,
        "--latency", args.latency, "--run", f"overlap-{mode}-{uuid.uuid4().hex[:6]}", "--wait-peers", "60",
        "--insecure", "--quiet", *MODES[mode]])
    for process in run.processes:
        process.wait()
    if run.failed():
        raise SystemExit(f"{mode}: an agent failed; see {folder}/agent-*.log")
    try:
        return [r for rounds in run.records_with_every_neighbour() for r in rounds if r["round"] > 0]
    except ValueError as error:
        raise SystemExit(f"{mode}: {error}") from None


def round_times(record: dict[str, Any], rate_bits: float) -> dict[str, float]:
    """compute, bytes/rate, wall, the ratio and the hidden transfer of one agent's round (seconds)."""
    served, seconds = record["served_seconds"], record["seconds"]
    compute = served["jacobian"] + served["score"] + seconds["evolve"]
    busiest = max(max(link["wire_sent"], link["wire_received"]) for link in record["links"].values())
    link = busiest * 8 / rate_bits
    return {"compute": compute, "link": link, "wall": seconds["total"],
            "ratio": seconds["total"] / max(compute, link), "hidden": record["overlap"]["jacobian"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setting", default="edge")
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=4, help="rounds per fleet (round 0 is left out as warm-up)")
    parser.add_argument("--rate", default="10mbit", help="every agent's uplink and downlink")
    parser.add_argument("--latency", default="20ms")
    parser.add_argument("--chunk", type=int, default=50, help="rows per Jacobian block (--jacobian-chunk)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-overlap"))
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds must be >= 2 (round 0 is warm-up)")
    rate_bits = parse_bitrate(args.rate)
    if not rate_bits > 0:
        parser.error("--rate must be a finite rate, e.g. 10mbit")
    results = {mode: [round_times(r, rate_bits) for r in fleet(mode, args, args.out)] for mode in MODES}
    print(f"| overlap | agent-rounds | compute (s) | bytes/rate (s) | wall (s) | hidden (s) | ratio mean | ratio max |"
          f"  ({args.setting}, {args.agents} agents, {args.rounds} rounds, {args.rate}, {args.latency}, "
          f"chunk {args.chunk})")
    print("|---|---|---|---|---|---|---|---|")
    for mode, rows in results.items():
        mean = {key: statistics.mean(row[key] for row in rows) for key in rows[0]}
        print(f"| {mode} | {len(rows)} | {mean['compute']:.2f} | {mean['link']:.2f} | {mean['wall']:.2f} | "
              f"{mean['hidden']:.2f} | {mean['ratio']:.3f} | {max(row['ratio'] for row in rows):.3f} |")
    before, after = (statistics.mean(row["ratio"] for row in results[m]) for m in MODES)
    print(f"wall / max(compute, bytes/rate): {before:.3f} before (off), {after:.3f} after (on)")


if __name__ == "__main__":
    main()

"""Poisoning: fleets of 4 real agents on loopback (mutual TLS), one of them a member that poisons what it sends
(tests/agent/poisoner.py), per algorithm, attack and `--robust` rule; and what the rule costs a clean fleet.

Per algorithm it runs: 4 honest agents with `--robust off` and with the rule (the rule's cost: final accuracy, median
round seconds, and the seconds the rule itself took as a share of the round, from the same run's records); the 3
honest agents with client-3 absent (the best any rule can do against a poisoner, whose data is lost either way); and
for each attack and rule, the 3 honest agents with the poisoner as client-3. Accuracy is the honest agents' mean
test accuracy after the last round each evaluated (an agent that skipped its last round, to rejoin a fleet that moved
on, is taken at the round before).

    python bench/bench_robust.py --algorithms dfedavg,spark --rounds 8 --out runs/robust
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.deploy.certs import throwaway_cluster
from edge_agent.learning.robust import BARRED_WHY
from edge_agent.learning.topology import client_ids
from edge_agent.round_records import agent_rounds

POISONER = Path(__file__).resolve().parent.parent / "tests" / "agent" / "poisoner.py"
ATTACKS = ("noise", "scale", "constant", "flip")


@dataclass(frozen=True)
class Result:
    """One fleet's outcome: the honest agents' final accuracy, median round seconds and the rule's share of them."""

    name: str
    rule: str
    accuracy: float
    round_s: float
    rule_share: float
    refused: int  # honest records that refused client-3
    barred: int  # honest records that left client-3 out, barred for replies its scores contradicted earlier
    codes: tuple[int, ...]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algorithms", default="dfedavg,spark")
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--rules", default="off,screen", help="rules the poisoned fleets run (the first: clean's)")
    parser.add_argument("--setting", default="smoke")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--agent-flags", default="", help="more `edge-agent run` flags for every agent")
    parser.add_argument("--out", type=Path, default=Path("runs/robust"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rules = args.rules.split(",")
    certs = throwaway_cluster(args.out / "certs", list(client_ids(4)))
    lines = [f"{args.setting} setting, 4 agents (client-3 the poisoner or absent), {args.rounds} rounds, mutual TLS"]
    for algorithm in args.algorithms.split(","):
        clean = [run_fleet(args, certs, algorithm, "clean", rule, None) for rule in (rules[0], rules[-1])]
        absent = run_fleet(args, certs, algorithm, "client-3 absent", rules[-1], None, agents=3)
        poisoned = [run_fleet(args, certs, algorithm, attack, rule, attack)
                    for attack in args.attacks.split(",") for rule in rules]
        lines += _table(algorithm, clean, absent, poisoned)
        (args.out / "robust.md").write_text("\n".join(lines) + "\n")  # each algorithm's table as soon as it is done
    print("\n".join(lines))


def run_fleet(args: argparse.Namespace, certs: Path, algorithm: str, name: str, rule: str, attack: str | None,
              agents: int = 4) -> Result:
    """Start the fleet, wait for every process, and read the honest agents' records."""
    out = args.out / algorithm / f"{name.replace(' ', '-')}-{rule}"
    out.mkdir(parents=True, exist_ok=True)
    service, run = f"_ea-{uuid.uuid4().hex[:8]}._tcp.local.", f"rb-{uuid.uuid4().hex[:6]}"
    common = ["run", "--setting", args.setting, "--algorithm", algorithm, "--rounds", str(args.rounds),
              "--robust", rule, "--service-type", service, "--run", run, "--certs", str(certs), "--quiet",
              "--stall-window", "10", "--wait-peers", "30" if agents == 4 else "8", "--solver", "euler",
              "--checkpoint-dir", str(out / "checkpoints"), *args.agent_flags.split()]
    processes = []
    for index in range(agents):
        program = [sys.executable, str(POISONER), attack] if attack and index == 3 else [sys.executable, "-m",
                                                                                         "edge_agent"]
        log = (out / f"agent-{index}.log").open("wb")
        processes.append(subprocess.Popen([*program, *common, "--shard", f"{index}/4", "--metrics",
                                           str(out / f"agent-{index}.jsonl")], stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"}))
    started = time.monotonic()
    try:
        codes = tuple(process.wait(timeout=3600) for process in processes)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    honest = [agent_rounds(out / f"agent-{index}.jsonl") for index in range(3)]
    trained = [r for records in honest for r in records if r["status"] == "trained"]
    result = Result(name, rule, statistics.mean(
                        [r for r in records if "test_accuracy" in r][-1]["test_accuracy"] for records in honest),
                    statistics.median(r["seconds"]["total"] for r in trained),
                    sum(r["robust"]["seconds"] for r in trained) / sum(r["seconds"]["total"] for r in trained),
                    sum("client-3" in r["robust"]["refused"] and not _barred(r) for r in trained),
                    sum(_barred(r) for r in trained), codes)
    print(f"{algorithm} {name} --robust {rule}: accuracy {result.accuracy:.4f}, round {result.round_s:.2f} s, "
          f"exit {codes}, {time.monotonic() - started:.0f} s", flush=True)
    return result


def _barred(record: dict[str, Any]) -> bool:
    """Whether the record left client-3 out for replies its scores had contradicted in earlier rounds."""
    return bool(record["robust"]["refused"].get("client-3", "").startswith(BARRED_WHY))


def _table(algorithm: str, clean: list[Result], absent: Result, poisoned: list[Result]) -> list[str]:
    lines = ["", f"## {algorithm}", "",
             "| fleet | --robust | honest accuracy | vs client-3 absent | vs 4 honest (off) | median round s | rule's "
             "share of round time | rounds client-3 refused | rounds client-3 barred | exit statuses |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for result in [*clean, absent, *poisoned]:
        lines.append(_row(result, absent.accuracy, clean[0].accuracy))
    off, on = clean
    lines += ["", f"Clean fleet, `--robust {on.rule}` against `{off.rule}`: accuracy "
              f"{on.accuracy - off.accuracy:+.4f}, median round time x{on.round_s / off.round_s:.3f} (two fleets, so "
              f"load moves it), the rule's own seconds {100 * on.rule_share:.3f}% of its round time (one run)."]
    return lines


def _row(result: Result, absent: float, clean: float) -> str:
    cells: list[Any] = [result.name, result.rule, f"{result.accuracy:.4f}", f"{result.accuracy - absent:+.4f}",
                        f"{result.accuracy - clean:+.4f}", f"{result.round_s:.2f}", f"{100 * result.rule_share:.3f}%",
                        result.refused, result.barred, ",".join(map(str, result.codes))]
    return "| " + " | ".join(map(str, cells)) + " |"


if __name__ == "__main__":
    main()

"""Soak: M real agents on loopback for many rounds, a random one SIGKILLed and restarted every few rounds.

It checks what a fleet must keep doing while boards come and go:
- no stuck round: every agent finishes every round, none takes longer than the stall window plus three median rounds;
- no leak: within each agent process's life, resident memory and open file descriptors stay within 10% of their
  values just after warm-up (sampled from /proc every half second).

    python bench/bench_soak.py --agents 8 --rounds 100 --kill-every 10 --out runs/soak
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.deploy.certs import throwaway_cluster
from edge_agent.learning.topology import client_ids
from edge_agent.round_records import agent_rounds


@dataclass
class Life:
    """One process of one agent: when it ran and what /proc said about it, sample by sample."""

    index: int
    process: subprocess.Popen[bytes]
    started_round: int
    samples: list[tuple[int, float, int]] = field(default_factory=list)  # (agent's rounds done, RSS MiB, open fds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--kill-every", type=int, default=10, help="rounds between kills (of the fleet's round)")
    parser.add_argument("--setting", default="edge")
    parser.add_argument("--warmup", type=int, default=5, help="rounds of a process's life before its baseline")
    parser.add_argument("--stall-window", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0, help="which agents are killed")
    parser.add_argument("--agent-flags", default="", help="more `edge-agent run` flags, e.g. '--uplink 10mbit'")
    parser.add_argument("--out", type=Path, default=Path("runs/soak"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    service, run = f"_ea-{uuid.uuid4().hex[:8]}._tcp.local.", f"soak-{uuid.uuid4().hex[:6]}"
    certs = throwaway_cluster(args.out / "certs", list(client_ids(args.agents)))  # mutual TLS, as on boards
    command = [sys.executable, "-m", "edge_agent", "run", "--setting", args.setting, "--rounds", str(args.rounds),
               "--service-type", service, "--run", run, "--certs", str(certs),
               "--stall-window", str(args.stall_window), "--quiet",
               "--checkpoint-dir", str(args.out / "checkpoints"), *args.agent_flags.split()]

    def start(index: int) -> Life:
        log = (args.out / f"agent-{index}.log").open("ab")
        process = subprocess.Popen([*command, "--shard", f"{index}/{args.agents}", "--metrics",
                                    str(args.out / f"agent-{index}.jsonl")], stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
        return Life(index, process, len(_records(args.out, index)))

    rng = random.Random(args.seed)
    lives = [start(i) for i in range(args.agents)]
    current = {life.index: life for life in lives}
    kills: list[tuple[int, int]] = []  # (fleet round, agent)
    next_kill = args.kill_every
    started = time.monotonic()
    try:
        while any(life.process.poll() is None for life in current.values()):
            done = {i: len(_records(args.out, i)) for i in current}
            for life in current.values():
                if life.process.poll() is None:
                    sample = _proc_sample(life.process.pid)
                    if sample is not None:
                        life.samples.append((done[life.index], *sample))
            fleet_round = statistics.median_low(done.values())
            if fleet_round >= next_kill and next_kill < args.rounds - 2:
                victim = rng.randrange(args.agents)
                current[victim].process.kill()
                current[victim].process.wait()
                kills.append((fleet_round, victim))
                print(f"round {fleet_round}: killed agent {victim}; restarting it", flush=True)
                time.sleep(1.0)
                current[victim] = start(victim)
                lives.append(current[victim])
                next_kill += args.kill_every
            time.sleep(0.5)
    finally:
        for life in lives:
            if life.process.poll() is None:
                life.process.kill()
                life.process.wait()
    _report(args, lives, kills, time.monotonic() - started)


def _records(out: Path, index: int) -> list[dict[str, Any]]:
    return agent_rounds(out / f"agent-{index}.jsonl")


def _proc_sample(pid: int) -> tuple[float, int] | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    rss_kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), None)
    return None if rss_kb is None else (rss_kb / 1024, fds)  # an exited, unreaped process has no VmRSS


def _report(args: argparse.Namespace, lives: list[Life], kills: list[tuple[int, int]], seconds: float) -> None:
    print(f"\n{args.agents} agents, {args.rounds} rounds ({args.setting}), {len(kills)} kills and restarts, "
          f"{seconds / 60:.1f} min")
    once = all([r["round"] for r in _records(args.out, i)] == list(range(args.rounds)) for i in range(args.agents))
    print(f"every round recorded once by every agent: {'yes' if once else 'NO'}")
    totals = [r["seconds"]["total"] for i in range(args.agents) for r in _records(args.out, i)
              if r["status"] == "trained"]
    median = statistics.median(totals)
    stuck_limit = args.stall_window + 3 * median
    stuck = [t for t in totals if t > stuck_limit]
    print(f"round seconds: median {median:.2f}, max {max(totals):.2f}; stuck rounds (over {stuck_limit:.1f} s): "
          f"{len(stuck) or 'none'}")
    skipped = sum(r["status"] == "skipped" for i in range(args.agents) for r in _records(args.out, i))
    print(f"rounds skipped by restarted agents to rejoin: {skipped}")
    print("\nagent  life (rounds)  RSS MiB after warm-up -> max  (ratio)  fds after warm-up -> max  (ratio)")
    flat = True
    for life in lives:
        start = life.started_round + args.warmup
        window = [s for s in life.samples if start <= s[0] < start + 3]
        later = [s for s in life.samples if s[0] >= start]
        if not window or len(later) <= len(window):
            continue
        rss0, fd0 = statistics.median(s[1] for s in window), statistics.median(s[2] for s in window)
        rss1, fd1 = max(s[1] for s in later), max(s[2] for s in later)
        last = max(s[0] for s in life.samples)
        good = rss1 <= 1.10 * rss0 and fd1 <= 1.10 * fd0
        flat &= good
        print(f"{life.index:5d}  {life.started_round:4d}..{last:<4d}     {rss0:7.1f} -> {rss1:7.1f}  "
              f"({rss1 / rss0:.3f})    {fd0:5.0f} -> {fd1:5.0f}  ({fd1 / fd0:.3f})  {'ok' if good else 'GREW'}")
    print(f"RSS and open fds within 10% of their values after warm-up: {'yes' if flat else 'NO'}")
    ok = once and not stuck and flat
    print(f"\n{'PASS' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)

if __name__ == "__main__":
    main()

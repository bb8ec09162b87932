"""Soak: M real agents on loopback for many rounds, a random one SIGKILLed and restarted every few rounds.

It checks what a fleet must keep doing while boards come and go:
- no stuck round: every agent finishes every round, none takes longer than the stall window plus three median rounds;
- no leak: within each agent process's life, resident memory and open file descriptors at the end of the life stay
  within 10% of their values just after warm-up.

Memory is compared like with like. Within a round an agent's RSS swings by design (a Jacobian's buffers, then the
end-of-round trim), so a sample taken at a random moment says little. At each round boundary the bench reads the
round's peak (VmHWM, reset through /proc/PID/clear_refs at every boundary) and the round's floor (the lowest of the
half-second VmRSS samples), and the most fds; a life's last rounds are held against its first rounds after warm-up
(warm-up: rounds this process trained; rounds a restarted agent skipped to rejoin are no work and do not count).

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

BASELINE, LATE = 3, 5  # rounds after warm-up, and last rounds of a life, that the leak check compares


@dataclass
class Life:
    """One process of one agent: when it ran and what /proc said about it, sample by sample."""

    index: int
    process: subprocess.Popen[bytes]
    started_round: int
    rounds: list[RoundSample] = field(default_factory=list)
    done: int = -1  # the agent's records when the current interval began
    floor: float = float("inf")  # lowest RSS MiB seen in the current interval
    fds: int = 0  # most open fds seen in the current interval

    def sample(self, done: int, trained: int) -> None:
        """Take a /proc sample; at a round boundary (the agent committed a record), close the interval."""
        now = _proc_sample(self.process.pid)
        if now is None:
            return
        rss, peak, fds = now
        self.floor, self.fds = min(self.floor, rss), max(self.fds, fds)
        if self.done >= 0 and done > self.done and _reset_peak(self.process.pid):
            self.rounds.append(RoundSample(done, trained, peak, self.floor, self.fds))
            self.floor, self.fds = rss, fds
        self.done = done


@dataclass(frozen=True)
class RoundSample:
    """What one round interval of one process cost: peak and floor RSS (MiB) and the most open fds."""

    done: int  # the agent's records at the interval's end
    trained: int  # rounds this process has trained by then
    peak: float
    floor: float
    fds: int


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
            records = {i: _records(args.out, i) for i in current}
            done = {i: len(rows) for i, rows in records.items()}
            for life in current.values():
                if life.process.poll() is None:
                    trained = sum(r["status"] == "trained" for r in records[life.index][life.started_round:])
                    life.sample(done[life.index], trained)
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


def _proc_sample(pid: int) -> tuple[float, float, int] | None:
    """RSS and peak RSS since the last reset (MiB), and open fds; None for a process that has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    rss_kb, peak_kb = _status_kb(status, "VmRSS:"), _status_kb(status, "VmHWM:")
    if rss_kb is None or peak_kb is None:  # an exited, unreaped process has neither
        return None
    return rss_kb / 1024, peak_kb / 1024, fds


def _reset_peak(pid: int) -> bool:
    """Start the next round's peak (writing 5 to clear_refs resets VmHWM); False for a process that has gone."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _status_kb(status: str, key: str) -> int | None:
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith(key)), None)


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
    print(f"\nper process: rounds {args.warmup + 1}..{args.warmup + BASELINE} it trained (after warm-up) against its "
          f"last {LATE} rounds; MiB and fds, median of each window")
    print("agent  life (rounds)  round peak RSS         round floor RSS        most fds        verdict")
    flat = True
    for life in lives:
        base = [r for r in life.rounds if args.warmup < r.trained <= args.warmup + BASELINE]
        late = [r for r in life.rounds if r.trained > args.warmup + BASELINE][-LATE:]
        last = life.rounds[-1].done if life.rounds else life.started_round
        span = f"{life.index:5d}  {life.started_round:4d}..{last:<4d}"
        if len(base) < BASELINE or len(late) < LATE:
            print(f"{span}     too short to judge ({len(life.rounds)} round intervals)")
            continue
        cells, good = [], True
        for name in ("peak", "floor", "fds"):
            before = statistics.median(getattr(r, name) for r in base)
            after = statistics.median(getattr(r, name) for r in late)
            good &= after <= 1.10 * before
            cells.append(f"{before:6.0f} -> {after:6.0f} ({after / before:.2f})")
        flat &= good
        print(f"{span}     {cells[0]}   {cells[1]}   {cells[2]:14s}  {'ok' if good else 'GREW'}")
    peaks = [r.peak for life in lives for r in life.rounds]
    if peaks:
        print(f"highest round peak of any process: {max(peaks):.0f} MiB")
    print(f"RSS and open fds within 10% of their values after warm-up: {'yes' if flat else 'NO'}")
    ok = once and not stuck and flat
    print(f"\n{'PASS' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)

if __name__ == "__main__":
    main()

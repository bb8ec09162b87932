"""Soak: M real agents on loopback for many rounds, a random one SIGKILLed and restarted every few rounds, and
another frozen (SIGSTOP) for a while and thawed (SIGCONT) halfway between the kills.

It checks what a fleet must keep doing while boards come and go:
- no stuck round: every agent finishes every round, none takes longer than the stall window plus three median rounds
  (the round a frozen agent was in when it was frozen is its own freeze, not a stuck round, and is left out);
- no split: within three stall windows of each thaw, and when the first agent finishes, every agent's round is within
  two of the others' (freezes stop one pause interval before the end, so the end is not a freeze's);
- no silent exit: every agent process that ends by itself leaves its exit status and reason as its last log line and
  in its summary, and they agree with the exit status the bench sees;
- no leak: within each agent process's life, resident memory and open file descriptors at the end of the life stay
  within 10% of their values just after warm-up.

Memory is compared like with like. Within a round an agent's RSS swings by design (a Jacobian's buffers, then the
end-of-round trim), so a sample taken at a random moment says little. Each round record carries the agent's own
`rss_mb` (at the round's end, after the trim: the footprint the next round starts from, which a leak raises) and
`round_peak_rss_mb`; the bench adds the most open fds it saw per round (/proc, every half second). A life's last
rounds are held against its first rounds after warm-up (warm-up: rounds this process trained; rounds a restarted
agent skipped to rejoin are no work and do not count). The verdict takes the round-end RSS and the fds; a round's
peak also follows how many neighbours the round's graph gave the agent and how many asked it for a Jacobian (0 to
M-1), so peaks are shown beside it, with the rounds that had the most common neighbourhood size, but do not decide.

    python bench/bench_soak.py --agents 8 --rounds 100 --kill-every 10 --pause-every 10 --out runs/soak
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import signal
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
    """One process of one agent: when it ran, and per round its records and the most open fds /proc showed."""

    index: int
    process: subprocess.Popen[bytes]
    started_round: int
    rounds: list[RoundSample] = field(default_factory=list)
    done: int = -1  # the agent's records when the current interval began
    fds: int = 0  # most open fds seen in the current interval

    def sample(self, records: list[dict[str, Any]]) -> None:
        """Take an fd sample; at a round boundary (the agent committed records), close the interval."""
        fds = _open_fds(self.process.pid)
        if fds is None:
            return
        self.fds = max(self.fds, fds)
        if self.done >= 0 and len(records) > self.done:
            trained = [r for r in records[self.started_round:] if r["status"] == "trained"]
            if trained and records[-1]["status"] == "trained":
                last = records[-1]
                peak = last["round_peak_rss_mb"] or math.nan  # null where the kernel cannot reset the peak
                self.rounds.append(RoundSample(len(records), len(trained), peak, last["rss_mb"], self.fds,
                                               len(last["neighbours"])))
            self.fds = fds
        self.done = len(records)


@dataclass(frozen=True)
class RoundSample:
    """What one trained round of one process cost: its peak and end-of-round RSS (MiB) and the most open fds."""

    done: int  # the agent's records at the round's end
    trained: int  # rounds this process has trained by then
    peak: float
    end: float
    fds: int
    neighbours: int


@dataclass
class Pause:
    """One freeze: when and whom, when it is thawed, how soon after that every agent is within two rounds of the
    others, and the spread of their rounds three stall windows after the thaw (a later kill or freeze can fall in
    that sample, so it is shown, but the verdict takes the time to settle)."""

    round: int
    agent: int
    frozen_round: int  # the round the agent was in when it was frozen: its own freeze, not a stuck round
    frozen: float  # monotonic seconds
    thaw_at: float
    thawed: bool = False
    settled: float | None = None  # seconds from the thaw until max - min of the agents' recorded rounds is <= 2
    spread: int | None = None  # max - min of the agents' recorded rounds, three stall windows after the thaw

    def follow(self, now: float, apart: int, stall_s: float, current: dict[int, Life]) -> None:
        """Thaw the agent when its time comes; then note when the fleet is first within two rounds (`apart`: max -
        min of the agents' recorded rounds now) and how far apart it is three stall windows on."""
        if not self.thawed and now >= self.thaw_at:
            life = current[self.agent]
            if life.process.poll() is None:
                os.kill(life.process.pid, signal.SIGCONT)
            self.thawed, self.thaw_at = True, now
            print(f"thawed agent {self.agent}", flush=True)
            return
        if self.thawed and self.settled is None and apart <= 2:
            self.settled = now - self.thaw_at
        if self.thawed and self.spread is None and now >= self.thaw_at + 3 * stall_s:
            self.spread = apart


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--kill-every", type=int, default=10, help="rounds between kills (of the fleet's round)")
    parser.add_argument("--pause-every", type=int, default=10,
                        help="rounds between freezes of a random agent (halfway between the kills; 0: none)")
    parser.add_argument("--pause-windows", type=float, default=2.0,
                        help="how long each freeze lasts, in stall windows")
    parser.add_argument("--setting", default="edge")
    parser.add_argument("--warmup", type=int, default=5, help="rounds of a process's life before its baseline")
    parser.add_argument("--window", type=int, default=5,
                        help="rounds after warm-up, and last rounds of a life, that the leak check compares")
    parser.add_argument("--stall-window", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0, help="which agents are killed")
    parser.add_argument("--agent-flags", default="", help="more `edge-agent run` flags, e.g. '--uplink 10mbit'")
    parser.add_argument("--out", type=Path, default=Path("runs/soak"))
    args = parser.parse_args()
    if any(args.out.glob("agent-*.jsonl")):  # its agents would resume the old run's checkpoints
        parser.error(f"{args.out} holds an earlier soak's records; give a new --out folder")
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
    pauses: list[Pause] = []
    next_kill = args.kill_every
    next_pause = args.kill_every // 2 if args.pause_every else args.rounds + 1
    end_spread: int | None = None  # max - min of the agents' recorded rounds when the first one finished
    started = time.monotonic()
    try:
        while any(life.process.poll() is None for life in current.values()):
            records = {i: _records(args.out, i) for i in current}
            done = {i: len(rows) for i, rows in records.items()}
            for life in current.values():
                if life.process.poll() is None:
                    life.sample(records[life.index])
            fleet_round = statistics.median_low(done.values())
            now = time.monotonic()
            apart = max(done.values()) - min(done.values())
            if end_spread is None and max(done.values()) >= args.rounds:
                end_spread = apart
            for pause in pauses:
                pause.follow(now, apart, args.stall_window, current)
            last_pause = next_pause + args.pause_every > args.rounds  # its thaw would fall in the fleet's last rounds
            if fleet_round >= next_pause and not last_pause and all(p.thawed for p in pauses):
                victim = rng.randrange(args.agents)
                if current[victim].process.poll() is None:
                    current[victim].process.send_signal(signal.SIGSTOP)
                    pauses.append(Pause(fleet_round, victim, done[victim], now,
                                        now + args.pause_windows * args.stall_window))
                    print(f"round {fleet_round}: froze agent {victim} for "
                          f"{args.pause_windows * args.stall_window:.0f} s", flush=True)
                next_pause += args.pause_every
            if fleet_round >= next_kill and next_kill < args.rounds - 2:
                victim = rng.randrange(args.agents)
                os.kill(current[victim].process.pid, signal.SIGCONT)  # should it be frozen: a kill must land
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
                os.kill(life.process.pid, signal.SIGCONT)
                life.process.kill()
                life.process.wait()
    _report(args, lives, kills, pauses, end_spread, time.monotonic() - started)


def _records(out: Path, index: int) -> list[dict[str, Any]]:
    return agent_rounds(out / f"agent-{index}.jsonl")


def _open_fds(pid: int) -> int | None:
    """The process's open file descriptors; None for a process that has gone."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def _report(args: argparse.Namespace, lives: list[Life], kills: list[tuple[int, int]], pauses: list[Pause],
            end_spread: int | None, seconds: float) -> None:
    print(f"\n{args.agents} agents, {args.rounds} rounds ({args.setting}), {len(kills)} kills and restarts, "
          f"{len(pauses)} freezes of {args.pause_windows * args.stall_window:.0f} s, {seconds / 60:.1f} min")
    once = all([r["round"] for r in _records(args.out, i)] == list(range(args.rounds)) for i in range(args.agents))
    print(f"every round recorded once by every agent: {'yes' if once else 'NO'}")
    settle_limit = 3 * args.stall_window
    settled = [None if p.settled is None else round(p.settled) for p in pauses]
    together = all(s is not None and s <= settle_limit for s in settled) and end_spread is not None \
        and end_spread <= 2
    print(f"seconds from each thaw until every agent is within 2 rounds of the others: {settled or '-'} "
          f"(limit {settle_limit:.0f} s)")
    print(f"rounds apart (max - min) three stall windows after each thaw, whatever else happened by then: "
          f"{[p.spread for p in pauses] or '-'}")
    print(f"rounds apart when the first agent finished: {end_spread}; "
          f"together after every thaw and at the end: {'yes' if together else 'NO'}")
    told = _exits(args, lives)
    frozen = {(p.agent, p.frozen_round) for p in pauses}  # a frozen agent's own round holds its freeze
    totals = [r["seconds"]["total"] for i in range(args.agents) for r in _records(args.out, i)
              if r["status"] == "trained" and (i, r["round"]) not in frozen]
    median = statistics.median(totals)
    stuck_limit = args.stall_window + 3 * median
    stuck = [t for t in totals if t > stuck_limit]
    print(f"round seconds: median {median:.2f}, max {max(totals):.2f}; stuck rounds (over {stuck_limit:.1f} s): "
          f"{len(stuck) or 'none'}")
    skipped = sum(r["status"] == "skipped" for i in range(args.agents) for r in _records(args.out, i))
    print(f"rounds skipped by restarted agents to rejoin: {skipped}")
    print(f"\nper process: rounds {args.warmup + 1}..{args.warmup + args.window} it trained (after warm-up) against "
          f"its last {args.window} rounds; MiB and fds, median of each window; the verdict takes round-end RSS and fds")
    print("agent  life (rounds)  round-end RSS          most fds          verdict  round peak RSS (all rounds; "
          "full neighbourhoods only)")
    flat = True
    sizes = [r.neighbours for life in lives for r in life.rounds]
    usual = statistics.mode(sizes) if sizes else 0
    for life in lives:
        base = [r for r in life.rounds if args.warmup < r.trained <= args.warmup + args.window]
        late = [r for r in life.rounds if r.trained > args.warmup + args.window][-args.window:]
        last = life.rounds[-1].done if life.rounds else life.started_round
        span = f"{life.index:5d}  {life.started_round:4d}..{last:<4d}"
        if len(base) < args.window or len(late) < args.window:
            print(f"{span}     too short to judge ({len(life.rounds)} trained rounds)")
            continue
        end, fds = _window_ratio(base, late, "end"), _window_ratio(base, late, "fds")
        good = end[2] <= 1.10 and fds[2] <= 1.10
        flat &= good
        full = ([r for r in base if r.neighbours == usual], [r for r in late if r.neighbours == usual])
        peak_full = _cell(_window_ratio(*full, "peak")) if all(full) else "-"
        print(f"{span}     {_cell(end)}   {_cell(fds, 3):18s}  {'ok' if good else 'GREW':7s}  "
              f"{_cell(_window_ratio(base, late, 'peak'))}; {peak_full}")
    peaks = [r.peak for life in lives for r in life.rounds]
    if peaks:
        print(f"highest round peak of any process: {max(peaks):.0f} MiB (the usual neighbourhood: {usual} neighbours)")
    print(f"RSS and open fds within 10% of their values after warm-up: {'yes' if flat else 'NO'}")
    ok = once and not stuck and flat and together and told
    print(f"\n{'PASS' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)


def _exits(args: argparse.Namespace, lives: list[Life]) -> bool:
    """Each life's end as the bench saw it (the status, or the SIGKILL it sent) and as the agent told it (the last
    line of its stint in the log, its summary's `exit`); True when every end the agent could tell, it told."""
    print("\nagent  life (rounds)  bench saw            agent's last line")
    logs = {i: (args.out / f"agent-{i}.log").read_text(errors="replace") for i in range(args.agents)}
    told = True
    for life in lives:
        code = life.process.returncode
        seen = f"killed ({signal.Signals(-code).name})" if code is not None and code < 0 else f"status {code}"
        last = _last_exit_line(logs[life.index]) if code is not None and code >= 0 else None
        if code is not None and code >= 0:
            summary = json.loads((args.out / f"agent-{life.index}.summary.json").read_text())
            agrees = last is not None and f"status {code}" in last and summary["exit"]["status"] == code
            told &= agrees
        else:
            agrees = True  # SIGKILL leaves no last word; the bench's own line is the record
        print(f"{life.index:5d}  {life.started_round:4d}..       {seen:20s} {last or '-'}"
              f"{'' if agrees else '  DISAGREES'}")
    print(f"every agent that ended by itself told its exit status and reason: {'yes' if told else 'NO'}")
    return told


def _last_exit_line(log: str) -> str | None:
    """The last `exits with status` line of an agent's log (its lives append to it; only the last one ends by
    itself)."""
    lines = re.findall(r"^.*exits with status \d+: .*$", log, re.M)
    return lines[-1].strip() if lines else None


def _window_ratio(base: list[RoundSample], late: list[RoundSample], name: str) -> tuple[float, float, float]:
    """The medians of `name` over the two windows and their ratio."""
    before = statistics.median(getattr(r, name) for r in base)
    after = statistics.median(getattr(r, name) for r in late)
    return before, after, after / before


def _cell(window: tuple[float, float, float], width: int = 6) -> str:
    return f"{window[0]:{width}.0f} -> {window[1]:{width}.0f} ({window[2]:.2f})"

if __name__ == "__main__":
    main()

"""What a dashboard costs the agents it watches: one fleet of real agents (mutual TLS, training until stopped), and
an `edge-agent dashboard` with an open page (an event-stream reader) watching it in some stretches and not in others.

After --warmup-s seconds, stretches of --block-s seconds alternate: without a dashboard, with one, without, with...
A stretch with one begins once the dashboard has pushed its first refresh to the page and ends before it is
stopped, so its start-up and exit fall outside both kinds. Two measures per stretch:
- round wall time: each agent's `seconds.total` of the rounds that began at least --settle-s seconds into the
  stretch and ended within it (a round's start is its record's `time` less its `seconds.total`);
- CPU per round: the CPU seconds all agent processes used in the stretch (/proc, user + system) over the rounds they
  completed in it; with a dashboard, also its own CPU seconds over the same rounds. This is what answering Status
  and Records costs the agents, and what the dashboard takes from cores it shares with them here; on a machine busy
  with other work it moves far less than wall time does.
Alternating in one run cancels the slow drift of a busy machine, which two runs one after the other would not. The
dashboard finds the agents on mDNS and reads them with an operator certificate, as on an operator's machine; here it
shares the agents' cores, so both ratios hold the CPU it takes.

Before that, while all but the last agent wait for it and train nothing, the same fleet is measured idle for
--idle-s seconds without and then with a dashboard: the CPU per second the agents spend (then only on mDNS and on
answering Status and Records) and the dashboard's own. What watching adds there, against the CPU per second the
training fleet uses without a dashboard, is its share of a CPU-bound fleet's time, free of the noise other work on
the machine puts into round times.

    python bench/bench_dashboard.py --agents 8 --setting smoke --blocks 10 --block-s 40 --out runs/bench-dashboard
"""

from __future__ import annotations

import argparse
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge_agent.deploy.certs import issue, throwaway_cluster
from edge_agent.learning.topology import client_ids
from edge_agent.round_records import agent_rounds

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Stretch:
    """A stretch of the run with or without the dashboard: the round times inside it, the CPU the agents (and the
    dashboard) used in it, and the rounds the agents completed in it."""

    watched: bool
    begin: datetime
    end: datetime | None = None
    seconds: list[float] = field(default_factory=list)
    agents_cpu_s: float = 0.0
    dashboard_cpu_s: float = 0.0
    completed: int = 0  # agent-rounds that ended inside the stretch
    events: int = 0


class Dashboard:
    """`edge-agent dashboard` on a free loopback port, and a page's worth of reading: its event stream."""

    def __init__(self, service: str, run: str, certs: Path, interval: float, log: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "dashboard", "--service-type", service, "--run", run, "--certs",
             str(certs), "--listen", "127.0.0.1:0", "--interval", str(interval)],
            stdout=subprocess.PIPE, stderr=log.open("ab"), text=True, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = re.search(r"http://\S+/", line)
        if match is None:
            raise SystemExit(f"the dashboard did not start: {line!r}; see {log}")
        self.url = match[0].rstrip(",")
        self.events = 0
        self._first = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._first.wait(120):
            raise SystemExit(f"the dashboard pushed no refresh in 120 s; see {log}")

    def _read(self) -> None:
        with urllib.request.urlopen(self.url + "api/events", timeout=60) as stream:
            for line in stream:
                if line.startswith(b"event: fleet"):
                    self.events += 1
                    self._first.set()

    def stop(self) -> None:
        """Ctrl-C it (exit status 0 expected)."""
        self.process.send_signal(signal.SIGINT)
        if self.process.wait(timeout=60) != 0:
            raise SystemExit(f"the dashboard exited {self.process.returncode}")
        self._reader.join(timeout=10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--setting", default="smoke")
    parser.add_argument("--blocks", type=int, default=10, help="stretches, alternating without and with (even)")
    parser.add_argument("--block-s", type=float, default=40.0, help="seconds per stretch")
    parser.add_argument("--warmup-s", type=float, default=30.0, help="seconds before the first stretch")
    parser.add_argument("--settle-s", type=float, default=3.0, help="seconds into a stretch before rounds count")
    parser.add_argument("--interval", type=float, default=2.0, help="the dashboard's --interval")
    parser.add_argument("--idle-s", type=float, default=40.0,
                        help="seconds of each idle measurement, before the last agent starts the fleet")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-dashboard"))
    args = parser.parse_args()
    if args.blocks < 2 or args.blocks % 2:
        parser.error("--blocks must be even and at least 2")
    if any(args.out.glob("agent-*.jsonl")):
        parser.error(f"{args.out} holds an earlier run's records; give a new --out folder")
    args.out.mkdir(parents=True, exist_ok=True)
    service, run = f"_ea-{uuid.uuid4().hex[:8]}._tcp.local.", f"dash-{uuid.uuid4().hex[:6]}"
    certs = throwaway_cluster(args.out / "certs", list(client_ids(args.agents)))
    issue(certs, "operator", operator=True)
    def start(index: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "run", "--shard", f"{index}/{args.agents}", "--setting", args.setting,
             "--rounds", "0", "--backend", "numpy", "--host", "127.0.0.1", "--service-type", service, "--run", run,
             "--certs", str(certs), "--wait-peers", "600", "--quiet", "--metrics",
             str(args.out / f"agent-{index}.jsonl"), "--checkpoint-dir", str(args.out / "checkpoints")],
            stdout=(args.out / f"agent-{index}.log").open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})

    agents = [start(i) for i in range(args.agents - 1)]  # waiting for the last one, they train nothing yet
    stretches: list[Stretch] = []
    dashboard: Dashboard | None = None
    try:
        idle = _idle_cost(args, agents, lambda: Dashboard(service, run, certs, args.interval,
                                                          args.out / "dashboard.log"))
        agents.append(start(args.agents - 1))
        _wait_for_first_round(args, agents)
        time.sleep(args.warmup_s)
        for block in range(args.blocks):
            watched = block % 2 == 1
            if watched:
                dashboard = Dashboard(service, run, certs, args.interval, args.out / "dashboard.log")
            print(f"stretch {block + 1}/{args.blocks}: {'with' if watched else 'without'} a dashboard", flush=True)
            pids = [agent.pid for agent in agents] + ([dashboard.process.pid] if dashboard is not None else [])
            before = [cpu_seconds(pid) for pid in pids]
            stretch = Stretch(watched, datetime.now(UTC))
            time.sleep(args.block_s)
            stretch.end = datetime.now(UTC)
            used = [cpu_seconds(pid) - start for pid, start in zip(pids, before, strict=True)]
            stretch.agents_cpu_s = sum(used[:len(agents)])
            if dashboard is not None:
                stretch.dashboard_cpu_s, stretch.events = used[-1], dashboard.events
                dashboard.stop()
                dashboard = None
            stretches.append(stretch)
            if any(agent.poll() is not None for agent in agents):
                raise SystemExit(f"an agent exited; see {args.out}/agent-*.log")
    finally:
        if dashboard is not None and dashboard.process.poll() is None:
            dashboard.process.kill()
        for agent in agents:
            agent.terminate()
        for agent in agents:
            agent.wait(timeout=30)
    _assign_rounds(args, stretches)
    _report(args, stretches, idle)


@dataclass(frozen=True)
class IdleCost:
    """CPU seconds per second of the agents waiting for the last one, without and with a dashboard, and its own."""

    agents_without: float
    agents_with: float
    dashboard: float


def _idle_cost(args: argparse.Namespace, agents: list[subprocess.Popen[bytes]],
               dashboard: Callable[[], Dashboard]) -> IdleCost:
    """What watching costs with no training in the way: the agents serve Status, Records and mDNS, and nothing else
    moves their CPU."""
    deadline = time.monotonic() + 300
    while not all(b"serving on" in (args.out / f"agent-{i}.log").read_bytes() for i in range(len(agents))):
        if time.monotonic() > deadline or any(agent.poll() is not None for agent in agents):
            raise SystemExit(f"the agents did not start; see {args.out}/agent-*.log")
        time.sleep(0.5)
    time.sleep(args.settle_s)
    print(f"idle: {len(agents)} agents waiting for the last one, {args.idle_s:g} s without a dashboard", flush=True)
    without = _cpu_per_second([a.pid for a in agents], args.idle_s)
    watching = dashboard()
    try:
        time.sleep(args.settle_s)
        print(f"idle: {args.idle_s:g} s with a dashboard", flush=True)
        *with_, own = _cpu_per_second([*(a.pid for a in agents), watching.process.pid], args.idle_s)
    finally:
        watching.stop()
    return IdleCost(sum(without), sum(with_), own)


def _cpu_per_second(pids: list[int], seconds: float) -> list[float]:
    before, started = [cpu_seconds(pid) for pid in pids], time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    return [(cpu_seconds(pid) - start) / elapsed for pid, start in zip(pids, before, strict=True)]


def _wait_for_first_round(args: argparse.Namespace, agents: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 300
    while not all(agent_rounds(args.out / f"agent-{i}.jsonl") for i in range(args.agents)):
        if time.monotonic() > deadline or any(agent.poll() is not None for agent in agents):
            raise SystemExit(f"the fleet did not train a round; see {args.out}/agent-*.log")
        time.sleep(0.5)


def _assign_rounds(args: argparse.Namespace, stretches: list[Stretch]) -> None:
    for index in range(args.agents):
        for record in agent_rounds(args.out / f"agent-{index}.jsonl"):
            if record.get("status") != "trained":
                continue
            seconds = float(record["seconds"]["total"])
            end = datetime.fromisoformat(record["time"].replace("Z", "+00:00"))
            begin = end - timedelta(seconds=seconds)
            for stretch in stretches:
                assert stretch.end is not None
                if stretch.begin + timedelta(seconds=args.settle_s) <= begin and end <= stretch.end:
                    stretch.seconds.append(seconds)
                if stretch.begin <= end <= stretch.end:
                    stretch.completed += 1


def _report(args: argparse.Namespace, stretches: list[Stretch], idle: IdleCost) -> None:
    print(f"| stretch | dashboard | rounds timed | mean round s | median round s | agent-rounds done | agents' CPU s "
          f"per round | dashboard CPU s per round |  ({args.setting}, {args.agents} agents, {args.block_s:g} s "
          f"stretches, dashboard --interval {args.interval:g})")
    print("|---|---|---|---|---|---|---|---|")
    for number, stretch in enumerate(stretches, 1):
        timed = stretch.seconds or [math.nan]  # a round longer than the stretch: nothing to time in it
        done = stretch.completed or math.nan
        print(f"| {number} | {'on' if stretch.watched else 'off'} | {len(stretch.seconds)} | "
              f"{statistics.fmean(timed):.3f} | {statistics.median(timed):.3f} | {stretch.completed} | "
              f"{stretch.agents_cpu_s / done:.3f} | {stretch.dashboard_cpu_s / done:.4f} |")
    on = [s for stretch in stretches if stretch.watched for s in stretch.seconds]
    off = [s for stretch in stretches if not stretch.watched for s in stretch.seconds]
    if not on or not off or not all(sum(s.completed for s in stretches if s.watched == w) for w in (True, False)):
        raise SystemExit("no whole round in the stretches with or without the dashboard: make --block-s longer")
    pairs = [statistics.fmean(b.seconds) / statistics.fmean(a.seconds)
             for a, b in zip(stretches[::2], stretches[1::2], strict=True) if a.seconds and b.seconds] or [math.nan]
    print(f"with / without the dashboard: round wall time x{statistics.fmean(on) / statistics.fmean(off):.4f} "
          f"(mean, {len(on)} and {len(off)} agent-rounds), x{statistics.median(on) / statistics.median(off):.4f} "
          f"(median); per pair of stretches x{min(pairs):.3f}..x{max(pairs):.3f}, "
          f"median x{statistics.median(pairs):.4f}")
    watched = [s for s in stretches if s.watched]
    unwatched = [s for s in stretches if not s.watched]
    agents_on = sum(s.agents_cpu_s for s in watched) / sum(s.completed for s in watched)
    agents_off = sum(s.agents_cpu_s for s in unwatched) / sum(s.completed for s in unwatched)
    dashboard_on = sum(s.dashboard_cpu_s for s in watched) / sum(s.completed for s in watched)
    print(f"CPU per agent-round: agents x{agents_on / agents_off:.4f} with the dashboard ({agents_on:.3f} s against "
          f"{agents_off:.3f} s), agents and dashboard together x{(agents_on + dashboard_on) / agents_off:.4f}")
    watched_s = sum((s.end - s.begin).total_seconds() for s in watched if s.end is not None)
    cpu = sum(s.dashboard_cpu_s for s in watched)
    print(f"the dashboard used {cpu:.1f} CPU s in {watched_s:.0f} s watched ({100 * cpu / watched_s:.2f}% of one "
          f"core); its page read {sum(s.events for s in watched)} refreshes")
    extra = idle.agents_with - idle.agents_without + idle.dashboard  # CPU s per s that watching adds
    training = sum(s.agents_cpu_s for s in unwatched) / sum((s.end - s.begin).total_seconds() for s in unwatched
                                                             if s.end is not None)
    print(f"idle fleet ({args.agents - 1} agents waiting for the last): agents {1000 * idle.agents_without:.1f} ms "
          f"CPU per s without, {1000 * idle.agents_with:.1f} with; the dashboard {1000 * idle.dashboard:.1f}: watching "
          f"adds {1000 * extra:.1f} ms CPU per s, {100 * extra / training:.2f}% of the {1000 * training:.0f} ms per s "
          f"the training fleet used without it")


if __name__ == "__main__":
    main()

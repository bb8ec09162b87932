"""What a dashboard costs the agents it watches: one fleet of real agents (mutual TLS, training until stopped), and
an `edge-agent dashboard` with an open page (an event-stream reader) watching it in some stretches and not in others.

After --warmup-s seconds, stretches of --block-s seconds alternate: without a dashboard, with one, without, with...
A round counts for a stretch when it began at least --settle-s seconds into it and ended within it (its start is
its record's `time` less its `seconds.total`); the others straddle a switch and are left out. Each agent's round
wall time (`seconds.total`) is one sample. Alternating in one run cancels the slow drift a busy machine adds, which
two runs one after the other would not. The dashboard finds the agents on mDNS and reads them with an operator
certificate, as on an operator's machine; here it shares the agents' cores, so the ratio also holds the CPU it takes.

    python bench/bench_dashboard.py --agents 8 --setting smoke --blocks 10 --block-s 40 --out runs/bench-dashboard
"""

from __future__ import annotations

import argparse
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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge_agent.deploy.certs import issue, throwaway_cluster
from edge_agent.learning.topology import client_ids
from edge_agent.round_records import agent_rounds

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Stretch:
    """A stretch of the run with or without the dashboard, and the round times that fell inside it."""

    watched: bool
    begin: datetime
    end: datetime | None = None
    seconds: list[float] = field(default_factory=list)
    dashboard_cpu_s: float = 0.0
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
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with urllib.request.urlopen(self.url + "api/events", timeout=60) as stream:
            for line in stream:
                if line.startswith(b"event: fleet"):
                    self.events += 1

    def stop(self) -> float:
        """Ctrl-C it; the CPU seconds it used."""
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
        self.process.send_signal(signal.SIGINT)
        if self.process.wait(timeout=30) != 0:
            raise SystemExit(f"the dashboard exited {self.process.returncode}")
        self._reader.join(timeout=10)
        return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--setting", default="smoke")
    parser.add_argument("--blocks", type=int, default=10, help="stretches, alternating without and with (even)")
    parser.add_argument("--block-s", type=float, default=40.0, help="seconds per stretch")
    parser.add_argument("--warmup-s", type=float, default=30.0, help="seconds before the first stretch")
    parser.add_argument("--settle-s", type=float, default=3.0, help="seconds into a stretch before rounds count")
    parser.add_argument("--interval", type=float, default=2.0, help="the dashboard's --interval")
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
    agents = [subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "run", "--shard", f"{i}/{args.agents}", "--setting", args.setting,
         "--rounds", "0", "--backend", "numpy", "--host", "127.0.0.1", "--service-type", service, "--run", run,
         "--certs", str(certs), "--wait-peers", "120", "--quiet", "--metrics", str(args.out / f"agent-{i}.jsonl"),
         "--checkpoint-dir", str(args.out / "checkpoints")],
        stdout=(args.out / f"agent-{i}.log").open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}) for i in range(args.agents)]
    stretches: list[Stretch] = []
    dashboard: Dashboard | None = None
    try:
        _wait_for_first_round(args, agents)
        time.sleep(args.warmup_s)
        for block in range(args.blocks):
            watched = block % 2 == 1
            stretch = Stretch(watched, datetime.now(UTC))
            if watched:
                dashboard = Dashboard(service, run, certs, args.interval, args.out / "dashboard.log")
            print(f"stretch {block + 1}/{args.blocks}: {'with' if watched else 'without'} a dashboard", flush=True)
            time.sleep(args.block_s)
            if dashboard is not None:
                stretch.dashboard_cpu_s, stretch.events = dashboard.stop(), dashboard.events
                dashboard = None
            stretch.end = datetime.now(UTC)
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
    _report(args, stretches)


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


def _report(args: argparse.Namespace, stretches: list[Stretch]) -> None:
    print(f"| stretch | dashboard | rounds counted | mean round s | median round s |  ({args.setting}, {args.agents} "
          f"agents, {args.block_s:g} s stretches, dashboard --interval {args.interval:g})")
    print("|---|---|---|---|---|")
    for number, stretch in enumerate(stretches, 1):
        if not stretch.seconds:
            raise SystemExit(f"stretch {number} holds no whole round: make --block-s longer")
        print(f"| {number} | {'on' if stretch.watched else 'off'} | {len(stretch.seconds)} | "
              f"{statistics.fmean(stretch.seconds):.3f} | {statistics.median(stretch.seconds):.3f} |")
    on = [s for stretch in stretches if stretch.watched for s in stretch.seconds]
    off = [s for stretch in stretches if not stretch.watched for s in stretch.seconds]
    pairs = [statistics.fmean(b.seconds) / statistics.fmean(a.seconds) for a, b in zip(stretches[::2], stretches[1::2],
                                                                                          strict=True)]
    watched_s = sum((s.end - s.begin).total_seconds() for s in stretches if s.watched and s.end is not None)
    cpu = sum(s.dashboard_cpu_s for s in stretches)
    events = sum(s.events for s in stretches)
    print(f"with / without the dashboard: round wall time x{statistics.fmean(on) / statistics.fmean(off):.4f} "
          f"(mean, {len(on)} and {len(off)} agent-rounds), x{statistics.median(on) / statistics.median(off):.4f} "
          f"(median); per pair of stretches x{min(pairs):.3f}..x{max(pairs):.3f}, "
          f"median x{statistics.median(pairs):.4f}")
    print(f"the dashboard used {cpu:.1f} CPU s in {watched_s:.0f} s watched ({100 * cpu / watched_s:.1f}% of one core, "
          f"start-up included); its page read {events} refreshes")


if __name__ == "__main__":
    main()

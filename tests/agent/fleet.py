"""A fleet of real agent processes on 127.0.0.1 for fault tests: started, signalled, restarted, always stopped.

Each fleet advertises under a service type and a run name of its own, so other agents on this host never mix in.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.deploy.certs import throwaway_cluster
from edge_agent.learning.topology import client_ids
from edge_agent.round_records import agent_rounds

BASE_ARGS = ("--setting", "smoke", "--solver", "euler", "--backend", "numpy", "--quiet")


@dataclass
class Fleet:
    """Agent i runs `edge-agent run --shard i/M ... --metrics out/agent-i.jsonl`; logs go to out/agent-i.log."""

    out: Path
    size: int
    args: Sequence[str]
    service: str = field(default_factory=lambda: f"_ea-{uuid.uuid4().hex[:8]}._tcp.local.")
    run: str | None = field(default_factory=lambda: f"t-{uuid.uuid4().hex[:8]}")  # None: the settings' hash
    per_agent: dict[int, Sequence[str]] = field(default_factory=dict)  # extra flags of agent i
    programs: dict[int, Sequence[str]] = field(default_factory=dict)  # agent i's program, if not edge-agent
    certs: Path | None = None  # the cluster's certs folder (mutual TLS); None: throwaway certs made in out/certs
    insecure: bool = False  # plaintext instead
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def command(self, index: int) -> list[str]:
        security = ("--insecure",) if self.insecure else ("--certs", str(self.certs_dir()))
        program = self.programs.get(index, (sys.executable, "-m", "edge_agent"))
        return [*program, "run", "--shard", f"{index}/{self.size}", *BASE_ARGS,
                "--service-type", self.service, *(("--run", self.run) if self.run else ()), *security,
                "--metrics", str(self.metrics(index)), "--checkpoint-dir", str(self.out / "checkpoints"), *self.args,
                *self.per_agent.get(index, ())]

    def certs_dir(self) -> Path:
        """The certs folder agents use: `certs`, or throwaway certificates for client-0..client-(M-1) made once."""
        if self.certs is None:
            self.certs = throwaway_cluster(self.out / "certs", list(client_ids(self.size)))
        return self.certs

    def start(self, index: int) -> subprocess.Popen[bytes]:
        log = (self.out / f"agent-{index}.log").open("ab")
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        process = subprocess.Popen(self.command(index), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env)
        self.processes[index] = process
        self.started.append(process)
        return process

    def start_all(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        for index in range(self.size):
            self.start(index)

    def metrics(self, index: int) -> Path:
        return self.out / f"agent-{index}.jsonl"

    def records(self, index: int) -> list[dict[str, Any]]:
        """Agent i's round records so far (whole lines only)."""
        return agent_rounds(self.metrics(index))

    def log(self, index: int) -> str:
        return (self.out / f"agent-{index}.log").read_text(errors="replace")

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.1)

    def wait_for_rounds(self, index: int, rounds: int, timeout: float = 120) -> None:
        self.wait_until(lambda: len(self.records(index)) >= rounds, timeout, f"agent {index} to record {rounds} rounds")

    def signal(self, index: int, signum: int) -> None:
        os.kill(self.processes[index].pid, signum)

    def wait_all(self, timeout: float = 180) -> dict[int, int]:
        """Exit status of every agent once all have exited."""
        deadline = time.monotonic() + timeout
        codes = {}
        for index, process in self.processes.items():
            codes[index] = process.wait(timeout=max(1.0, deadline - time.monotonic()))
        return codes

    def stop(self) -> None:
        """Kill whatever still runs (a paused agent is continued first so the kill lands)."""
        for process in self.started:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                process.kill()
            process.wait()


def rounds_of(records: list[dict[str, Any]]) -> list[int]:
    return [int(r["round"]) for r in records]


@contextmanager
def watching(*args: str) -> Iterator[subprocess.Popen[str]]:
    """`edge-agent ARGS` (a --watch), stdout and stderr as text pipes; killed on the way out if it still runs."""
    watch = subprocess.Popen([sys.executable, "-m", "edge_agent", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    try:
        yield watch
    finally:
        if watch.poll() is None:
            watch.kill()
        watch.wait()


def ctrl_c(watch: subprocess.Popen[str]) -> int:
    """Stop a --watch as an operator does (SIGINT) and return its exit status; one that does not exit within 15 s
    fails with its threads' stacks (faulthandler dumps them on SIGABRT)."""
    watch.send_signal(signal.SIGINT)
    try:
        return watch.wait(timeout=15)
    except subprocess.TimeoutExpired:
        watch.send_signal(signal.SIGABRT)
        _, stderr = watch.communicate(timeout=15)
        raise AssertionError(f"still running 15 s after Ctrl-C; its threads:\n{stderr[-6000:]}") from None

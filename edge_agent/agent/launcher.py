"""Starts M local agent processes on loopback (one per shard) and follows their metrics files."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.round_records import agent_rounds


@dataclass
class LocalRun:
    """Agent processes of one local run and where they write."""

    out: Path
    processes: list[subprocess.Popen[bytes]]

    def metrics_path(self, index: int) -> Path:
        return self.out / f"agent-{index}.jsonl"

    def records(self) -> list[list[dict[str, Any]]]:
        """Per agent, the round records written so far (whole lines only)."""
        return [agent_rounds(self.metrics_path(index)) for index in range(len(self.processes))]

    def records_with_every_neighbour(self) -> list[list[dict[str, Any]]]:
        """Per agent, its round records; ValueError naming the first agent that trained without a neighbour (a
        benchmark of the whole fleet would otherwise measure a smaller one)."""
        records = self.records()
        for index, rounds in enumerate(records):
            if any(r.get("missing") for r in rounds):
                raise ValueError(f"agent {index} trained without some neighbours; see {self.metrics_path(index)}")
        return records

    def running(self) -> bool:
        return any(p.poll() is None for p in self.processes)

    def failed(self) -> list[int]:
        return [i for i, p in enumerate(self.processes) if p.poll() not in (None, 0)]

    def first_error(self, agents: Sequence[int] | None = None) -> str:
        """The first `Error:` line in the logs of `agents` (default: the failed ones), else the last line of the
        first log that has one: why the run failed, in the agents' own words."""
        chosen = self.failed() if agents is None else agents
        last = ""
        for index in chosen:
            log = self.out / f"agent-{index}.log"
            lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()] \
                if log.is_file() else []
            error = next((line for line in lines if line.startswith("Error:")), None)
            if error is not None:
                return f"agent {index}: {error}"
            last = last or (f"agent {index}: {lines[-1]}" if lines else "")
        return last or "no error line in the agents' logs"

    def stop(self) -> None:
        """Terminate what still runs (agents leave mDNS cleanly on SIGTERM), then kill stragglers."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def launch_local_agents(count: int, out: Path, agent_args: Sequence[str]) -> LocalRun:
    """Start `count` agents (shards 0..count-1) on 127.0.0.1 with a service type of their own."""
    out.mkdir(parents=True, exist_ok=True)
    service = f"_ea-{uuid.uuid4().hex[:8]}._tcp.local."
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    processes = []
    for index in range(count):
        log = (out / f"agent-{index}.log").open("wb")
        command = [sys.executable, "-m", "edge_agent", "run", "--shard", f"{index}/{count}", "--host", "127.0.0.1",
                   "--service-type", service, "--metrics", str(out / f"agent-{index}.jsonl"),
                   "--checkpoint-dir", str(out / "checkpoints"), *agent_args]
        processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env=env))
    return LocalRun(out, processes)


def free_loopback_ports(count: int) -> list[int]:
    """`count` distinct ports on 127.0.0.1 that were free a moment ago, for agents started with `--peers`."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()

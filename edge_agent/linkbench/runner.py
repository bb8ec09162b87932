"""A fleet of real agents per algorithm and link, each in a run of its own: launched, followed, stopped, recorded.

Each fleet is `edge-agent run` processes on this host (agent i writes OUT/agent-i.jsonl and .log), with throwaway
certificates (mutual TLS, as on boards), its own `--run` name and mDNS service type. Every agent's uplink and
downlink get the link's rate and its one-way latency through the agent's throttle (with `kernel_tc`, the rate through
tc between network namespaces instead: linkbench.kernel). A fleet stops when its agents
finish their rounds, when their mean test accuracy reaches the target, when one fails, or when its time budget
(counted from launch, per fleet) runs out; then the rest get SIGTERM, which stops them cleanly with their records.
A fleet whose agents failed keeps the first error line of their logs: the report says why in their words.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.agent.launcher import LocalRun, launch_local_agents
from edge_agent.deploy.certs import throwaway_cluster
from edge_agent.learning.topology import client_ids
from edge_agent.linkbench.summary import curve, trained
from edge_agent.round_records import agent_rounds

HEARTBEAT_S = 30.0  # a fleet stuck in a long round still says how long it has been at it


@dataclass(frozen=True)
class Link:
    """Every agent's access link: the same rate up and down, and the one-way latency added to each message."""

    rate: str  # e.g. 1mbit
    latency: str = "0"  # e.g. 20ms
    kernel_tc: bool = False  # the rate shaped by tc between namespaces; the latency stays in the agent (no netem)

    @property
    def label(self) -> str:
        label = self.rate if self.latency in ("0", "") else f"{self.rate} {self.latency}"
        return f"{label} tc" if self.kernel_tc else label


@dataclass(frozen=True)
class FleetPlan:
    """One fleet: which algorithm, over which link, how many agents, rounds and seconds it may have."""

    algorithm: str
    link: Link
    agents: int
    setting: str
    rounds: int
    budget_s: float
    until: float | None = None  # stop once the agents' mean test accuracy reaches this
    agent_args: tuple[str, ...] = ()  # further `edge-agent run` flags (method options)
    backend: str = "auto"  # the agents' kernel backend (`edge-agent run --backend`)
    preset: str = "published"  # SPARK's preset (`edge-agent run --preset`); other algorithms have none
    data: str = "fashion-mnist"  # the agents' training data (`edge-agent run --data`)
    model: str = "mlp"  # the agents' model (`edge-agent run --model`; a file factory with an absolute path)

    @property
    def method(self) -> str:
        """The algorithm, with SPARK's preset when it is not the published method: spark-lean."""
        return f"{self.algorithm}-{self.preset}" if self.algorithm == "spark" and self.preset != "published" \
            else self.algorithm

    @property
    def name(self) -> str:
        """The fleet's folder name: method-rate[-latency]."""
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{self.method}-{self.link.label}")

    @property
    def label(self) -> str:
        return f"{self.method} {self.link.label}"

    def agent_flags(self, certs: Path) -> list[str]:
        """What every agent of the fleet is started with (the launcher adds shard, service type and files)."""
        rate = "unlimited" if self.link.kernel_tc else self.link.rate
        return ["--setting", self.setting, "--algorithm", self.algorithm, "--rounds", str(self.rounds),
                "--uplink", rate, "--downlink", rate, "--latency", self.link.latency,
                "--backend", self.backend, "--run", f"lb-{uuid.uuid4().hex[:12]}", "--certs", str(certs), "--quiet",
                *(["--preset", self.preset] if self.algorithm == "spark" else []),
                *(["--data", self.data] if self.data != "fashion-mnist" else []),
                *(["--model", self.model] if self.model != "mlp" else []), *self.agent_args]


@dataclass(frozen=True)
class Progress:
    """Where a fleet stands: how many rounds every agent recorded and, for the last of them (0-based, as in the
    records), the figures the report gives: mean accuracy, MB sent per agent, seconds since the first round began."""

    fleet: str
    rounds_done: int
    rounds: int
    elapsed_s: float  # since launch
    last_round: int | None = None
    accuracy: float | None = None
    megabytes: float = 0.0
    seconds: float = 0.0

    def line(self) -> str:
        if self.last_round is None or self.accuracy is None:
            return f"{self.fleet}: no round recorded yet, {self.elapsed_s:.0f} s since launch"
        return (f"{self.fleet}: {self.rounds_done} of {self.rounds} rounds done (last: round {self.last_round}), "
                f"accuracy {self.accuracy:.4f}, {self.megabytes:.2f} MB per agent, {self.seconds:.1f} s since its "
                f"first round")


STOP_REASONS = ("rounds", "target", "budget", "failed")  # what ran out, or why the fleet stopped


@dataclass(frozen=True)
class FleetResult:
    """How a fleet ended and where its records are."""

    plan: FleetPlan
    out: Path
    stopped_by: str  # one of STOP_REASONS
    elapsed_s: float  # launch to stop
    failed_agents: tuple[int, ...]
    failed_exits: tuple[int, ...] = ()  # their exit statuses, in the same order (-N: killed by signal N)
    failure: str = ""  # the first error line in the failed agents' logs ("agent 1: Error: ...")

    def records(self) -> list[list[dict[str, Any]]]:
        """Per agent, its round records as it wrote them."""
        return [agent_rounds(self.out / f"agent-{i}.jsonl") for i in range(self.plan.agents)]


Launch = Callable[[FleetPlan, Path, Path], LocalRun]  # (plan, out, certs) -> started agents


def launch_on_loopback(plan: FleetPlan, out: Path, certs: Path) -> LocalRun:
    """The fleet's agents on 127.0.0.1, links shaped by their own throttles."""
    return launch_local_agents(plan.agents, out, plan.agent_flags(certs))


def launch_in_kernel_namespaces(plan: FleetPlan, out: Path, certs: Path) -> LocalRun:
    """The fleet's agents in network namespaces of their own, rates shaped by tc (root)."""
    from edge_agent.linkbench.kernel import launch_in_namespaces

    return launch_in_namespaces(plan.agents, plan.link.rate, out, plan.agent_flags(certs))


def run_fleet(plan: FleetPlan, out: Path, report: Callable[[Progress], None], launch: Launch = launch_on_loopback,
              poll_s: float = 0.5) -> FleetResult:
    """Start the fleet, report its progress, stop it when it is done or out of budget, and keep its records."""
    certs = throwaway_cluster(out / "certs", list(client_ids(plan.agents)))
    started = time.monotonic()
    run = launch(plan, out, certs)
    try:
        stopped_by = _follow(run, plan, started, report, poll_s)
        failed = tuple(run.failed())  # before the stop: an agent SIGTERM catches while it starts exits non-zero
        exits = tuple(run.processes[i].returncode for i in failed)
    finally:
        run.stop()  # SIGTERM: the agents leave cleanly, their records committed round by round
    elapsed = time.monotonic() - started
    report(_progress(plan, run.records(), elapsed))
    return FleetResult(plan, out, stopped_by, elapsed, failed, exits, run.first_error(failed) if failed else "")


def run_fleets(plans: Sequence[FleetPlan], out: Path, report: Callable[[Progress], None]) -> list[FleetResult]:
    """Each fleet in turn, in OUT/fleets/NAME, on loopback or (kernel_tc links) in namespaces."""
    return [run_fleet(plan, out / "fleets" / plan.name, report,
                      launch_in_kernel_namespaces if plan.link.kernel_tc else launch_on_loopback) for plan in plans]


def _follow(run: LocalRun, plan: FleetPlan, started: float, report: Callable[[Progress], None],
            poll_s: float) -> str:
    last: tuple[int, float | None] | None = None
    said = started
    while True:
        now = time.monotonic()
        progress = _progress(plan, run.records(), now - started)
        if (progress.rounds_done, progress.accuracy) != last or now - said >= HEARTBEAT_S:
            report(progress)
            last, said = (progress.rounds_done, progress.accuracy), now
        if run.failed():
            return "failed"
        if not run.running() or progress.rounds_done >= plan.rounds:  # done; the wait for peers to exit is not timed
            return "rounds"
        if plan.until is not None and progress.accuracy is not None and progress.accuracy >= plan.until:
            return "target"
        if now - started >= plan.budget_s:
            return "budget"
        time.sleep(poll_s)


def _progress(plan: FleetPlan, per_agent: list[list[dict[str, Any]]], elapsed: float) -> Progress:
    """The rounds every agent recorded, and the report's figures for the last of them (summary.curve's)."""
    rows = trained(per_agent)
    everyone = set.intersection(*({int(r["round"]) for r in records} for records in rows)) if rows else set()
    if not everyone:
        return Progress(plan.label, 0, plan.rounds, elapsed)
    fleet = curve(per_agent)
    index = fleet.rounds.index(max(everyone))
    return Progress(plan.label, len(everyone), plan.rounds, elapsed, fleet.rounds[index], fleet.accuracy[index],
                    fleet.megabytes[index], fleet.seconds[index])

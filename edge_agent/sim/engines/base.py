"""What every engine shares: its configuration, the hooks it reports through, and the measured requester step.

An engine is a `RequesterMap` (sim/rounds.py) that can be closed: it runs one round's requester steps somewhere
(this process, local worker processes, a Ray cluster) and returns their results in the tasks' order, and it
evaluates the clients' models there too. Where a step runs never changes what it computes: every worker runs it
with one BLAS thread.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
from threadpoolctl import threadpool_limits

from edge_agent.learning.algorithms.baselines import evaluate_accuracies
from edge_agent.learning.mlp import FloatArray, MLPSpec
from edge_agent.learning.models.contract import Model
from edge_agent.sim.rounds import Client, RequesterResult, RequesterStep, RequesterTask

EngineKind = Literal["local", "ray"]
ENGINES: tuple[EngineKind, ...] = ("local", "ray")
RAY_EXTRA = "pip install 'edge-agent[ray]'"


class EngineError(RuntimeError):
    """The engine could not start, join its cluster, or run a step (the message is one line for the user)."""


@dataclass(frozen=True)
class EngineConfig:
    """Where requesters run: `local` (this process with one worker, else worker processes) or `ray`.

    For ray, `address` joins a running cluster (`auto`, or the head's HOST:PORT) and uses all of its CPUs; without
    it a local Ray with `workers` CPUs is started for the run and stopped after it.
    """

    kind: EngineKind = "local"
    workers: int = 1
    address: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ENGINES:
            raise ValueError(f"unknown engine {self.kind!r}; choose one of {', '.join(ENGINES)}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.address is not None and self.kind != "ray":
            raise ValueError("--address joins a Ray cluster: it needs --engine ray")


@dataclass(frozen=True)
class EngineHooks:
    """What an engine tells its caller: requesters done of the round's total, and one-line notices (cluster,
    tasks per node)."""

    progress: Callable[[int, int], None] | None = None  # (done, total) after each finished requester
    notice: Callable[[str], None] | None = None


@dataclass(frozen=True)
class WorkerSample:
    """Which worker ran a step, and that worker process's peak resident memory so far."""

    worker: str  # the node's label and the process id
    node: str
    peak_rss_bytes: int


@dataclass
class EngineUsage:
    """Tasks per node and each worker's peak resident memory, over every round an engine ran."""

    tasks_per_node: dict[str, int] = field(default_factory=dict)
    peak_rss_by_worker: dict[str, int] = field(default_factory=dict)

    def add(self, sample: WorkerSample) -> None:
        self.tasks_per_node[sample.node] = self.tasks_per_node.get(sample.node, 0) + 1
        self.peak_rss_by_worker[sample.worker] = max(self.peak_rss_by_worker.get(sample.worker, 0),
                                                     sample.peak_rss_bytes)


class Engine(Protocol):
    """A RequesterMap with the usage it measured; close it (or use `with`) to stop what it started."""

    usage: EngineUsage

    def __call__(self, step: RequesterStep, tasks: Sequence[RequesterTask]) -> list[RequesterResult]: ...

    def accuracies(self, model: Model, weights: FloatArray, x: FloatArray, y: np.ndarray) -> FloatArray:
        """evaluate_accuracies of every client's weights (M, d) on the test set, by the engine's workers."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Engine: ...

    def __exit__(self, *_exc: object) -> None: ...


def run_measured(step: RequesterStep, clients: Mapping[str, Client], task: RequesterTask,
                 node: str) -> tuple[RequesterResult, WorkerSample]:
    """The step's result on one BLAS thread, and who ran it with its peak memory (ru_maxrss is in KiB on Linux)."""
    with threadpool_limits(limits=1):
        result = step(clients, task)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result, WorkerSample(f"{node} pid {os.getpid()}", node, peak)


def accuracies_in_parts(model: Model, weights: FloatArray, x: FloatArray, y: np.ndarray, workers: int,
                        evaluate: Callable[[list[FloatArray]], list[FloatArray]]) -> FloatArray:
    """evaluate_accuracies of the clients' weights (M, d), cut into one part per worker that `evaluate` runs
    (evaluate_part on each part, on the engine's workers); in this process where there is nothing to share: the
    MLP's accuracies are one vectorised pass here, and one worker or one model has no parts."""
    if isinstance(model, MLPSpec) or workers < 2 or len(weights) < 2:
        return evaluate_accuracies(model, weights, x, y)
    return np.concatenate(evaluate(np.array_split(weights, min(workers, len(weights)))))


def evaluate_part(model: Model, weights: FloatArray, x: FloatArray, y: np.ndarray) -> FloatArray:
    """evaluate_accuracies on one BLAS thread, as a worker runs it."""
    with threadpool_limits(limits=1):
        return evaluate_accuracies(model, weights, x, y)

"""The local engine: requesters run in this process, or in worker processes with one BLAS thread each.

A round's per-requester work is many small matrix-vector products (the ODE); on a small machine several
single-threaded processes beat one process with threaded BLAS. Workers come from a fork server (a plain fork
of a process that already runs threads, e.g. zeroconf's or gRPC's, can deadlock); client data reaches each
worker once, at start.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from edge_agent.learning.algorithms.baselines import evaluate_accuracies
from edge_agent.learning.mlp import FloatArray
from edge_agent.learning.models.contract import Model
from edge_agent.sim.engines.base import (
    EngineHooks,
    EngineUsage,
    WorkerSample,
    accuracies_in_parts,
    evaluate_part,
    run_measured,
)
from edge_agent.sim.rounds import Client, RequesterResult, RequesterStep, RequesterTask

LOCAL_NODE = "this machine"

# Per worker process, filled once by the pool initializer; the parent process never writes it.
_WORKER_CLIENTS: dict[str, Client] = {}


def _initialise(clients: Sequence[Client]) -> None:
    _WORKER_CLIENTS.update({client.id: client for client in clients})


def _run(step: RequesterStep, task: RequesterTask) -> tuple[RequesterResult, WorkerSample]:
    clients: Mapping[str, Client] = _WORKER_CLIENTS
    return run_measured(step, clients, task, LOCAL_NODE)


class InProcessMapper:
    """Requesters one after another in this process (with its own BLAS threads), reporting progress."""

    def __init__(self, clients: Sequence[Client], hooks: EngineHooks | None = None) -> None:
        self._clients = {client.id: client for client in clients}
        self._hooks = hooks or EngineHooks()
        self.usage = EngineUsage()

    def __call__(self, step: RequesterStep, tasks: Sequence[RequesterTask]) -> list[RequesterResult]:
        results = []
        for task in tasks:
            results.append(step(self._clients, task))
            if self._hooks.progress is not None:
                self._hooks.progress(len(results), len(tasks))
        self.usage.tasks_per_node[LOCAL_NODE] = self.usage.tasks_per_node.get(LOCAL_NODE, 0) + len(tasks)
        return results

    def accuracies(self, model: Model, weights: FloatArray, x: FloatArray, y: np.ndarray) -> FloatArray:
        return evaluate_accuracies(model, weights, x, y)

    def close(self) -> None:
        """Nothing to stop."""

    def __enter__(self) -> InProcessMapper:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class ProcessMapper:
    """A RequesterMap over a pool of worker processes; close it (or use `with`) to stop them."""

    def __init__(self, clients: Sequence[Client], workers: int, hooks: EngineHooks | None = None) -> None:
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"),
                                         initializer=_initialise, initargs=(list(clients),))
        self._chunk, self._workers = max(1, len(clients) // (8 * workers)), workers
        self._hooks = hooks or EngineHooks()
        self.usage = EngineUsage()

    def __call__(self, step: RequesterStep, tasks: Sequence[RequesterTask]) -> list[RequesterResult]:
        results = []
        for result, sample in self._pool.map(_run, [step] * len(tasks), tasks, chunksize=self._chunk):
            results.append(result)
            self.usage.add(sample)
            if self._hooks.progress is not None:
                self._hooks.progress(len(results), len(tasks))
        return results

    def accuracies(self, model: Model, weights: FloatArray, x: FloatArray, y: np.ndarray) -> FloatArray:
        """A part of the clients' models per worker (each worker is sent the test set with its part), since a
        model other than the MLP is evaluated one model at a time."""
        def on_workers(parts: list[FloatArray]) -> list[FloatArray]:
            count = len(parts)
            return list(self._pool.map(evaluate_part, [model] * count, parts, [x] * count, [y] * count))
        return accuracies_in_parts(model, weights, x, y, self._workers, on_workers)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ProcessMapper:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

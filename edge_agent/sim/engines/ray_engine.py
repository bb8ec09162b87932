"""The ray engine: each requester's step is a Ray task of one CPU, on whichever node of the cluster has one free.

Client data goes into the object store once, when the engine opens; a task receives only its neighbourhood's
clients (Ray moves each to a node the first time a task there needs it and keeps it there), and the round's step
once per round. Results come back as they finish, so progress counts requesters done. A model other than the MLP is
evaluated there too, a part of the clients' models per CPU. Importing this module needs Ray (`pip install
'edge-agent[ray]'`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import ray
import ray.exceptions

from edge_agent.learning.mlp import FloatArray
from edge_agent.learning.models.contract import Model
from edge_agent.sim.engines.base import (
    EngineConfig,
    EngineError,
    EngineHooks,
    EngineUsage,
    WorkerSample,
    accuracies_in_parts,
    evaluate_part,
    run_measured,
)
from edge_agent.sim.rounds import Client, RequesterResult, RequesterStep, RequesterTask

MIB = 1 << 20
# A local Ray's object store holds the clients' data once and a round's results (two d-vectors per requester,
# about as large as a client's 200 samples in the paper setting): three times the data, and never below this.
MIN_OBJECT_STORE_BYTES = 256 * MIB


@ray.remote(num_cpus=1)
def requester_step(step: RequesterStep, task: RequesterTask, *members: Client) -> tuple[RequesterResult, WorkerSample]:
    """One requester's neighbourhood exchange on a Ray worker; `members` are the clients of task.members, in order."""
    context = ray.get_runtime_context()
    node = node_label(ray.util.get_node_ip_address(), context.get_node_id())  # type: ignore[no-untyped-call]
    return run_measured(step, dict(zip(task.members, members, strict=True)), task, node)


@ray.remote(num_cpus=1)
def accuracies_part(model: Model, weights: FloatArray, x: FloatArray, y: np.ndarray) -> FloatArray:
    """evaluate_accuracies of a part of the clients' models on a Ray worker."""
    return evaluate_part(model, weights, x, y)


def node_label(ip: str, node_id: str) -> str:
    """How runs name a node: its address and the start of its Ray node id (nodes may share an address)."""
    return f"{ip} node {node_id[:8]}"


class RayMapper:
    """A RequesterMap over Ray tasks; close it (or use `with`) to stop the local Ray it started or leave the cluster."""

    def __init__(self, clients: Sequence[Client], config: EngineConfig, hooks: EngineHooks | None = None) -> None:
        self._hooks = hooks or EngineHooks()
        self.usage = EngineUsage()
        if ray.is_initialized():
            raise EngineError("Ray is already initialised in this process; one ray engine at a time")
        data_bytes = sum(client.x.nbytes + client.y.nbytes for client in clients)
        self._connect(config, max(MIN_OBJECT_STORE_BYTES, 3 * data_bytes))
        try:
            self._clients = {client.id: ray.put(client) for client in clients}
        except ray.exceptions.RayError as error:
            ray.shutdown()
            raise EngineError(f"cannot put the clients' data into Ray's object store: {_gist(error)}") from error
        nodes = ray.nodes()  # type: ignore[no-untyped-call]
        self._notice(f"ray: {self._joined} {describe_nodes(nodes)}; clients' data {data_bytes / 1e6:.1f} MB in the "
                     "object store")

    def _connect(self, config: EngineConfig, object_store_bytes: int) -> None:
        quiet: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
        try:
            if config.address is None:
                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a Ray started for one run reports nothing
                ray.init(address="local", num_cpus=config.workers, object_store_memory=object_store_bytes,
                         include_dashboard=False, **quiet)
                self._joined = f"started a local Ray for this run (object store {object_store_bytes // MIB} MiB):"
            else:
                ray.init(address=config.address, **quiet)
                job = ray.get_runtime_context().get_job_id()
                self._joined = f"joined the cluster at {config.address} as job {job}:"
        except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as error:
            what = "start a local Ray" if config.address is None else f"join the Ray cluster at {config.address}"
            raise EngineError(f"cannot {what}: {_gist(error)}") from error

    def __call__(self, step: RequesterStep, tasks: Sequence[RequesterTask]) -> list[RequesterResult]:
        step_ref = ray.put(step)
        index = {requester_step.remote(step_ref, task, *(self._clients[m] for m in task.members)): i
                 for i, task in enumerate(tasks)}
        results: dict[int, RequesterResult] = {}
        pending = list(index)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            try:
                result, sample = ray.get(ready[0])
            except ray.exceptions.RayError as error:
                for ref in pending:
                    ray.cancel(ref)
                raise EngineError(f"a Ray task failed: {_gist(error)}") from error
            results[index[ready[0]]] = result
            self.usage.add(sample)
            if self._hooks.progress is not None:
                self._hooks.progress(len(results), len(tasks))
        return [results[i] for i in range(len(tasks))]

    def accuracies(self, model: Model, weights: FloatArray, x: FloatArray, y: np.ndarray) -> FloatArray:
        def on_ray(parts: list[FloatArray]) -> list[FloatArray]:
            test = ray.put(x), ray.put(y)
            try:
                return list(ray.get([accuracies_part.remote(model, part, *test) for part in parts]))
            except ray.exceptions.RayError as error:
                raise EngineError(f"a Ray task evaluating the clients' models failed: {_gist(error)}") from error
        cpus = int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]
        return accuracies_in_parts(model, weights, x, y, cpus, on_ray)

    def close(self) -> None:
        if not ray.is_initialized():
            return
        if self.usage.tasks_per_node:
            self._notice(f"ray: {describe_usage(self.usage)}")
        ray.shutdown()

    def _notice(self, text: str) -> None:
        if self._hooks.notice is not None:
            self._hooks.notice(text)

    def __enter__(self) -> RayMapper:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def describe_nodes(nodes: Sequence[dict[str, Any]]) -> str:
    """'2 nodes, 3 CPUs (10.0.0.5 node 3cba2886: 1 CPU; ...)' for the live nodes of `ray.nodes()`."""
    alive = [node for node in nodes if node.get("Alive")]
    cpus = [int(node.get("Resources", {}).get("CPU", 0)) for node in alive]
    each = "; ".join(f"{node_label(node['NodeManagerAddress'], node['NodeID'])}: {_plural(count, 'CPU')}"
                     for node, count in zip(alive, cpus, strict=True))
    return f"{_plural(len(alive), 'node')}, {_plural(sum(cpus), 'CPU')} ({each})"


def describe_usage(usage: EngineUsage) -> str:
    """'120 tasks: 10.0.0.5 node 3cba2886 64, ...; workers' peak RSS up to 310 MiB (4 workers)'."""
    per_node = ", ".join(f"{node} {count}" for node, count in sorted(usage.tasks_per_node.items()))
    peaks = usage.peak_rss_by_worker.values()
    return (f"{_plural(sum(usage.tasks_per_node.values()), 'task')} per node: {per_node}; workers' peak RSS up to "
            f"{max(peaks) / MIB:.0f} MiB ({_plural(len(peaks), 'worker')})")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _gist(error: BaseException) -> str:
    """The line of an error that says what went wrong (a task's error ends with its exception's own line)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__

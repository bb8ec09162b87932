"""Runs requesters' neighbourhood exchanges in worker processes, each limited to one BLAS thread.

A round's per-requester work is many small matrix-vector products (the ODE); on a small machine several
single-threaded processes beat one process with threaded BLAS. Workers come from a fork server (a plain fork
of a process that already runs threads, e.g. zeroconf's or gRPC's, can deadlock); client data reaches each
worker once, at start.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor

from threadpoolctl import threadpool_limits

from edge_agent.sim.rounds import Client, RequesterResult, RequesterStep, RequesterTask

# Per worker process, filled once by the pool initializer; the parent process never writes it.
_WORKER_CLIENTS: dict[str, Client] = {}


def _initialise(clients: Sequence[Client]) -> None:
    _WORKER_CLIENTS.update({client.id: client for client in clients})
    threadpool_limits(limits=1)


def _run(step: RequesterStep, task: RequesterTask) -> RequesterResult:
    clients: Mapping[str, Client] = _WORKER_CLIENTS
    return step(clients, task)


class ProcessMapper:
    """A RequesterMap over a pool of worker processes; close it (or use `with`) to stop them."""

    def __init__(self, clients: Sequence[Client], workers: int) -> None:
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"),
                                         initializer=_initialise, initargs=(list(clients),))
        self._chunk = max(1, len(clients) // (8 * workers))

    def __call__(self, step: RequesterStep, tasks: Sequence[RequesterTask]) -> list[RequesterResult]:
        return list(self._pool.map(_run, [step] * len(tasks), tasks, chunksize=self._chunk))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ProcessMapper:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

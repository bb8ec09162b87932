"""One round of each algorithm for all clients, built from the learning functions and the in-memory network.

A round is the weights exchange (all clients at once) followed by one independent neighbourhood exchange per
requester; `RequesterMap` runs those in this process, in worker processes or on a cluster (see `engines`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from edge_agent.learning.algorithms import spark
from edge_agent.learning.algorithms.baselines import LocalSGDConfig, local_sgd
from edge_agent.learning.algorithms.ntk_dfl import NTKDFLConfig
from edge_agent.learning.codec import CodecConfig
from edge_agent.learning.exchange import NTKDFLMethod, NTKMethod, Responder, SparkMethod, run_neighbourhood
from edge_agent.learning.messages import FP32, Message, WeightsMessage, WireCodecs
from edge_agent.learning.mlp import FloatArray
from edge_agent.learning.models.contract import Model
from edge_agent.learning.robust import OFF, RobustConfig, Strikes, robust_average
from edge_agent.sim.network import InMemoryNetwork, TrafficLedger


@dataclass(frozen=True)
class Client:
    """One simulated client: its id and its local training data."""

    id: str
    x: FloatArray  # (N_i, prod(input shape))
    y: np.ndarray  # (N_i,)


Graph = Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class RequesterTask:
    """What one requester's neighbourhood exchange needs beyond the (static) client data."""

    requester: str
    members: tuple[str, ...]  # S_i, sorted, including the requester
    anchor: FloatArray  # wbar_i (d,)
    velocity: FloatArray | None  # SPARK momentum u_i (d,)


@dataclass(frozen=True)
class RequesterResult:
    """The requester's committed weights (and momentum), the tau it chose, what crossed the wire, and the compute
    it took: each member's seconds answering each of its messages, and its own seconds per phase (the evolution)."""

    weights: FloatArray
    velocity: FloatArray
    tau_index: int
    ledger: TrafficLedger
    served_seconds: Mapping[tuple[str, str], float] = field(default_factory=dict)  # (member, message kind) -> s
    own_seconds: Mapping[str, float] = field(default_factory=dict)  # phase -> s
    contradicted: frozenset[str] = frozenset()  # members whose replies their own scores contradicted


@dataclass
class ComputeLog:
    """The compute a round took, as measured here, for the link model: each member's seconds answering each
    requester's message (requester, member, message kind), each requester's own seconds per phase, and each
    client's local training before the exchange (measured for one client, standing for all)."""

    served: dict[tuple[str, str, str], float] = field(default_factory=dict)
    own: dict[tuple[str, str], float] = field(default_factory=dict)
    train: dict[str, float] = field(default_factory=dict)

    def add(self, requester: str, result: RequesterResult) -> None:
        self.served.update({(requester, member, kind): s for (member, kind), s in result.served_seconds.items()})
        self.own.update({(requester, phase): s for phase, s in result.own_seconds.items()})


RequesterStep = Callable[[Mapping[str, Client], RequesterTask], RequesterResult]
RequesterMap = Callable[[RequesterStep, Sequence[RequesterTask]], list[RequesterResult]]


def map_in_process(clients: Sequence[Client]) -> RequesterMap:
    """Run requester steps one after another in this process."""
    by_id = {client.id: client for client in clients}
    return lambda step, tasks: [step(by_id, task) for task in tasks]


def exchange_and_average(clients: Sequence[Client], weights: FloatArray, graph: Graph,
                         network: InMemoryNetwork, round_index: int, robust: RobustConfig = OFF,
                         strikes: Mapping[str, Strikes] | None = None) -> tuple[FloatArray, Graph]:
    """Every client sends its weights to its neighbours; returns each client's neighbourhood mean (M, d), robust
    under `robust`, and the round's graph less the neighbours each client's rule refused or its `strikes` bar (their
    weights still cross the wire, as between agents)."""
    index = {client.id: i for i, client in enumerate(clients)}
    inbox: dict[str, list[WeightsMessage]] = {client.id: [] for client in clients}
    for client in clients:
        message = WeightsMessage(client.id, round_index, weights[index[client.id]])
        for neighbour in graph[client.id]:
            inbox[neighbour].append(network.deliver(message, neighbour))
    averaged, kept = [], {}
    for client in clients:
        barred = strikes[client.id].barred() if strikes is not None else frozenset()
        anchor, report = robust_average(weights[index[client.id]], sorted(inbox[client.id], key=lambda m: m.sender),
                                        robust, barred)
        averaged.append(anchor)
        kept[client.id] = tuple(peer for peer in graph[client.id] if peer not in report.refused)
    return np.stack(averaged), kept


@dataclass(frozen=True)
class NeighbourhoodStep:
    """One requester's neighbourhood exchange, delivered through memory (with the round's wire codecs) to each
    member's own Responder."""

    method: NTKMethod
    round_index: int
    codecs: WireCodecs
    robust: RobustConfig = OFF

    def __call__(self, clients: Mapping[str, Client], task: RequesterTask) -> RequesterResult:
        network = InMemoryNetwork(TrafficLedger(self.codecs))
        responders = {j: Responder(j, clients[j].x, clients[j].y, self.method) for j in task.members}
        served: dict[tuple[str, str], float] = {}
        own: dict[str, float] = {}

        def call(message: Message, member: str) -> Message | None:
            delivered = network.deliver(message, member)
            started = time.perf_counter()
            reply = responders[member].handle(delivered)
            served[(member, type(message).__name__)] = time.perf_counter() - started
            return None if reply is None else network.deliver(reply, task.requester)

        velocity = task.velocity if task.velocity is not None else np.zeros_like(task.anchor)
        result = run_neighbourhood(self.method, task.requester, task.anchor, velocity, task.members, call,
                                   self.round_index, on_phase=lambda phase, seconds: own.__setitem__(phase, seconds),
                                   robust=self.robust)
        return RequesterResult(result.weights, result.velocity, result.tau_index, network.ledger, served,
                               {"evolve": own.get("evolve", 0.0)}, result.contradicted)


def run_requesters(step: RequesterStep, clients: Sequence[Client], averaged: FloatArray,
                   velocity: FloatArray | None, graph: Graph, network: InMemoryNetwork,
                   mapper: RequesterMap, compute: ComputeLog | None = None) -> list[RequesterResult]:
    """Every client's neighbourhood exchange as requester; their traffic is merged into `network`'s ledger and,
    given a log, their compute into `compute`."""
    tasks = [RequesterTask(c.id, tuple(sorted((c.id, *graph[c.id]))), averaged[i],
                           None if velocity is None else velocity[i]) for i, c in enumerate(clients)]
    results = mapper(step, tasks)
    for task, result in zip(tasks, results, strict=True):
        network.ledger.merge(result.ledger)
        if compute is not None:
            compute.add(task.requester, result)
    return results


def _require_codecs(codecs: WireCodecs, jacobian: CodecConfig, updates: CodecConfig, method: str) -> None:
    """Refuse a network that would put the Jacobians or candidate updates on the wire in another codec than the
    method's own."""
    if (codecs.jacobian, codecs.updates) != (jacobian, updates):
        raise ValueError(f"the network's Jacobian and candidate codecs ({codecs.jacobian}, {codecs.updates}) are not "
                         f"{method}'s ({jacobian}, {updates})")


def ntk_dfl_round(spec: Model, clients: Sequence[Client], weights: FloatArray, graph: Graph,
                  network: InMemoryNetwork, config: NTKDFLConfig, round_index: int,
                  mapper: RequesterMap | None = None, compute: ComputeLog | None = None, robust: RobustConfig = OFF,
                  strikes: Mapping[str, Strikes] | None = None) -> tuple[FloatArray, list[int]]:
    """SPEC section 3 for every client in lockstep; returns the committed weights and each client's tau. Each
    client's `strikes` bar neighbours from the round and count the round's contradicted replies."""
    _require_codecs(network.ledger.codecs, FP32, FP32, "NTK-DFL")
    averaged, graph = exchange_and_average(clients, weights, graph, network, round_index, robust, strikes)
    step = NeighbourhoodStep(NTKDFLMethod(spec, config), round_index, network.ledger.codecs, robust)
    results = run_requesters(step, clients, averaged, None, graph, network, mapper or map_in_process(clients),
                             compute)
    _count_strikes(clients, results, strikes)
    return np.stack([r.weights for r in results]), [config.evolution.taus[r.tau_index] for r in results]


def spark_round(spec: Model, clients: Sequence[Client], weights: FloatArray, velocity: FloatArray, graph: Graph,
                network: InMemoryNetwork, config: spark.SparkConfig, round_index: int, rounds: int,
                mapper: RequesterMap | None = None, compute: ComputeLog | None = None, robust: RobustConfig = OFF,
                strikes: Mapping[str, Strikes] | None = None) -> tuple[FloatArray, FloatArray, list[int]]:
    """SPEC section 4 for every client in lockstep; returns weights, momentum velocities and each client's tau.
    Each client's `strikes` bar neighbours from the round and count the round's contradicted replies."""
    _require_codecs(network.ledger.codecs, config.codec, config.candidates_codec, "SPARK")
    averaged, graph = exchange_and_average(clients, weights, graph, network, round_index, robust, strikes)
    step = NeighbourhoodStep(SparkMethod(spec, config, rounds, keep_drawn=True), round_index, network.ledger.codecs,
                             robust)
    results = run_requesters(step, clients, averaged, velocity, graph, network, mapper or map_in_process(clients),
                             compute)
    _count_strikes(clients, results, strikes)
    velocities = np.stack([r.velocity for r in results])
    return (np.stack([r.weights for r in results]), velocities,
            [config.ntk.evolution.taus[r.tau_index] for r in results])


def _count_strikes(clients: Sequence[Client], results: Sequence[RequesterResult],
                   strikes: Mapping[str, Strikes] | None) -> None:
    if strikes is not None:
        for client, result in zip(clients, results, strict=True):
            strikes[client.id].add(result.contradicted)


def baseline_round(spec: Model, clients: Sequence[Client], weights: FloatArray, graph: Graph,
                   network: InMemoryNetwork, config: LocalSGDConfig, seed: int, round_index: int,
                   compute: ComputeLog | None = None, robust: RobustConfig = OFF) -> FloatArray:
    """Local SGD on every client, then averaging with the round's neighbours (SPEC section 5; robust under
    `robust`). Given a log, one client's local SGD is timed alone, as a board runs it, and stands for every
    client's."""
    data = [(client.x, client.y) for client in clients]
    trained = local_sgd(spec, weights, data, config, seed, round_index)
    if compute is not None:
        started = time.perf_counter()
        local_sgd(spec, weights[:1], data[:1], config, seed, round_index)
        compute.train.update(dict.fromkeys((client.id for client in clients), time.perf_counter() - started))
    return exchange_and_average(clients, trained, graph, network, round_index, robust)[0]

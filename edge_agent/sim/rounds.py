"""One round of each algorithm for all clients, built from the learning functions and the in-memory network."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edge_agent.learning.algorithms import spark
from edge_agent.learning.algorithms.baselines import LocalSGDConfig, local_sgd
from edge_agent.learning.algorithms.ntk_dfl import (
    NTKDFLConfig,
    answer_jacobian_request,
    average_weights,
    commit_candidate,
    propose_candidates,
    score_candidates,
)
from edge_agent.learning.messages import JacobianRequest, WeightsMessage
from edge_agent.learning.mlp import FloatArray, MLPSpec
from edge_agent.learning.projection import make_projection
from edge_agent.sim.network import InMemoryNetwork


@dataclass(frozen=True)
class Client:
    """One simulated client: its id and its local training data."""

    id: str
    x: FloatArray  # (N_i, 784)
    y: np.ndarray  # (N_i,)


Graph = Mapping[str, tuple[str, ...]]


def exchange_and_average(clients: Sequence[Client], weights: FloatArray, graph: Graph,
                         network: InMemoryNetwork, round_index: int) -> FloatArray:
    """Every client sends its weights to its neighbours; returns each client's neighbourhood mean (M, d)."""
    index = {client.id: i for i, client in enumerate(clients)}
    inbox: dict[str, list[WeightsMessage]] = {client.id: [] for client in clients}
    for client in clients:
        message = WeightsMessage(client.id, round_index, weights[index[client.id]])
        for neighbour in graph[client.id]:
            inbox[neighbour].append(network.deliver(message, neighbour))
    averaged = [average_weights(weights[index[c.id]], sorted(inbox[c.id], key=lambda m: m.sender)) for c in clients]
    return np.stack(averaged)


def ntk_dfl_round(spec: MLPSpec, clients: Sequence[Client], weights: FloatArray, graph: Graph,
                  network: InMemoryNetwork, config: NTKDFLConfig, round_index: int) -> tuple[FloatArray, list[int]]:
    """SPEC section 3 for every client in lockstep; returns the committed weights and each client's tau."""
    by_id = {client.id: client for client in clients}
    averaged = exchange_and_average(clients, weights, graph, network, round_index)
    eta = config.learning_rate(round_index)
    committed, taus = [], []
    for i, client in enumerate(clients):
        members = sorted((client.id, *graph[client.id]))
        request = JacobianRequest(client.id, round_index, averaged[i])
        replies = [
            network.deliver(answer_jacobian_request(spec, network.deliver(request, j), by_id[j].x, by_id[j].y, j),
                            client.id)
            for j in members
        ]
        proposal = propose_candidates(spec, replies, eta, config, client.id)
        scores = [
            network.deliver(score_candidates(spec, averaged[i], network.deliver(proposal, j), by_id[j].x,
                                             by_id[j].y, j), client.id)
            for j in members
        ]
        new_weights, choice = commit_candidate(averaged[i], proposal, scores)
        committed.append(new_weights)
        taus.append(config.evolution.taus[choice])
    return np.stack(committed), taus


def spark_round(spec: MLPSpec, clients: Sequence[Client], weights: FloatArray, velocity: FloatArray, graph: Graph,
                network: InMemoryNetwork, config: spark.SparkConfig, round_index: int, rounds: int
                ) -> tuple[FloatArray, FloatArray, list[int]]:
    """SPEC section 4 for every client in lockstep; returns weights, momentum velocities and each client's tau."""
    by_id = {client.id: client for client in clients}
    averaged = exchange_and_average(clients, weights, graph, network, round_index)
    eta = config.ntk.learning_rate(round_index)
    soft_weight = config.soft_label_weight(round_index, rounds)
    beta = config.momentum_beta(round_index, rounds)
    projection = make_projection(config.projection, spec, round_index)
    committed, velocities, taus = [], [], []
    for i, client in enumerate(clients):
        members = sorted((client.id, *graph[client.id]))
        request = JacobianRequest(client.id, round_index, averaged[i])
        replies = [
            network.deliver(spark.answer_jacobian_request(spec, network.deliver(request, j), by_id[j].x, by_id[j].y,
                                                          j, projection, config.codec), client.id)
            for j in members
        ]
        proposal = spark.propose_candidates(spec, replies, eta, soft_weight, config, client.id)
        scores = [
            network.deliver(score_candidates(spec, averaged[i], network.deliver(proposal, j), by_id[j].x, by_id[j].y,
                                             j, projection.lift), client.id)
            for j in members
        ]
        new_weights, new_velocity, choice = spark.commit_with_momentum(averaged[i], proposal, scores, projection,
                                                                       velocity[i], beta)
        committed.append(new_weights)
        velocities.append(new_velocity)
        taus.append(config.ntk.evolution.taus[choice])
    return np.stack(committed), np.stack(velocities), taus


def baseline_round(spec: MLPSpec, clients: Sequence[Client], weights: FloatArray, graph: Graph,
                   network: InMemoryNetwork, config: LocalSGDConfig, seed: int, round_index: int) -> FloatArray:
    """Local SGD on every client, then uniform averaging with the round's neighbours (SPEC section 5)."""
    trained = local_sgd(spec, weights, [(client.x, client.y) for client in clients], config, seed, round_index)
    return exchange_and_average(clients, trained, graph, network, round_index)

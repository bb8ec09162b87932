"""Bytes the simulator counts per message kind equal the SPEC section 6 table."""

import numpy as np

from edge_agent.learning.algorithms.baselines import BASELINES
from edge_agent.learning.algorithms.ntk_dfl import NTKDFLConfig
from edge_agent.learning.mlp import MLPSpec, init_weights
from edge_agent.learning.ntk import EvolutionConfig
from edge_agent.learning.topology import TopologyConfig, neighbours
from edge_agent.sim.network import InMemoryNetwork, TrafficLedger
from edge_agent.sim.rounds import Client, baseline_round, ntk_dfl_round

Graph = dict[str, tuple[str, ...]]


def _setup(members: int, samples: int, kappa: int) -> tuple[MLPSpec, list[Client], np.ndarray, Graph]:
    spec = MLPSpec()  # d = 79,510 as in the SPEC
    rng = np.random.default_rng(0)
    clients = [Client(f"c{i:02d}", rng.normal(size=(samples, 784)).astype(np.float32),
                      rng.integers(0, 10, size=samples)) for i in range(members)]
    weights = np.tile(init_weights(spec, 0), (members, 1))
    graph = neighbours(TopologyConfig(degree=kappa, seed=3), [c.id for c in clients], 0)
    return spec, clients, weights, dict(graph)


def test_ntk_dfl_bytes_per_message_kind_match_spec_table() -> None:
    members, n, kappa, taus = 6, 4, 3, (25, 50, 100, 200)
    spec, clients, weights, graph = _setup(members, n, kappa)
    network = InMemoryNetwork(TrafficLedger())
    config = NTKDFLConfig(evolution=EvolutionConfig(taus=taus, solver="euler"))
    ntk_dfl_round(spec, clients, weights, graph, network, config, round_index=0)
    d, c = 79_510, 10
    per_client = {
        "WeightsMessage": kappa * d,
        "JacobianRequest": kappa * d,
        "JacobianReply": kappa * (n * c * d + n * c + n),
        "CandidateRequest": kappa * len(taus) * d,
        "CandidateScores": kappa * len(taus),
    }
    assert dict(network.ledger.elements_by_kind) == {k: members * v for k, v in per_client.items()}
    assert network.ledger.total_bytes == 4 * members * sum(per_client.values())
    assert all(sent == 4 * sum(per_client.values()) for sent in network.ledger.bytes_sent_by_client.values())


def test_dfedavg_sends_only_weights() -> None:
    members, kappa = 6, 3
    spec, clients, weights, graph = _setup(members, 10, kappa)
    network = InMemoryNetwork(TrafficLedger())
    baseline_round(spec, clients, weights, graph, network, BASELINES["dpsgd"], seed=0, round_index=0)
    assert dict(network.ledger.elements_by_kind) == {"WeightsMessage": members * kappa * spec.num_params}

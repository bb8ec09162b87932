"""The simulation loop: builds clients from the data and split, runs rounds, evaluates, and yields records."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import numpy as np

from edge_agent.learning.algorithms.baselines import BASELINES, evaluate_accuracies
from edge_agent.learning.data import Dataset
from edge_agent.learning.mlp import MLPSpec, accuracy, forward, init_weights
from edge_agent.learning.partition import PartitionConfig, make_partition
from edge_agent.learning.topology import TopologyConfig, client_ids, neighbours
from edge_agent.sim.config import SimulationConfig
from edge_agent.sim.network import InMemoryNetwork, TrafficLedger
from edge_agent.sim.parallel import ProcessMapper
from edge_agent.sim.records import RoundRecord
from edge_agent.sim.rounds import Client, RequesterMap, baseline_round, map_in_process, ntk_dfl_round, spark_round
from edge_agent.sim.state import SimulationState


class Simulation:
    """All clients of one run in this process, with their weights (M, d) and the round counter."""

    def __init__(self, config: SimulationConfig, train: Dataset, test: Dataset, spec: MLPSpec | None = None,
                 workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.config = config
        self.workers = workers
        self.spec = spec or MLPSpec()
        self.test = test
        self.topology = TopologyConfig(kind=config.topology, degree=config.kappa, seed=config.seed)
        self.topology.validate(config.clients)
        partition = PartitionConfig.for_run(config.clients, config.samples_per_client, config.alpha, config.seed,
                                            config.partition_file)
        splits = make_partition(partition, train.y)
        self.clients = [Client(cid, train.x[idx], train.y[idx]) for cid, idx in zip(client_ids(config.clients), splits,
                                                                                   strict=True)]
        self.weights = np.tile(init_weights(self.spec, config.seed), (config.clients, 1))
        self.velocity = np.zeros_like(self.weights)  # SPARK's per-client momentum
        self.rounds_done = 0
        self.cumulative_bytes_per_client = 0.0

    def run(self) -> Iterator[RoundRecord]:
        """Run the remaining rounds, yielding each round's record as soon as it is done."""
        if self.rounds_done >= self.config.rounds:
            return
        pool = ProcessMapper(self.clients, self.workers) if self.workers > 1 else None
        try:
            while self.rounds_done < self.config.rounds:
                record = self.run_round(self.rounds_done, self.cumulative_bytes_per_client, pool)
                self.rounds_done += 1
                self.cumulative_bytes_per_client = record.cumulative_bytes_per_client
                yield record
        finally:
            if pool is not None:
                pool.close()

    def state(self) -> SimulationState:
        """What a later process needs to continue this run exactly where it stands."""
        return SimulationState(self.rounds_done, self.weights, self.velocity, self.cumulative_bytes_per_client)

    def restore(self, state: SimulationState) -> None:
        """Continue from a saved state (rounds and topology are drawn from (seed, round), so nothing else is needed)."""
        expected = self.weights.shape
        if state.weights.shape != expected or state.velocity.shape != expected:
            raise ValueError(f"saved state holds weights {state.weights.shape}, this run has {expected}")
        self.weights, self.velocity = state.weights, state.velocity
        self.rounds_done, self.cumulative_bytes_per_client = state.rounds_done, state.cumulative_bytes_per_client

    def run_round(self, round_index: int, cumulative_bytes: float, mapper: RequesterMap | None = None) -> RoundRecord:
        """One round of the configured algorithm for all clients, then evaluation."""
        mapper = mapper or map_in_process(self.clients)
        start = time.perf_counter()
        graph = neighbours(self.topology, [c.id for c in self.clients], round_index)
        network = InMemoryNetwork(TrafficLedger(self.config.wire_codecs))
        taus: list[int] | None = None
        learning_rate: float | None = None
        if self.config.algorithm == "spark":
            learning_rate = self.config.spark.ntk.learning_rate(round_index)
            self.weights, self.velocity, taus = spark_round(self.spec, self.clients, self.weights, self.velocity, graph,
                                                            network, self.config.spark, round_index, self.config.rounds,
                                                            mapper, self.config.robust)
        elif self.config.algorithm == "ntk-dfl":
            learning_rate = self.config.ntk.learning_rate(round_index)
            self.weights, taus = ntk_dfl_round(self.spec, self.clients, self.weights, graph, network,
                                               self.config.ntk, round_index, mapper, self.config.robust)
        else:
            self.weights = baseline_round(self.spec, self.clients, self.weights, graph, network,
                                          BASELINES[self.config.algorithm], self.config.seed, round_index,
                                          self.config.robust)
        seconds = time.perf_counter() - start
        per_client = network.ledger.total_bytes / len(self.clients)
        return RoundRecord(
            round=round_index,
            agg_accuracy=self.aggregated_accuracy(),
            mean_client_accuracy=float(evaluate_accuracies(self.spec, self.weights, self.test.x, self.test.y).mean()),
            bytes_per_client=per_client,
            cumulative_bytes_per_client=cumulative_bytes + per_client,
            bytes_by_kind=dict(sorted(network.ledger.bytes_by_kind.items())),
            learning_rate=learning_rate,
            tau=None if taus is None else {str(t): n for t, n in sorted(Counter(taus).items())},
            seconds=seconds,
        )

    def aggregated_accuracy(self) -> float:
        """Test accuracy of the uniform average of all client models."""
        mean = self.weights.mean(axis=0, dtype=np.float64).astype(np.float32)
        return accuracy(forward(self.spec, mean, self.test.x), self.test.y)

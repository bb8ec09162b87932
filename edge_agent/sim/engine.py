"""The simulation loop: builds clients from the data and split, runs rounds, evaluates, and yields records."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator

import numpy as np

from edge_agent.learning.algorithms.baselines import BASELINES, accuracy_in_chunks, evaluate_accuracies
from edge_agent.learning.data import Dataset
from edge_agent.learning.mlp import FloatArray, MLPSpec
from edge_agent.learning.models.contract import Model
from edge_agent.learning.partition import PartitionConfig, make_partition
from edge_agent.learning.robust import Strikes
from edge_agent.learning.topology import TopologyConfig, client_ids, neighbours
from edge_agent.sim.config import SimulationConfig
from edge_agent.sim.engines.base import Engine, EngineConfig, EngineHooks
from edge_agent.sim.engines.select import open_engine
from edge_agent.sim.link_model import RoundWork, model_round
from edge_agent.sim.network import InMemoryNetwork, TrafficLedger
from edge_agent.sim.records import RoundRecord
from edge_agent.sim.round_work import round_work
from edge_agent.sim.rounds import (
    Client,
    ComputeLog,
    RequesterMap,
    baseline_round,
    map_in_process,
    ntk_dfl_round,
    spark_round,
)
from edge_agent.sim.state import SimulationState

# The algorithms whose rounds have per-requester work for an engine; the baselines' local SGD is vectorised across
# clients in this process (split per client it would change the last bits of the weights).
REQUESTER_ALGORITHMS = ("spark", "ntk-dfl")
Accuracies = Callable[[Model, FloatArray, FloatArray, np.ndarray], FloatArray]  # evaluate_accuracies, or an engine's


class Simulation:
    """All clients of one run in this process, with their weights (M, d) and the round counter."""

    def __init__(self, config: SimulationConfig, train: Dataset, test: Dataset, spec: Model | None = None,
                 engine: EngineConfig | None = None, hooks: EngineHooks | None = None) -> None:
        self.config = config
        self.engine = engine or EngineConfig()
        self.hooks = hooks or EngineHooks()
        self.spec: Model = spec or MLPSpec()
        self.test = test
        self.topology = TopologyConfig(kind=config.topology, degree=config.kappa, seed=config.seed)
        self.topology.validate(config.clients)
        partition = PartitionConfig.for_run(config.clients, config.samples_per_client, config.alpha, config.seed,
                                            config.partition_file)
        splits = make_partition(partition, train.y)
        self.clients = [Client(cid, train.x[idx], train.y[idx]) for cid, idx in zip(client_ids(config.clients), splits,
                                                                                   strict=True)]
        self.weights = np.tile(self.spec.init_weights(config.seed), (config.clients, 1))
        self.velocity = np.zeros_like(self.weights)  # SPARK's per-client momentum
        self.strikes = {client.id: Strikes() for client in self.clients}  # --robust: replies contradicted, per client
        self.rounds_done = 0
        self.cumulative_bytes_per_client = 0.0
        self.last_work: RoundWork | None = None  # with a link model: what the last round moved and computed

    def run(self) -> Iterator[RoundRecord]:
        """Run the remaining rounds, yielding each round's record as soon as it is done."""
        if self.rounds_done >= self.config.rounds:
            return
        if self.config.algorithm not in REQUESTER_ALGORITHMS:  # local SGD runs vectorised here on any engine
            if self.engine.kind != "local" and self.hooks.notice is not None:
                self.hooks.notice(f"{self.engine.kind}: {self.config.algorithm} trains all clients in this process; "
                                  "only SPARK's and NTK-DFL's requesters run on the engine")
            yield from self._rounds(None)
            return
        with open_engine(self.engine, self.clients, self.hooks) as engine:
            yield from self._rounds(engine)

    def _rounds(self, engine: Engine | None) -> Iterator[RoundRecord]:
        while self.rounds_done < self.config.rounds:
            record = self.run_round(self.rounds_done, self.cumulative_bytes_per_client, engine,
                                    evaluate_accuracies if engine is None else engine.accuracies)
            self.rounds_done += 1
            self.cumulative_bytes_per_client = record.cumulative_bytes_per_client
            yield record

    def state(self) -> SimulationState:
        """What a later process needs to continue this run exactly where it stands."""
        return SimulationState(self.rounds_done, self.weights, self.velocity, self.cumulative_bytes_per_client,
                               {cid: dict(strikes.counts) for cid, strikes in self.strikes.items() if strikes.counts})

    def restore(self, state: SimulationState) -> None:
        """Continue from a saved state (rounds and topology are drawn from (seed, round), so nothing else is needed)."""
        expected = self.weights.shape
        if state.weights.shape != expected or state.velocity.shape != expected:
            raise ValueError(f"saved state holds weights {state.weights.shape}, this run has {expected}")
        self.weights, self.velocity = state.weights, state.velocity
        self.rounds_done, self.cumulative_bytes_per_client = state.rounds_done, state.cumulative_bytes_per_client
        self.strikes = {cid: Strikes(dict(state.strikes.get(cid, {}))) for cid in self.strikes}

    def run_round(self, round_index: int, cumulative_bytes: float, mapper: RequesterMap | None = None,
                  accuracies: Accuracies = evaluate_accuracies) -> RoundRecord:
        """One round of the configured algorithm for all clients, then evaluation (each client's model by
        `accuracies`: an engine's spreads it over its workers)."""
        mapper = mapper or map_in_process(self.clients)
        start = time.perf_counter()
        graph = neighbours(self.topology, [c.id for c in self.clients], round_index)
        network = InMemoryNetwork(TrafficLedger(self.config.wire_codecs))
        compute = ComputeLog() if self.config.link is not None else None
        taus: list[int] | None = None
        learning_rate: float | None = None
        if self.config.algorithm == "spark":
            learning_rate = self.config.spark.ntk.learning_rate(round_index)
            self.weights, self.velocity, taus = spark_round(self.spec, self.clients, self.weights, self.velocity, graph,
                                                            network, self.config.spark, round_index, self.config.rounds,
                                                            mapper, compute, self.config.robust, self.strikes)
        elif self.config.algorithm == "ntk-dfl":
            learning_rate = self.config.ntk.learning_rate(round_index)
            self.weights, taus = ntk_dfl_round(self.spec, self.clients, self.weights, graph, network,
                                               self.config.ntk, round_index, mapper, compute, self.config.robust,
                                               self.strikes)
        else:
            self.weights = baseline_round(self.spec, self.clients, self.weights, graph, network,
                                          BASELINES[self.config.algorithm], self.config.seed, round_index, compute,
                                          self.config.robust)
        seconds = time.perf_counter() - start
        modelled = None
        if compute is not None and self.config.link is not None:
            self.last_work = round_work([c.id for c in self.clients], network.ledger, compute, taus is None)
            modelled = model_round(self.last_work, self.config.link)
        per_client = network.ledger.total_bytes / len(self.clients)
        return RoundRecord(
            round=round_index,
            agg_accuracy=self.aggregated_accuracy(),
            mean_client_accuracy=float(accuracies(self.spec, self.weights, self.test.x, self.test.y).mean()),
            bytes_per_client=per_client,
            cumulative_bytes_per_client=cumulative_bytes + per_client,
            bytes_by_kind=dict(sorted(network.ledger.bytes_by_kind.items())),
            learning_rate=learning_rate,
            tau=None if taus is None else {str(t): n for t, n in sorted(Counter(taus).items())},
            seconds=seconds,
            modelled_seconds=None if modelled is None else modelled.seconds,
            modelled_phase_seconds=None if modelled is None else modelled.phase_seconds,
        )

    def aggregated_accuracy(self) -> float:
        """Test accuracy of the uniform average of all client models."""
        mean = self.weights.mean(axis=0, dtype=np.float64).astype(np.float32)
        return accuracy_in_chunks(self.spec, mean, self.test.x, self.test.y)

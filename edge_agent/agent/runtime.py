"""The agent process: serve neighbours, find members, and run synchronous NTK-DFL/SPARK rounds over the wire."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_agent.agent.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edge_agent.agent.config import AgentConfig
from edge_agent.agent.deadlines import call_timeout
from edge_agent.agent.handler import AgentHandler
from edge_agent.agent.inbox import WeightsInbox
from edge_agent.agent.kernels import BackendKernels, ChunkedReferenceKernels
from edge_agent.agent.memory import peak_rss_mb, release_free_memory
from edge_agent.agent.shard import EvaluationImages
from edge_agent.agent.traffic import RoundTraffic
from edge_agent.discovery.membership import Membership
from edge_agent.learning.algorithms.ntk_dfl import average_weights
from edge_agent.learning.data import Dataset
from edge_agent.learning.exchange import Gather, NTKDFLMethod, NTKMethod, Responder, SparkMethod, run_neighbourhood
from edge_agent.learning.messages import Message, WeightsMessage, payload_bytes
from edge_agent.learning.mlp import FloatArray, MLPSpec, init_weights
from edge_agent.learning.topology import TopologyConfig, neighbours
from edge_agent.records import JsonLinesLog
from edge_agent.runtime.backend import make_backend
from edge_agent.transport.client import PeerPool
from edge_agent.transport.contract import TransportError
from edge_agent.transport.ledger import LinkCounters, TransportLedger

log = logging.getLogger(__name__)


def make_method(config: AgentConfig, spec: MLPSpec) -> NTKMethod:
    """The NTK method the agent runs, configured exactly as the simulator would be, on the chosen kernels."""
    if config.algorithm != "spark":
        return NTKDFLMethod(spec, config.ntk)
    if config.backend == "numpy":  # the simulator's reference path, chunked where the profile asks and it can be
        if config.jacobian_chunk is None or config.spark.projection.family != "tensorsketch":
            return SparkMethod(spec, config.spark, config.rounds)
        return SparkMethod(spec, config.spark, config.rounds, ChunkedReferenceKernels(spec, config.jacobian_chunk))
    backend = make_backend(config.backend, spec, config.providers or None, config.threads,  # type: ignore[arg-type]
                           dim=config.spark.projection.dim, chunk=config.jacobian_chunk)
    return SparkMethod(spec, config.spark, config.rounds, BackendKernels(backend))


@dataclass
class RoundClock:
    """Seconds per phase of one round, as the records report them."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("average", "jacobian", "transfer", "evolve", "score", "total"), 0.0))

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] += seconds


class Agent:
    """One board's learner: local shard, weights and momentum, and the round loop over its peers."""

    def __init__(self, config: AgentConfig, data: Dataset, test: EvaluationImages, membership: Membership,
                 pool: PeerPool, ledger: TransportLedger, spec: MLPSpec | None = None) -> None:
        self.config, self.data, self.test, self.membership = config, data, test, membership
        self.pool, self.ledger = pool, ledger
        self.spec = spec or MLPSpec()
        self.method = make_method(config, self.spec)
        self._reply_width = config.spark.projection.dim if config.algorithm == "spark" else self.spec.num_params
        self.topology = TopologyConfig(degree=config.kappa, seed=config.seed)
        self.inbox = WeightsInbox()
        self.traffic = RoundTraffic(config.wire_codecs)
        self.handler = AgentHandler(Responder(config.agent_id, data.x, data.y, self.method), self.inbox, self.traffic)
        self.weights = init_weights(self.spec, config.seed)
        self.velocity = np.zeros_like(self.weights)
        self.next_round = 0
        self.state = "starting"
        self._executor = ThreadPoolExecutor(max(4, config.kappa + 1), thread_name_prefix=f"{config.agent_id}-call")
        self._stop = threading.Event()
        self._resume()

    def _resume(self) -> None:
        if self.config.checkpoint_dir is None:
            return
        checkpoint = load_checkpoint(self.config.checkpoint_dir, self.config.agent_id, self.spec.num_params)
        if checkpoint is not None:
            self.weights, self.velocity, self.next_round = checkpoint.weights, checkpoint.velocity, checkpoint.round + 1
            log.info("resuming %s at round %d from its checkpoint", self.config.agent_id, self.next_round)

    def stop(self) -> None:
        """Ask the round loop to stop after the current phase."""
        self._stop.set()

    def wait_for_members(self) -> list[str]:
        """Block until all M agents of the run are known (or the wait runs out); returns the sorted member ids."""
        self.state = "discovering"
        expected = self.config.clients - 1
        if not self.membership.wait_for(expected, self.config.wait_peers_s):
            raise TimeoutError(f"{self.config.agent_id} saw {len(self.membership)} of {expected} peers after "
                               f"{self.config.wait_peers_s:.0f} s; check multicast, --peers, and the other agents")
        return self.members()

    def wait_for_peers_to_finish(self) -> bool:
        """Keep serving until every member advertises that it finished the last round (they may still need us)."""
        done = self.membership.wait_until(
            lambda peers: all(record.round >= self.config.rounds for record in peers.values()),
            self.config.wait_peers_s)
        if not done:
            log.warning("%s stops before all peers finished", self.config.agent_id)
        return done

    def summary(self) -> dict[str, Any]:
        """The closing metrics line: payload bytes attributed by message round, and wire totals."""
        totals = self.ledger.totals()
        return {"summary": True, "agent": self.config.agent_id, "rounds": self.next_round,
                "payload_by_round": {str(k): v for k, v in self.traffic.by_round().items()},
                "wire_sent_bytes": totals.wire_sent, "wire_received_bytes": totals.wire_received,
                "payload_sent_bytes": totals.payload_sent, "payload_received_bytes": totals.payload_received}

    def members(self) -> list[str]:
        return sorted({self.config.agent_id, *self.membership.snapshot()})

    def run(self, on_round: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Run the remaining rounds, writing one record and one checkpoint per round."""
        self.wait_for_members()
        metrics = JsonLinesLog(self.config.metrics, append=self.next_round > 0) if self.config.metrics else None
        try:
            while self.next_round < self.config.rounds and not self._stop.is_set():
                record = self.run_round(self.next_round)
                if metrics is not None:
                    metrics.append(record)
                if self.config.checkpoint_dir is not None:
                    save_checkpoint(self.config.checkpoint_dir, self.config.agent_id,
                                    Checkpoint(self.next_round, self.weights, self.velocity))
                self.next_round += 1
                release_free_memory()  # the round's buffers, so the next round starts from the same footprint
                if on_round is not None:
                    on_round(record)
            self.state = "finishing"
            self.wait_for_peers_to_finish()
            if metrics is not None:
                metrics.append(self.summary())
            self.state = "done"
        finally:
            if metrics is not None:
                metrics.close()
            self._executor.shutdown(wait=False, cancel_futures=True)

    def run_round(self, round_index: int) -> dict[str, Any]:
        """One synchronous round: exchange weights, average, then this agent's neighbourhood exchange."""
        self.state = f"round {round_index}"
        start = time.perf_counter()
        before = {peer: _copy(c) for peer, c in self.ledger.links().items()}
        members = self.members()
        graph = neighbours(self.topology, members, round_index)
        mine = graph[self.config.agent_id]
        clock = RoundClock()
        anchor = self._average(round_index, mine, clock)
        s_i = sorted((self.config.agent_id, *mine))
        result = run_neighbourhood(self.method, self.config.agent_id, anchor, self.velocity, s_i,
                                   self._caller(), round_index, self._gatherer(clock), clock.add)
        self.weights, self.velocity = result.weights, result.velocity
        clock.seconds["total"] = time.perf_counter() - start
        self.inbox.forget_before(round_index)
        return self._record(round_index, mine, members, clock, result.tau_index, before)

    def _average(self, round_index: int, mine: Sequence[str], clock: RoundClock) -> FloatArray:
        start = time.perf_counter()
        message = WeightsMessage(self.config.agent_id, round_index, self.weights)
        sent = list(self._executor.map(lambda peer: self._send(message, peer), mine))
        reachable = [peer for peer, ok in zip(mine, sent, strict=True) if ok]
        received = self.inbox.wait_for(round_index, reachable, self._weights_wait(len(mine)))
        missing = sorted(set(mine) - set(received))
        if missing:
            log.warning("round %d: no weights from %s; averaging without them", round_index, ", ".join(missing))
        anchor = average_weights(self.weights, [received[s] for s in sorted(received)])
        clock.add("average", time.perf_counter() - start)
        return anchor

    def _weights_wait(self, count: int) -> float:
        return call_timeout(self.config.link, count * self.spec.num_params * 4) + self.config.wait_peers_s

    def _send(self, message: Message, peer: str) -> bool:
        return self._call_remote(message, peer) is not _FAILED

    def _caller(self) -> Callable[[Message, str], Message | None]:
        def call(message: Message, member: str) -> Message | None:
            if member == self.config.agent_id:
                return self.handler.answer(message)
            reply = self._call_remote(message, member)
            return None if reply is _FAILED else reply
        return call

    def _gatherer(self, clock: RoundClock) -> Gather:
        """Ask remote members concurrently and ourselves in this thread; the wait beyond our own work is transfer."""
        def gather(ask: Callable[[str], Message | None], members: Sequence[str]) -> list[Message | None]:
            started = time.perf_counter()
            futures = {m: self._executor.submit(ask, m) for m in members if m != self.config.agent_id}
            local = {m: ask(m) for m in members if m == self.config.agent_id}
            local_seconds = time.perf_counter() - started
            answers = [local[m] if m in local else futures[m].result() for m in members]
            clock.add("transfer", time.perf_counter() - started - local_seconds)
            return answers
        return gather

    def _call_remote(self, message: Message, peer: str) -> Any:
        record = self.membership.snapshot().get(peer)
        if record is None:
            log.warning("%s left before round %d", peer, message.round)
            return _FAILED
        samples = record.samples
        try:
            client = self.pool.get(record.address, peer)
            expected = _expected_bytes(message, samples, self.spec.num_classes, self._reply_width)
            reply = client.call(message, timeout=call_timeout(self.config.link, expected))
            self.traffic.sent(message)
            self.traffic.received(reply)
            return reply
        except TransportError as error:
            log.warning("round %d: %s to %s failed: %s", message.round, type(message).__name__, peer, error)
            return _FAILED

    def _record(self, round_index: int, mine: Sequence[str], members: Sequence[str], clock: RoundClock,
                tau_index: int, before: dict[str, LinkCounters]) -> dict[str, Any]:
        links = {peer: _delta(counters, before.get(peer)) for peer, counters in self.ledger.links().items()}
        links = {peer: c for peer, c in links.items() if any(c.values())}
        totals = {key: sum(c[key] for c in links.values()) for key in _COUNTER_KEYS}
        spark = self.config.spark
        return {
            "round": round_index, "agent": self.config.agent_id, "algorithm": self.config.algorithm,
            "members": len(members), "neighbours": list(mine),
            **{f"{key}_bytes": value for key, value in totals.items()},
            "links": links, "seconds": clock.seconds,
            "tau": self.method_taus()[tau_index],
            "lambda": spark.soft_label_weight(round_index, self.config.rounds) if self.config.algorithm == "spark"
            else 0.0,
            "test_accuracy": self.test.accuracy(self.spec, self.weights),
            "peak_rss_mb": peak_rss_mb(),
        }

    def method_taus(self) -> tuple[int, ...]:
        ntk = self.config.spark.ntk if self.config.algorithm == "spark" else self.config.ntk
        return ntk.evolution.taus


_FAILED = object()
_COUNTER_KEYS = ("wire_sent", "wire_received", "payload_sent", "payload_received")


def _copy(counters: LinkCounters) -> LinkCounters:
    return LinkCounters(**{k: getattr(counters, k) for k in counters.__dataclass_fields__})


def _delta(now: LinkCounters, before: LinkCounters | None) -> dict[str, int]:
    return {key: getattr(now, key) - (getattr(before, key) if before else 0) for key in _COUNTER_KEYS}


def _expected_bytes(message: Message, peer_samples: int, classes: int, reply_width: int) -> int:
    """Payload of the message plus the largest reply it can draw: a Jacobian reply of (N, C, width) floats."""
    return payload_bytes(message) + max(peer_samples, 1) * classes * (reply_width + 2) * 4

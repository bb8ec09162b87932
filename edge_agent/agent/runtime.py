"""The agent process: serve neighbours, find members, and run synchronous NTK-DFL/SPARK/DFedAvg rounds over the wire.

Rounds stay synchronous but never wait without bound: a neighbour that is gone, stalls or sends no weights within
the stall window is left out of the round (recorded in the round's `missing`), unless it is behind us and still
shows life (its weights will come). An agent that finds itself behind the fleet (restarted, paused) adopts the
fleet's round, recording the rounds it skipped; one more than a round ahead of the live members waits for them; and
a round that ended with no neighbour while the fleet moved past it is dropped, not committed, so nobody trains
alone for long."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edge_agent.agent.best import BestModel, best_path
from edge_agent.agent.channels import MemberChannels
from edge_agent.agent.config import AgentConfig
from edge_agent.agent.handler import AgentHandler
from edge_agent.agent.inbox import WeightsInbox
from edge_agent.agent.kernels import BackendKernels, ChunkedReferenceKernels
from edge_agent.agent.lifecycle import AgentStopped, Ending, RoundJournal
from edge_agent.agent.liveness import Liveness
from edge_agent.agent.memory import peak_rss_mb, release_free_memory, round_peak_rss_mb, rss_mb, start_round_peak
from edge_agent.agent.shard import Evaluation
from edge_agent.agent.traffic import RoundTraffic
from edge_agent.discovery.membership import Membership, PeerChange
from edge_agent.discovery.peers import PeerRecord
from edge_agent.learning.algorithms.baselines import BASELINES, local_sgd
from edge_agent.learning.data import Dataset
from edge_agent.learning.exchange import Gather, NTKDFLMethod, NTKMethod, Responder, SparkMethod, run_neighbourhood
from edge_agent.learning.messages import Message, WeightsMessage
from edge_agent.learning.mlp import FloatArray, MLPSpec
from edge_agent.learning.models.contract import Model
from edge_agent.learning.robust import RobustReport, Strikes, robust_average
from edge_agent.learning.topology import neighbours
from edge_agent.round_records import AGENT_ROUND, stamped
from edge_agent.runtime.select import make_backend
from edge_agent.transport.client import PeerPool
from edge_agent.transport.contract import TransportError
from edge_agent.transport.ledger import LinkCounters, TransportLedger
from edge_agent.transport.limits import MessageLimits
from edge_agent.transport.schema import WireError

log = logging.getLogger(__name__)


def make_method(config: AgentConfig, spec: Model) -> NTKMethod:
    """The NTK method the agent runs, configured exactly as the simulator would be, on the chosen kernels (a model
    other than the MLP on its own torch.func kernels)."""
    if config.algorithm != "spark":
        return NTKDFLMethod(spec, config.ntk)
    if not isinstance(spec, MLPSpec):
        return SparkMethod(spec, config.spark, config.schedule_span)
    if config.backend == "numpy":  # the simulator's reference path, chunked where the profile asks and it can be
        if config.jacobian_chunk is None or config.spark.projection.family != "tensorsketch":
            return SparkMethod(spec, config.spark, config.schedule_span)
        return SparkMethod(spec, config.spark, config.schedule_span,
                           ChunkedReferenceKernels(spec, config.jacobian_chunk))
    backend = make_backend(config.backend, spec, config.providers or None, config.threads,  # type: ignore[arg-type]
                           dim=config.spark.projection.dim, chunk=config.jacobian_chunk)
    return SparkMethod(spec, config.spark, config.schedule_span, BackendKernels(backend))


@dataclass
class RoundClock:
    """Seconds per phase of one round, as the records report them (DFedAvg adds its local SGD as "train")."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("average", "jacobian", "transfer", "evolve", "score", "total"), 0.0))

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds


@dataclass
class WeightsExchange:
    """One round's weights message, the members holding our graph neighbours' slots, and whom we sent it to.

    A neighbour we thought down at the round's start was not sent our weights; when its own arrive for this round,
    it is alive and waiting for ours, so it is sent them (once) instead of waiting out its stall window.
    """

    round: int
    message: WeightsMessage
    graph: frozenset[str]
    sent_to: set[str]

    def owes(self, incoming: WeightsMessage) -> bool:
        return (incoming.round == self.round and incoming.sender in self.graph
                and incoming.sender not in self.sent_to)


PHASE_AFTER = {"jacobian": "evolve", "evolve": "score", "score": "record"}  # the phase a finished one leads to
SKETCH_PHASE_AFTER = {**PHASE_AFTER, "evolve": "pullback", "pullback": "score"}  # SPARK with a kernel sketch
RETRY_PAUSE_S = 0.5  # before the one retry of a call that failed at once (connection refused or reset)
JOIN_GRACE_S = 1.0  # in the round an agent joins late, how long it waits for weights its neighbours may not send
WAIT_SLICE_S = 0.2  # waits wake this often to notice a stop request
ROUND_SLACK = 2  # rounds a message may be before ours or past ours (or the fleet's): peers a little off
KEPT_EXCHANGES = 3  # our weights messages of the last rounds, still sent to a neighbour that asks for them late
ALIVE_WINDOWS = 3  # a member heard from within this many stall windows (or round times) is alive
PROBE_EVERY_S = 1.0  # past the window, a late neighbour is asked whether it is alive this often


class Agent:
    """One board's learner: local shard, weights and momentum, and the round loop over its peers."""

    def __init__(self, config: AgentConfig, data: Dataset, test: Evaluation, membership: Membership,
                 pool: PeerPool, ledger: TransportLedger, spec: Model | None = None,
                 limits: MessageLimits | None = None) -> None:
        self.config, self.data, self.test, self.membership = config, data, test, membership
        self.pool, self.ledger = pool, ledger
        self.spec: Model = spec or MLPSpec()
        self.method = make_method(config, self.spec)
        self.liveness = Liveness(config.clients, config.shard)
        self.journal = RoundJournal(config.metrics, config.checkpoint_dir, config.agent_id, config.identity,
                                    self.spec.num_params)
        self.best = BestModel(None if config.checkpoint_dir is None else best_path(config.checkpoint_dir,
                                                                                   config.agent_id), config.identity)
        self.inbox = WeightsInbox()
        self.traffic = RoundTraffic(config.wire_codecs)
        self.handler = AgentHandler(Responder(config.agent_id, data.x, data.y, self.method), self.inbox, self.traffic,
                                    on_message=self._on_message,
                                    is_member=lambda agent_id: membership.get(agent_id) is not None,
                                    rounds=self.accepted_rounds, limits=limits, in_blocks=config.overlap)
        self.weights = self.spec.init_weights(config.seed)
        self.velocity = np.zeros_like(self.weights)
        self.next_round = 0
        self.state = "starting"
        self.phase = ""  # of the round in progress (PHASE_AFTER); "" between rounds
        self.progress_lock = threading.Lock()  # status reads a round's end whole: record, next round and state
        self.last_round_seconds = 0.0
        self.last_record: dict[str, Any] | None = None  # the last round record committed by this process
        self.last_trained: dict[str, Any] | None = None  # the last `trained` one
        self.round_neighbours: tuple[str, ...] = ()  # the round graph's neighbours of the round in progress
        self.round_links: dict[str, LinkCounters] = {}  # the ledger's links when the round in progress began
        self._missing: dict[str, str] = {}  # this round's left-out neighbours and why
        self._robust = RobustReport()  # what this round's --robust rule did to each neighbour
        self._strikes = Strikes()  # --robust: the rounds each neighbour's replies were contradicted by its scores
        self._exchanges: dict[int, WeightsExchange] = {}  # the last rounds' weights: sent to whom, owed to whom
        self._joined_late = False  # this round was adopted from the fleet: its neighbours started it without us
        self._executor = ThreadPoolExecutor(max(4, 2 * config.kappa + 1),
                                            thread_name_prefix=f"{config.agent_id}-call")
        self.stopping = threading.Event()
        membership.add_listener(self._on_member_change)
        membership.add_listener(MemberChannels(pool).on_change)

    def prepare(self) -> None:
        """Open the metrics file and the checkpoint (OSError, ValueError: the operator's to fix) and resume."""
        checkpoint = self.journal.open()
        self.best.resume(None if checkpoint is None else checkpoint.round)
        if checkpoint is not None:
            self.weights, self.velocity, self.next_round = checkpoint.weights, checkpoint.velocity, checkpoint.round + 1
            self._strikes = Strikes(dict(checkpoint.strikes))
            kept = [json.loads(line) for line in self.journal.recent()]
            self.last_record = kept[-1] if kept else None
            self.last_trained = next((r for r in reversed(kept) if r.get("status") == "trained"), None)
            log.info("resuming %s at round %d from its checkpoint", self.config.agent_id, self.next_round)

    def stop(self) -> None:
        """Ask the round loop to stop at its next check (between phases, or within a wait)."""
        self.stopping.set()

    @property
    def finished(self) -> bool:
        return bool(self.config.rounds) and self.next_round >= self.config.rounds

    def wait_for_members(self, check: Callable[[], None] | None = None) -> list[str]:
        """Wait until all M agents of the run are known, or the wait runs out (then go on with those known);
        `check()` is called as they are awaited and may raise to refuse to start."""
        self.state = "discovering"
        expected = self.config.clients - 1

        def found_all() -> bool:
            if check is not None:
                check()
            return len(self.membership) >= expected
        if not self._wait(found_all, self.config.wait_peers_s):
            log.warning("%s saw %d of %d peers after %.0f s; starting with those (check multicast, --peers and "
                        "the other agents)", self.config.agent_id, len(self.membership), expected,
                        self.config.wait_peers_s)
        return self.members()

    def wait_for_peers_to_finish(self) -> bool:
        """Keep serving until every live member advertises that it finished the last round (they may need us)."""
        def all_done() -> bool:
            down = self.liveness.down()
            return all(r.round >= self.config.rounds for a, r in self.membership.snapshot().items() if a not in down)
        done = self._wait(all_done, self.config.wait_peers_s)
        if not done:
            log.warning("%s stops before all peers finished", self.config.agent_id)
        return done

    def summary(self) -> dict[str, Any]:
        """The closing summary (its own file): payload bytes attributed by message round, and wire totals."""
        totals = self.ledger.totals()
        return {"agent": self.config.agent_id, "rounds": self.next_round,
                "payload_by_round": {str(k): v for k, v in self.traffic.by_round().items()},
                "wire_sent_bytes": totals.wire_sent, "wire_received_bytes": totals.wire_received,
                "payload_sent_bytes": totals.payload_sent, "payload_received_bytes": totals.payload_received}

    def write_summary(self, ending: Ending) -> None:
        """The summary file, with how the process ends (written however it ends, once the round loop is over; a
        folder that cannot take it, the reason it may be ending, gets a log line instead)."""
        if not self.journal.opened:  # its paths were the mistake: the error line says so
            return
        try:
            self.journal.write_summary({**self.summary(), "exit": asdict(ending)})
        except OSError as error:
            log.warning("%s: no summary written: %s", self.config.agent_id, error)

    def accepted_rounds(self) -> tuple[int, int]:
        """The rounds a peer's message may be for now: a few either side of ours, or up to a few past the fleet's."""
        fleet = self.liveness.fleet_round(self.membership.snapshot()) or 0
        return max(0, self.next_round - ROUND_SLACK), max(self.next_round, fleet) + ROUND_SLACK

    def members(self) -> list[str]:
        return sorted({self.config.agent_id, *self.membership.snapshot()})

    def neighbour_states(self) -> dict[str, tuple[str, str]]:
        """The round in progress's (or last round's) graph neighbours -> (state, why): "ok", "clipped" (its messages
        bounded by --robust), "refused" (left out by --robust) or "missing" (gone, stalled, ...)."""
        missing, report = dict(self._missing), self._robust
        states: dict[str, tuple[str, str]] = {}
        for peer in self.round_neighbours:
            if peer in report.refused:
                states[peer] = ("refused", report.refused[peer])
            elif peer in missing:
                states[peer] = ("missing", missing[peer])
            elif peer in report.clipped:
                states[peer] = ("clipped", ", ".join(f"{kind} x{factor:.3g}"
                                                     for kind, factor in sorted(report.clipped[peer].items())))
            else:
                states[peer] = ("ok", "")
        return states

    def run(self, on_round: Callable[[dict[str, Any]], None] | None = None,
            while_discovering: Callable[[], None] | None = None) -> None:
        """Run the remaining rounds (all of them for --rounds 0) until stopped, committing each round's record
        with its checkpoint; on a stop request the round in progress is abandoned. `while_discovering` is called
        while the members are awaited and may refuse to go on by raising."""
        try:
            if self.finished:
                log.info("%s already finished its %d rounds", self.config.agent_id, self.config.rounds)
                return
            self.wait_for_members(while_discovering)
            while not self.finished and not self.stopping.is_set():
                for skipped in self._catch_up():
                    if on_round is not None:
                        on_round(skipped)
                if self.finished:
                    break
                self._wait_for_fleet()
                before = (self.weights, self.velocity)
                record = self.run_round(self.next_round)
                with self.progress_lock:
                    if self._left_behind(record):  # alone while the fleet went on: drop the round and rejoin it
                        self.weights, self.velocity = before
                        record = self._skipped(self.next_round, "trained alone while the fleet moved past this round")
                    else:
                        self.best.offer(record, self.weights)  # the best weights kept, and named in the record
                        self.journal.commit(record, self.next_round, self.weights, self.velocity,
                                            self._strikes.counts)
                        self.last_record = self.last_trained = record
                    self.state, self.phase = f"after round {self.next_round}", ""
                    self.next_round += 1
                if on_round is not None:
                    on_round(record)
            if not self.stopping.is_set():
                self.state = "finishing"
                self.wait_for_peers_to_finish()
            self.state = "done"
        except AgentStopped:
            self.state = "stopped"
            log.info("%s stopped; round %d was abandoned", self.config.agent_id, self.next_round)
        finally:
            self.journal.close()
            self._executor.shutdown(wait=False, cancel_futures=True)

    def run_round(self, round_index: int) -> dict[str, Any]:
        """One synchronous round: exchange weights, average, then this agent's neighbourhood exchange (DFedAvg:
        local SGD first, and the average is the round's result)."""
        with self.progress_lock:
            self.state, self.phase = f"round {round_index}", "average"
        start = time.perf_counter()
        start_round_peak()
        clock = RoundClock()
        if self.config.algorithm in BASELINES:  # the weights it sends and averages are the trained ones
            self.phase = "train"
            self.weights = self._local_sgd(round_index, clock)
            self.phase = "average"
        before = self.round_links = {peer: _copy(c) for peer, c in self.ledger.links().items()}
        served_before = self.handler.served.totals()
        slots = neighbours(self.config.topology, self.liveness.roster, round_index)[self.liveness.slot]
        members = self.membership.snapshot()
        picked = self.liveness.neighbours(slots, members)
        self._missing = dict(picked.missing)
        self._robust = RobustReport()
        self.round_neighbours = (*picked.live, *picked.missing)
        holders = self.liveness.holders(members)
        self._exchanges[round_index] = WeightsExchange(
            round_index, WeightsMessage(self.config.agent_id, round_index, self.weights),
            frozenset(holders[s] for s in slots if s in holders), set(picked.live))
        for old in [r for r in self._exchanges if r <= round_index - KEPT_EXCHANGES]:
            del self._exchanges[old]
        anchor, mine = self._average(round_index, picked.live, clock)
        tau_index: int | None = None
        if self.config.algorithm in BASELINES:
            self.weights = anchor
        else:
            self.phase = "jacobian"
            s_i = sorted((self.config.agent_id, *mine))
            after = SKETCH_PHASE_AFTER if self.sketched else PHASE_AFTER

            def lap(phase: str, seconds: float) -> None:
                clock.add(phase, seconds)
                self.phase = after.get(phase, self.phase)
            result = run_neighbourhood(self.method, self.config.agent_id, anchor, self.velocity, s_i,
                                       self._caller(), round_index, self._gatherer(clock), lap, self.config.robust)
            self.weights, self.velocity, tau_index = result.weights, result.velocity, result.tau_index
            self._bounded(result.robust)
            self._strikes.add(result.contradicted)
        clock.seconds["total"] = self.last_round_seconds = time.perf_counter() - start
        self.inbox.forget_before(round_index)
        self._joined_late = False
        return self._record(round_index, mine, clock, tau_index, before, served_before)

    def _local_sgd(self, round_index: int, clock: RoundClock) -> FloatArray:
        """DFedAvg's local SGD on this shard, with the batches the simulator draws for client `shard`."""
        started = time.perf_counter()
        trained = local_sgd(self.spec, self.weights[None], [(self.data.x, self.data.y)],
                            BASELINES[self.config.algorithm], self.config.seed, round_index, [self.config.shard])[0]
        clock.seconds["train"] = time.perf_counter() - started
        return trained

    def _catch_up(self) -> list[dict[str, Any]]:
        """Adopt the fleet's round when most members are past ours, recording (and returning) the rounds skipped."""
        fleet = self.liveness.fleet_round(self.membership.snapshot())
        if fleet is None or fleet <= self.next_round:
            return []
        if self.config.rounds:
            fleet = min(fleet, self.config.rounds)
        log.warning("%s is behind the fleet: skipping rounds %d..%d to join it at round %d", self.config.agent_id,
                    self.next_round, fleet - 1, fleet)
        with self.progress_lock:
            skipped = [self._skipped(round_index, f"behind the fleet; joined it at round {fleet}")
                       for round_index in range(self.next_round, fleet)]
            self.state, self.phase, self.next_round = f"after round {fleet - 1}", "", fleet
        self._joined_late = True
        return skipped

    def _skipped(self, round_index: int, reason: str) -> dict[str, Any]:
        """Commit a `skipped` record of the round (with the weights as they stand)."""
        record = stamped(AGENT_ROUND, {"round": round_index, "agent": self.config.agent_id,
                                       "algorithm": self.config.algorithm, "status": "skipped", "reason": reason})
        self.journal.commit(record, round_index, self.weights, self.velocity, self._strikes.counts)
        self.last_record = record
        return record

    def _wait_for_fleet(self) -> None:
        """More than a round ahead of the members that are alive, wait (serving them) until they come within one;
        they then find us where they are, as an agent behind adopts the fleet's round."""
        alive_s = ALIVE_WINDOWS * max(self.config.stall_s, self.last_round_seconds)

        def ahead() -> int:
            fleet = self.liveness.alive_round(self.membership.snapshot(), alive_s)
            return 0 if fleet is None else self.next_round - fleet
        lead = ahead()
        if lead <= 1:
            return
        log.warning("%s is %d rounds ahead of the live members: waiting for them before round %d",
                    self.config.agent_id, lead, self.next_round)
        with self.progress_lock:
            self.state, self.phase = f"waiting for the fleet before round {self.next_round}", ""
        while ahead() > 1:
            self._check_stop()
            self.stopping.wait(WAIT_SLICE_S)

    def _left_behind(self, record: dict[str, Any]) -> bool:
        """A round trained with no neighbour while most members went past it (we were paused mid-round, say)."""
        if record["neighbours"]:
            return False
        fleet = self.liveness.fleet_round(self.membership.snapshot())
        return fleet is not None and fleet > record["round"]

    def _average(self, round_index: int, live: Sequence[str], clock: RoundClock) -> tuple[FloatArray, list[str]]:
        """wbar_i over the neighbours whose weights came within the stall window; those are the round's S_i."""
        start = time.perf_counter()
        message = self._exchanges[round_index].message
        sent = list(self._executor.map(lambda peer: self._timed_send(message, peer), live))
        reachable = [peer for peer, (ok, _) in zip(live, sent, strict=True) if ok]
        self._exchanges[round_index].sent_to.difference_update(set(live) - set(reachable))  # owed if they call
        # the window runs from when our weights reached the last neighbour that took them: a send that hung on a
        # frozen neighbour until the stall cut it must not make the others' weights wait a second window
        delivered = max((at for ok, at in sent if ok), default=time.monotonic())
        window = JOIN_GRACE_S if self._joined_late else self.config.stall_s
        received = self._wait_for_weights(round_index, reachable, window, delivered)
        for peer in sorted(set(reachable) - set(received)):
            if self._joined_late:  # it began the round before we came back; it is not down
                self._missing[peer] = "began the round without us (we joined late)"
                continue
            reason = f"no weights within the {self.config.stall_s:.0f} s stall window"
            self._missing[peer] = reason
            self.liveness.mark_down(peer, reason)
        if self._missing:
            log.warning("round %d: without %s", round_index,
                        ", ".join(f"{peer} ({why})" for peer, why in sorted(self._missing.items())))
        mine = sorted(received)
        anchor, report = robust_average(self.weights, [received[s] for s in mine], self.config.robust,
                                        self._strikes.barred())
        self._bounded(report)
        clock.add("average", time.perf_counter() - start)
        return anchor, [peer for peer in mine if peer not in report.refused]

    def _bounded(self, report: RobustReport) -> None:
        """Keep what the --robust rule did this round; a neighbour it refused is left out of the rest of it."""
        self._robust.merge(report)
        for peer, why in report.refused.items():
            self._missing[peer] = f"refused by --robust {self.config.robust.rule}: {why}"
            log.warning("round %d: %s refused by --robust %s: %s", self.next_round, peer, self.config.robust.rule,
                        why)
        for peer, kinds in report.clipped.items():
            log.info("round %d: %s clipped by --robust %s: %s", self.next_round, peer, self.config.robust.rule,
                     ", ".join(f"{kind} x{factor:.3g}" for kind, factor in sorted(kinds.items())))

    def _wait_for_weights(self, round_index: int, senders: Sequence[str], window: float, since: float
                          ) -> dict[str, WeightsMessage]:
        """The round's weights from `senders` that came within `window` of `since` (monotonic), or later from a
        sender that is behind us (it advertises an earlier round) and alive (heard from in the last stall window, or
        it answers a PeerInfo): it is finishing its round and its weights will come. The wait never exceeds
        ALIVE_WINDOWS round times (or stall windows); a frozen or dead sender is cut at the window."""
        deadline, cap = since + window, since + ALIVE_WINDOWS * max(window, self.last_round_seconds)
        while True:
            self._check_stop()
            received = self.inbox.wait_for(round_index, senders, WAIT_SLICE_S)
            if len(received) == len(senders):
                return received
            now = time.monotonic()
            if now >= deadline:
                pending = [peer for peer in senders if peer not in received]
                if now >= cap or not any(self._on_its_way(peer, round_index) for peer in pending):
                    return received
                deadline = now + PROBE_EVERY_S

    def _on_its_way(self, peer: str, round_index: int) -> bool:
        """A neighbour behind this round that is alive, so its weights will come."""
        record = self.membership.get(peer)
        if record is None or record.round >= round_index:
            return False
        if self.liveness.heard_within(peer, self.config.stall_s):
            return True
        try:
            info = self.pool.get(record.address, peer).peer_info(timeout=PROBE_EVERY_S)
        except TransportError:
            return False  # frozen, gone
        return info.round < round_index

    def _send(self, message: Message, peer: str) -> bool:
        return self._call_remote(message, peer) is not _FAILED

    def _timed_send(self, message: Message, peer: str) -> tuple[bool, float]:
        """Whether the peer took the message, and when (monotonic) the call ended."""
        return self._send(message, peer), time.monotonic()

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
            self._check_stop()
            started = time.perf_counter()
            futures = {m: self._executor.submit(ask, m) for m in members if m != self.config.agent_id}
            local = {m: ask(m) for m in members if m == self.config.agent_id}
            local_seconds = time.perf_counter() - started
            pending = set(futures.values())
            while pending:
                self._check_stop()
                pending = wait(pending, timeout=WAIT_SLICE_S).not_done
            answers = [local[m] if m in local else futures[m].result() for m in members]
            clock.add("transfer", time.perf_counter() - started - local_seconds)
            return answers
        return gather

    def _call_remote(self, message: Message, peer: str) -> Any:
        """The peer's reply, or _FAILED (recorded as missing, the peer marked down) after one retry of a transient
        failure; a peer that has not found us among its members yet (its first poll or advert of us is still to
        come) is asked again until half the stall window has passed."""
        first = time.monotonic()
        for attempt in itertools.count():
            record = self.membership.get(peer)
            if record is None:
                return self._failed(peer, "left the fleet")
            started = time.monotonic()
            try:
                client = self.pool.get(record.address, peer)
                reply = client.call(message)
                self.traffic.sent(message)
                self.traffic.received(reply)
                return reply
            except (TransportError, WireError) as error:
                reason = error.reason if isinstance(error, TransportError) else "rejected"
                quick = time.monotonic() - started < self.config.stall_s / 2
                transient = attempt == 0 and quick and reason in ("unavailable", "failed")
                unknown = reason == "unknown" and time.monotonic() - first < self.config.stall_s / 2
                if (transient or unknown) and not self.stopping.is_set():
                    time.sleep(RETRY_PAUSE_S)  # a transient failure (refused, reset) is retried once
                    continue
                log.warning("round %d: %s to %s failed: %s", message.round, type(message).__name__, peer, error)
                return self._failed(peer, reason)
        raise AssertionError("unreachable")

    def _failed(self, peer: str, reason: str) -> Any:
        self._missing[peer] = reason
        self.liveness.mark_down(peer, reason)
        return _FAILED

    def _check_stop(self) -> None:
        if self.stopping.is_set():
            raise AgentStopped

    def _wait(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait until `condition()` holds (True) or `timeout` passes (False); AgentStopped on a stop request."""
        deadline = time.monotonic() + timeout
        while not condition():
            self._check_stop()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.stopping.wait(min(WAIT_SLICE_S, left))
        return True

    def _on_message(self, message: Message) -> None:
        """Whoever calls us is alive; a neighbour we left out of this round that sends its weights gets ours."""
        self.liveness.mark_up(message.sender)
        exchange = self._exchanges.get(message.round)
        if isinstance(message, WeightsMessage) and exchange is not None and exchange.owes(message):
            exchange.sent_to.add(message.sender)
            with contextlib.suppress(RuntimeError):  # RuntimeError: the agent is stopping
                self._executor.submit(self._send, exchange.message, message.sender)

    def _on_member_change(self, change: PeerChange, record: PeerRecord) -> None:
        """A member that advertises something new is alive (its channel follows it: MemberChannels)."""
        if change is not PeerChange.REMOVED:
            self.liveness.mark_up(record.agent_id)

    def _record(self, round_index: int, mine: Sequence[str], clock: RoundClock, tau_index: int | None,
                before: dict[str, LinkCounters], served_before: dict[str, float]) -> dict[str, Any]:
        links = {peer: _delta(counters, before.get(peer)) for peer, counters in self.ledger.links().items()}
        links = {peer: c for peer, c in links.items() if any(c.values())}
        totals = {key: sum(c[key] for c in links.values()) for key in _COUNTER_KEYS}
        spark = self.config.spark
        served = {k: v - served_before[k] for k, v in self.handler.served.totals().items()}
        accuracy = self.test.accuracy(self.spec, self.weights)
        release_free_memory()  # the round's buffers: the next round starts from the same footprint, rss_mb shows it
        return stamped(AGENT_ROUND, {
            "round": round_index, "agent": self.config.agent_id, "algorithm": self.config.algorithm,
            "status": "trained", "members": len(self.members()),
            "neighbours": [peer for peer in mine if peer not in self._missing],  # took part in the whole round
            "missing": dict(sorted(self._missing.items())),
            **{f"{key}_bytes": value for key, value in totals.items()},
            "links": links, "seconds": clock.seconds,
            "served_seconds": {"jacobian": served["jacobian"], "score": served["score"],
                               **({"pullback": served["pullback"]} if self.sketched else {})},
            "overlap": {"jacobian": served["overlap"]},
            "robust": {"rule": self.config.robust.rule, **self._robust.as_record(), "seconds": self._robust.seconds},
            "tau": None if tau_index is None else self.method_taus()[tau_index],
            "lambda": spark.soft_label_weight(round_index, self.config.schedule_span)
            if self.config.algorithm == "spark" else 0.0,
            "test_accuracy": accuracy,
            "rss_mb": rss_mb(), "round_peak_rss_mb": round_peak_rss_mb(),
            "peak_rss_mb": peak_rss_mb(),
        })

    @property
    def sketched(self) -> bool:
        """Whether this run's SPARK replies carry a kernel sketch (and rounds have a pull-back phase)."""
        return self.config.algorithm == "spark" and self.config.spark.kernel_dim > 0

    def method_taus(self) -> tuple[int, ...]:
        ntk = self.config.spark.ntk if self.config.algorithm == "spark" else self.config.ntk
        return ntk.evolution.taus


_FAILED = object()
_COUNTER_KEYS = ("wire_sent", "wire_received", "payload_sent", "payload_received")


def _copy(counters: LinkCounters) -> LinkCounters:
    return LinkCounters(**{k: getattr(counters, k) for k in counters.__dataclass_fields__})


def _delta(now: LinkCounters, before: LinkCounters | None) -> dict[str, int]:
    return {key: getattr(now, key) - (getattr(before, key) if before else 0) for key in _COUNTER_KEYS}


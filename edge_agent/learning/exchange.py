"""One round's neighbourhood exchange, written once for every delivery: the simulator's memory and the agent's gRPC.

`Responder` is the neighbour side (answers Jacobian requests and scores candidates on its own data);
`run_neighbourhood` is the requester side, given a `call(message, member) -> reply` that reaches each member
of S_i (itself included). NTK-DFL and SPARK differ only in their `NTKMethod`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np

from edge_agent.learning.algorithms import ntk_dfl, spark
from edge_agent.learning.messages import (
    CandidateRequest,
    CandidateScores,
    JacobianReply,
    JacobianReplyBlocks,
    JacobianRequest,
    Message,
    PullBackReply,
    PullBackRequest,
)
from edge_agent.learning.mlp import FloatArray
from edge_agent.learning.models.contract import Model, Projection
from edge_agent.learning.projection import make_projection
from edge_agent.learning.robust import (
    OFF,
    RobustConfig,
    RobustReport,
    bound_replies,
    bound_scores,
    contradicted_labels,
)


class BoardKernels(Protocol):
    """The neighbour-side kernels a board backend runs (see edge_agent.runtime.backend)."""

    def projected_jacobian(self, w: FloatArray, x: FloatArray, projection: Projection
                           ) -> tuple[FloatArray, FloatArray]: ...

    def loss_sums(self, w: FloatArray, steps: FloatArray, x: FloatArray, y: np.ndarray) -> FloatArray: ...

    @property
    def chunk(self) -> int | None:
        """Samples per kernel call (None: all at once); a reply streams in blocks of this many rows."""


class NTKMethod(Protocol):
    """What differs between NTK-DFL and SPARK inside one neighbourhood exchange."""

    @property
    def spec(self) -> Model: ...

    def answer(self, request: JacobianRequest, x: FloatArray, y: np.ndarray, sender: str) -> JacobianReply: ...

    def answer_blocks(self, request: JacobianRequest, x: FloatArray, y: np.ndarray, sender: str
                      ) -> JacobianReplyBlocks: ...

    def propose(self, replies: Sequence[JacobianReply], round_index: int, sender: str
                ) -> CandidateRequest | spark.PullBackPlan: ...

    def pull_back(self, anchor: FloatArray, request: PullBackRequest, x: FloatArray, y: np.ndarray,
                  sender: str) -> PullBackReply: ...

    def lift(self, round_index: int) -> ntk_dfl.Lift | None: ...

    def score(self, anchor: FloatArray, request: CandidateRequest, x: FloatArray, y: np.ndarray,
              sender: str) -> CandidateScores: ...

    def commit(self, anchor: FloatArray, proposal: CandidateRequest, scores: Sequence[CandidateScores],
               velocity: FloatArray, round_index: int) -> tuple[FloatArray, FloatArray, int]: ...


@dataclass(frozen=True)
class NTKDFLMethod:
    """The published method: exact Jacobians, hard labels, no momentum."""

    spec: Model
    config: ntk_dfl.NTKDFLConfig

    def answer(self, request: JacobianRequest, x: FloatArray, y: np.ndarray, sender: str) -> JacobianReply:
        return ntk_dfl.answer_jacobian_request(self.spec, request, x, y, sender)

    def answer_blocks(self, request: JacobianRequest, x: FloatArray, y: np.ndarray, sender: str
                      ) -> JacobianReplyBlocks:
        reply = self.answer(request, x, y, sender)  # a factored Jacobian: one block, made dense on the wire
        return JacobianReplyBlocks(reply, slice(0, len(reply.labels)), iter(()))

    def propose(self, replies: Sequence[JacobianReply], round_index: int, sender: str) -> CandidateRequest:
        eta = self.config.learning_rate(round_index)
        return ntk_dfl.propose_candidates(self.spec, replies, eta, self.config, sender)

    def pull_back(self, anchor: FloatArray, request: PullBackRequest, x: FloatArray, y: np.ndarray,
                  sender: str) -> PullBackReply:
        raise ValueError("NTK-DFL replies carry whole Jacobians: it never asks for a pull-back")

    def lift(self, round_index: int) -> ntk_dfl.Lift | None:
        return None

    def score(self, anchor: FloatArray, request: CandidateRequest, x: FloatArray, y: np.ndarray,
              sender: str) -> CandidateScores:
        return ntk_dfl.score_candidates(self.spec, anchor, request, x, y, sender)

    def commit(self, anchor: FloatArray, proposal: CandidateRequest, scores: Sequence[CandidateScores],
               velocity: FloatArray, round_index: int) -> tuple[FloatArray, FloatArray, int]:
        weights, index = ntk_dfl.commit_candidate(anchor, proposal, scores)
        return weights, velocity, index


class SparkMethod:
    """SPARK: projected Jacobians (P derived from seed and round), annealed soft labels, Nesterov momentum.

    With a `BoardKernels` backend (numpy, torch or ONNX Runtime), the neighbour side (projected Jacobian and
    candidate scoring) runs on it; without one, on the numpy reference path.
    """

    def __init__(self, spec: Model, config: spark.SparkConfig, rounds: int,
                 kernels: BoardKernels | None = None, keep_drawn: bool = False) -> None:
        if kernels is not None and config.projection.family != "tensorsketch":
            raise ValueError(f"board kernel backends implement the tensorsketch projection, "
                             f"not {config.projection.family}")
        self.spec, self.config, self.rounds, self.kernels = spec, config, rounds, kernels
        self.keep_drawn = keep_drawn  # a dense gaussian P_k kept whole once drawn (the simulator; not a board)
        self._projections: dict[int, Projection] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, object]:
        """Pickles (to worker processes) without the lock or cached projections; both are rebuilt there."""
        if self.kernels is not None:
            raise TypeError("a SparkMethod with a kernel backend stays in its process")
        return {"spec": self.spec, "config": self.config, "rounds": self.rounds, "keep_drawn": self.keep_drawn}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["spec"], state["config"], state["rounds"],  # type: ignore[misc]
                      keep_drawn=state["keep_drawn"])

    def projection(self, round_index: int) -> Projection:
        """P_k, derived once per round and shared by the requester and responder sides."""
        with self._lock:
            if round_index not in self._projections:
                self._projections = {round_index: make_projection(self.config.projection, self.spec, round_index,
                                                                  self.keep_drawn)}
            return self._projections[round_index]

    def answer(self, request: JacobianRequest, x: FloatArray, y: np.ndarray, sender: str) -> JacobianReply:
        projection, kernels = self.projection(request.round), self.kernels
        board = None if kernels is None else lambda w, xs: kernels.projected_jacobian(w, xs, projection)
        return spark.answer_jacobian_request(self.spec, request, x, y, sender, projection, self.config, board)

    def answer_blocks(self, request: JacobianRequest, x: FloatArray, y: np.ndarray, sender: str
                      ) -> JacobianReplyBlocks:
        """`answer`'s reply (the same bits), computed a kernel chunk at a time as it is read: the numpy
        reference path without kernels computes it in one block."""
        projection, kernels = self.projection(request.round), self.kernels
        if kernels is None:
            return spark.reply_blocks(self.spec, request, x, y, sender, projection, self.config)
        return spark.reply_blocks(self.spec, request, x, y, sender, projection, self.config,
                                  lambda w, xs: kernels.projected_jacobian(w, xs, projection), kernels.chunk)

    def score(self, anchor: FloatArray, request: CandidateRequest, x: FloatArray, y: np.ndarray,
              sender: str) -> CandidateScores:
        lift = self.projection(request.round).lift
        if self.kernels is None:
            return ntk_dfl.score_candidates(self.spec, anchor, request, x, y, sender, lift)
        return CandidateScores(sender, request.round, self.kernels.loss_sums(anchor, lift(request.updates), x, y))

    def pull_back(self, anchor: FloatArray, request: PullBackRequest, x: FloatArray, y: np.ndarray,
                  sender: str) -> PullBackReply:
        """The kernel sketch's second half: our rows' residual sums pulled back through Jt at the anchor."""
        if not self.config.kernel_dim:
            raise ValueError("this run's replies carry the projected Jacobian: it never asks for a pull-back")
        projection, kernels = self.projection(request.round), self.kernels
        if kernels is None:
            return spark.pull_back(self.spec, anchor, request, x, y, sender, projection, self.config)
        return spark.pull_back(self.spec, anchor, request, x, y, sender, projection, self.config,
                               lambda w, xs: kernels.projected_jacobian(w, xs, projection), kernels.chunk)

    def propose(self, replies: Sequence[JacobianReply], round_index: int, sender: str
                ) -> CandidateRequest | spark.PullBackPlan:
        eta = self.config.ntk.learning_rate(round_index)
        soft_weight = self.config.soft_label_weight(round_index, self.rounds)
        return spark.propose_candidates(self.spec, replies, eta, soft_weight, self.config, sender)

    def lift(self, round_index: int) -> ntk_dfl.Lift | None:
        return self.projection(round_index).lift

    def commit(self, anchor: FloatArray, proposal: CandidateRequest, scores: Sequence[CandidateScores],
               velocity: FloatArray, round_index: int) -> tuple[FloatArray, FloatArray, int]:
        beta = self.config.momentum_beta(round_index, self.rounds)
        return spark.commit_with_momentum(anchor, proposal, scores, self.projection(round_index), velocity, beta)


class Responder:
    """The neighbour side for one client's data: answers a requester's Jacobian request, then scores its candidates."""

    def __init__(self, client_id: str, x: FloatArray, y: np.ndarray, method: NTKMethod) -> None:
        self.client_id, self.x, self.y, self.method = client_id, x, y, method
        self._anchors: dict[tuple[str, int], FloatArray] = {}  # (requester, round) -> wbar_requester
        self._lock = threading.Lock()

    def handle(self, message: Message) -> Message | None:
        """The reply to a request, or a ValueError for a message that is out of protocol."""
        if isinstance(message, JacobianRequest):
            self._remember(message)
            return self.method.answer(message, self.x, self.y, self.client_id)
        if isinstance(message, PullBackRequest):
            with self._lock:
                anchor = self._anchors.get((message.sender, message.round))
            if anchor is None:
                raise ValueError(f"a pull-back from {message.sender} for round {message.round} "
                                 "without a Jacobian request")
            return self.method.pull_back(anchor, message, self.x, self.y, self.client_id)
        if isinstance(message, CandidateRequest):
            with self._lock:  # kept: a requester whose robust rule refused a reply asks again without it
                anchor = self._anchors.get((message.sender, message.round))
            if anchor is None:
                raise ValueError(f"candidates from {message.sender} for round {message.round} "
                                 "without a Jacobian request")
            return self.method.score(anchor, message, self.x, self.y, self.client_id)
        raise ValueError(f"a responder does not answer {type(message).__name__}")

    def handle_in_blocks(self, message: Message) -> Message | JacobianReplyBlocks | None:
        """`handle`, except that a Jacobian reply comes as blocks still to be computed (see JacobianReplyBlocks)."""
        if not isinstance(message, JacobianRequest):
            return self.handle(message)
        self._remember(message)
        return self.method.answer_blocks(message, self.x, self.y, self.client_id)

    def _remember(self, request: JacobianRequest) -> None:
        """Keep wbar_requester for the candidates that follow (and forget rounds long gone)."""
        with self._lock:
            self._anchors[(request.sender, request.round)] = request.weights
            for key in [k for k in self._anchors if k[1] < request.round - 1]:
                del self._anchors[key]


Call = Callable[[Message, str], Message | None]
"""Deliver a message to a member of S_i and return its reply, or None if the member could not be reached."""
Gather = Callable[[Callable[[str], Message | None], Sequence[str]], list[Message | None]]
"""Ask every member (one after another, or concurrently) and return the answers in member order."""
T = TypeVar("T")


@dataclass(frozen=True)
class NeighbourhoodResult:
    """The requester's committed weights and momentum, the index of the tau it chose, what its robust rule did, and
    the members whose replies their own scores contradicted (robust.Strikes counts them)."""

    weights: FloatArray
    velocity: FloatArray
    tau_index: int
    robust: RobustReport = field(default_factory=RobustReport)
    contradicted: frozenset[str] = frozenset()


def run_neighbourhood(method: NTKMethod, requester: str, anchor: FloatArray, velocity: FloatArray,
                      members: Sequence[str], call: Call, round_index: int, gather: Gather | None = None,
                      on_phase: Callable[[str, float], None] | None = None,
                      robust: RobustConfig = OFF) -> NeighbourhoodResult:
    """SPEC 3/4 steps 2-7 for requester i: Jacobians from S_i, evolution, candidates scored by S_i, commit.

    With SPARK's kernel sketch the evolution's residual sums go back to the members, whose pulled-back sums make the
    candidates (the pullback phase). A member that cannot be reached (call returns None) is left out of the rest
    of the exchange. `on_phase(name, seconds)` hears how long the jacobian, evolve, pullback and score phases took.
    `robust` bounds what each member's Jacobian reply and scores can do (edge_agent.learning.robust).
    """
    fan_out = gather or _in_order
    clock = time.perf_counter()
    request = JacobianRequest(requester, round_index, anchor)
    answered = _answers(fan_out(lambda m: call(request, m), members), members, JacobianReply)
    answered, report = bound_replies(answered, requester, method.spec.num_classes, robust)
    clock = _lap(on_phase, "jacobian", clock)
    caught: set[str] = set()
    while True:  # once, unless the robust rule finds a reply its sender's scores contradict: then without it
        answered, proposal, scored, clock = _evolve_and_score(method, requester, round_index, answered, call,
                                                              fan_out, on_phase, clock)
        contradicted = contradicted_labels(answered, scored, proposal.updates, requester, robust)
        if not contradicted:
            break
        clock = _lap(on_phase, "score", clock)
        report.refused.update(contradicted)
        caught.update(contradicted)
        answered = {member: reply for member, reply in answered.items() if member not in contradicted}
    samples = {member: answered[member].represented_samples for member in scored}
    chosen, refused = bound_scores(scored, samples, requester, len(proposal.updates), robust)
    report.merge(refused)
    weights, new_velocity, index = method.commit(anchor, proposal, chosen, velocity, round_index)
    _lap(on_phase, "score", clock)
    return NeighbourhoodResult(weights, new_velocity, index, report, frozenset(caught))


def _evolve_and_score(method: NTKMethod, requester: str, round_index: int, answered: dict[str, JacobianReply],
                      call: Call, fan_out: Gather, on_phase: Callable[[str, float], None] | None, clock: float
                      ) -> tuple[dict[str, JacobianReply], CandidateRequest, dict[str, CandidateScores], float]:
    """Evolution on the replies, the pull-back with a kernel sketch, and the candidates scored by the members who
    answered: the replies still in the round, the candidates, their scores and the phase clock."""
    evolved = method.propose(list(answered.values()), round_index, requester)
    clock = _lap(on_phase, "evolve", clock)
    if isinstance(evolved, spark.PullBackPlan):
        plan = evolved
        pulled = _answers(fan_out(lambda m: call(plan.request_for(m), m), list(answered)), list(answered),
                          PullBackReply)
        answered = {member: answered[member] for member in pulled}
        proposal = plan.candidates(list(pulled.values()))
        clock = _lap(on_phase, "pullback", clock)
    else:
        proposal = evolved
    scored = _answers(fan_out(lambda m: call(proposal, m), list(answered)), list(answered), CandidateScores)
    return answered, proposal, scored, clock


def _lap(on_phase: Callable[[str, float], None] | None, name: str, since: float) -> float:
    now = time.perf_counter()
    if on_phase is not None:
        on_phase(name, now - since)
    return now


def _in_order(ask: Callable[[str], Message | None], members: Sequence[str]) -> list[Message | None]:
    return [ask(member) for member in members]


def _answers(replies: list[Message | None], members: Sequence[str], kind: type[T]) -> dict[str, T]:
    answered: dict[str, T] = {}
    for member, reply in zip(members, replies, strict=True):
        if reply is None:
            continue
        if not isinstance(reply, kind):
            raise ValueError(f"{member} answered with {type(reply).__name__}, expected {kind.__name__}")
        answered[member] = reply
    if not answered:
        raise ValueError("no member of the neighbourhood answered")
    return answered

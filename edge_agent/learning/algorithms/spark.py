"""SPARK (SPEC section 4): NTK-DFL with projected Jacobians, an annealed soft-label target and Nesterov momentum.

Every change has a switch; with the identity projection and both others off, a round equals NTK-DFL's.
Tau is chosen by scoring wbar + P dz(tau) (neighbours cannot know the requester's momentum); momentum is
applied when the chosen update is committed. Ours, beyond the paper: a neighbour may reply with only the rows
of its samples that hold most of its squared residual (`residual_share`), scaled by all of its samples, plus a
random draw from the rest (`tail_rate`) whose rows stand for all of the rest. And with a kernel sketch
(`kernel_dim` m' > 0) a neighbour replies with Jt Q (N, C, m') instead of Jt (N, C, m): the requester evolves under
that sketched kernel, sends each neighbour the residual sums of its rows, and the neighbour pulls them back through
its own Jt, so the update keeps all m dimensions while a reply shrinks by m / m'.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np

from edge_agent.learning.algorithms.ntk_dfl import NTKDFLConfig, best_candidate
from edge_agent.learning.codec import CodecConfig
from edge_agent.learning.jacobian import DenseJacobian, StackedJacobian
from edge_agent.learning.messages import (
    FP32,
    CandidateRequest,
    CandidateScores,
    JacobianReply,
    JacobianReplyBlocks,
    JacobianRequest,
    PullBackReply,
    PullBackRequest,
    WireCodecs,
)
from edge_agent.learning.mlp import FloatArray, one_hot, softmax
from edge_agent.learning.models.contract import Model, Projection
from edge_agent.learning.ntk import candidate_updates, weighted_residual_sums
from edge_agent.learning.projection import ProjectionConfig, kernel_sketch

# Named sets of the method flags, by their option names (edge_agent/cli/options.py); a flag given on the command
# line or in a config file wins over its preset's value. `published`: SPARK as published (SPEC section 4); `lean`:
# the wire measured on the frontier (bench/results/frontier.md).
PRESETS: Mapping[str, Mapping[str, object]] = MappingProxyType({
    "published": MappingProxyType({}),
    "lean": MappingProxyType({"kernel_dim": 32, "precision": "int4", "pullback_precision": "int8",
                              "residual_share": 0.9, "tail_rate": 0.25, "weights_precision": "int4",
                              "candidates_precision": "fp16"}),
})


def check_row_selection(residual_share: float, tail_rate: float) -> None:
    """Refuse a residual share outside (0, 1] or a tail rate outside [0, 1]; the message starts with the key."""
    if not 0.0 < residual_share <= 1.0:
        raise ValueError(f"residual_share: must lie in (0, 1], got {residual_share}")
    if not 0.0 <= tail_rate <= 1.0:
        raise ValueError(f"tail_rate: must lie in [0, 1], got {tail_rate}")


@dataclass(frozen=True)
class SparkConfig:
    """SPARK's switches and constants; the defaults are ours (SPEC section 4 names them flags)."""

    ntk: NTKDFLConfig = field(default_factory=NTKDFLConfig)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    codec: CodecConfig = field(default_factory=CodecConfig)  # the projected Jacobians' on the wire
    candidates_codec: CodecConfig = field(default_factory=CodecConfig)  # the candidate updates' (in R^m) on the wire
    pullback_codec: CodecConfig = field(default_factory=CodecConfig)  # residual sums and pulled-back sums' on the wire
    distill: bool = True
    stage_lambdas: tuple[float, ...] = (0.0, 0.3, 0.5)
    temperature: float = 1.0
    momentum: bool = True
    beta: float = 0.9
    momentum_from_stage: int = 1
    residual_share: float = 1.0  # of its squared residual a neighbour's Jacobian rows hold (1: every row)
    tail_rate: float = 0.0  # of the other rows, the share still sent, drawn at random and weighted
    schedule_rounds: int = 0  # rounds the stages are spread over (0: the run's); later rounds stay in the last
    kernel_dim: int = 0  # m' of the kernel sketch a reply carries (0: the reply carries Jt, as published)
    # Whether rounds past the schedule keep momentum. A service (`run --rounds 0`) turns it off: momentum on for good
    # keeps carrying the first stages' large steps into rounds whose own steps are small, and accuracy drifts down.
    momentum_after_schedule: bool = True

    def __post_init__(self) -> None:
        if not self.stage_lambdas or not all(0.0 <= lam <= 1.0 for lam in self.stage_lambdas):
            raise ValueError(f"stage lambdas must lie in [0, 1], got {self.stage_lambdas}")
        if self.temperature <= 0:
            raise ValueError(f"soft-label temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.beta < 1.0:
            raise ValueError(f"momentum beta must lie in [0, 1), got {self.beta}")
        check_row_selection(self.residual_share, self.tail_rate)
        if self.schedule_rounds < 0:
            raise ValueError(f"schedule rounds must be >= 0 (0: the run's rounds), got {self.schedule_rounds}")
        if not 0 <= self.kernel_dim <= self.projection.dim:
            raise ValueError(f"kernel sketch dimension must lie in 0..{self.projection.dim} (the projection's m; "
                             f"0: no sketch), got {self.kernel_dim}")

    def stage(self, round_index: int, rounds: int) -> int:
        """Which of the equal stages over `schedule_rounds` (0: the run's `rounds`) the round falls in."""
        span = self.schedule_rounds or rounds
        return min(len(self.stage_lambdas) - 1, round_index * len(self.stage_lambdas) // max(span, 1))

    def soft_label_weight(self, round_index: int, rounds: int) -> float:
        """lambda_k of the annealed target (0 when the regulariser is switched off)."""
        return self.stage_lambdas[self.stage(round_index, rounds)] if self.distill else 0.0

    def momentum_beta(self, round_index: int, rounds: int) -> float:
        """beta_k: 0 until momentum is switched on (and past the schedule, unless momentum_after_schedule)."""
        on = self.momentum and self.stage(round_index, rounds) >= self.momentum_from_stage
        if round_index >= (self.schedule_rounds or rounds) and not self.momentum_after_schedule:
            on = False
        return self.beta if on else 0.0


def wire_codecs_for(algorithm: str, config: SparkConfig, weights: CodecConfig) -> WireCodecs:
    """What a run of `algorithm` puts on the wire: SPARK's Jacobians and candidate updates in its codecs (NTK-DFL's
    in fp32), the weights in `weights` whatever the algorithm."""
    if algorithm != "spark":
        return WireCodecs(FP32, weights)
    return WireCodecs(config.codec, weights, config.candidates_codec, config.pullback_codec)


def residual_rows(logits: FloatArray, labels: np.ndarray, share: float) -> np.ndarray:
    """Indices (ascending) of the fewest samples whose squared residuals |softmax(f0) - Y|^2 hold `share` of the
    total. The soft-label target only scales the residual by (1 - lambda), so the hard labels rank the rows."""
    probabilities = softmax(logits.astype(np.float64))
    squared = np.sum((probabilities - one_hot(labels, probabilities.shape[1])) ** 2, axis=1)
    order = np.argsort(-squared, kind="stable")
    held = np.cumsum(squared[order])
    count = min(len(order), int(np.searchsorted(held, share * held[-1])) + 1)
    return np.sort(order[:count])


ProjectedJacobian = Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]
"""(w, x) -> (J P (N, C, m), logits (N, C)): a kernel backend's neighbour-side Jacobian."""


@dataclass(frozen=True)
class ReplyRows:
    """The samples a neighbour's reply carries when it sends only some: `rows` of its data, of which the last
    `sampled` are a random draw standing for every sample not in the rows before them, out of `samples`."""

    rows: np.ndarray
    samples: int
    sampled: int


def rows_to_send(spec: Model, weights: FloatArray, x: FloatArray, y: np.ndarray, config: SparkConfig,
                 draw: Sequence[int]) -> ReplyRows | None:
    """Which rows to answer with at the requester's `weights`: None for every row; else those that hold
    `residual_share` of the squared residual, then `tail_rate` of the others drawn with the seed `draw`."""
    if config.residual_share >= 1.0:
        return None
    top = residual_rows(spec.logits(weights, x), y, config.residual_share)
    rest = np.setdiff1d(np.arange(len(y)), top)
    count = min(len(rest), math.ceil(config.tail_rate * len(rest)))
    tail = np.sort(np.random.default_rng(list(draw)).choice(rest, count, replace=False))
    if len(top) + count == len(y):
        return None
    return ReplyRows(np.concatenate([top, tail]), len(y), count)


def answer_jacobian_request(spec: Model, request: JacobianRequest, x: FloatArray, y: np.ndarray, sender: str,
                            projection: Projection, config: SparkConfig | None = None,
                            projected_jacobian: ProjectedJacobian | None = None) -> JacobianReply:
    """Neighbour side: J P of our data at the requester's average (the wire's codec is applied in transit),
    for the rows `config` selects (every row by default), computed by `projected_jacobian` (default: numpy)."""
    return reply_blocks(spec, request, x, y, sender, projection, config, projected_jacobian).whole()


def reply_blocks(spec: Model, request: JacobianRequest, x: FloatArray, y: np.ndarray, sender: str,
                 projection: Projection, config: SparkConfig | None = None,
                 projected_jacobian: ProjectedJacobian | None = None,
                 block_rows: int | None = None) -> JacobianReplyBlocks:
    """`answer_jacobian_request`'s reply, computed `block_rows` rows at a time (None: in one block), the first block
    now and the others as the stream is read. Each block is computed exactly as `rows_in_chunks` computes a chunk
    of that many rows, so with the kernels' own chunk as `block_rows` the reply is the same bits as in one call.
    With a kernel sketch (config.kernel_dim > 0) each block is sent as Jt Q."""
    chosen = rows_to_send(spec, request.weights, x, y, config, reply_draw(config, request.round, request.sender,
                                                                          sender)) if config else None
    if chosen is not None:
        x, y = x[chosen.rows], y[chosen.rows]
    sketch = (kernel_sketch(projection.dim, config.kernel_dim, config.projection.seed, request.round)
              if config is not None and config.kernel_dim else None)
    compute = _projected_rows(spec, request.weights, x, projection, projected_jacobian)

    def sent(rows: slice) -> tuple[FloatArray, FloatArray]:  # (n, C, m or m'), (n, C)
        projected, logits = compute(rows)
        return (projected if sketch is None else projected @ sketch), logits
    blocks = _blocks(len(x), block_rows)
    projected, logits = sent(blocks[0])
    if len(blocks) > 1:  # the whole arrays, filled block by block as rows_in_chunks fills them
        first_projected, first_logits = projected, logits
        projected = np.empty((len(x), *first_projected.shape[1:]), dtype=first_projected.dtype)
        logits = np.empty((len(x), *first_logits.shape[1:]), dtype=first_logits.dtype)
        projected[blocks[0]], logits[blocks[0]] = first_projected, first_logits

    def rest() -> Iterator[slice]:
        for rows in blocks[1:]:
            projected[rows], logits[rows] = sent(rows)
            yield rows
    reply = JacobianReply(sender, request.round, DenseJacobian(projected), logits, y)
    if chosen is not None:
        reply = replace(reply, samples=chosen.samples, sampled_rows=chosen.sampled)
    return JacobianReplyBlocks(reply, blocks[0], rest())


def _projected_rows(spec: Model, weights: FloatArray, x: FloatArray, projection: Projection,
                    projected_jacobian: ProjectedJacobian | None) -> Callable[[slice], tuple[FloatArray, FloatArray]]:
    """rows -> (J P (n, C, m), logits (n, C)) of those rows of x at `weights`, on the kernels given (default: the
    model's own)."""
    def compute(rows: slice) -> tuple[FloatArray, FloatArray]:
        if projected_jacobian is None:
            return spec.projected_jacobian(weights, x[rows], projection)
        return projected_jacobian(weights, x[rows])
    return compute


def _blocks(count: int, block_rows: int | None) -> list[slice]:
    """Consecutive row slices of at most `block_rows` (None: one block); one empty block for no rows."""
    step = count if block_rows is None or count <= block_rows else block_rows
    return [slice(start, min(start + step, count)) for start in range(0, max(count, 1), max(step, 1))]


def reply_draw(config: SparkConfig, round_index: int, requester: str, sender: str) -> tuple[int, ...]:
    """The seed of a reply's random rows: the run's seed, the round and both ends, so agents and simulator agree."""
    return (config.projection.seed, round_index, zlib.crc32(requester.encode()), zlib.crc32(sender.encode()))


def pull_back(spec: Model, anchor: FloatArray, request: PullBackRequest, x: FloatArray, y: np.ndarray,
              sender: str, projection: Projection, config: SparkConfig,
              projected_jacobian: ProjectedJacobian | None = None, block_rows: int | None = None) -> PullBackReply:
    """Neighbour side of a kernel-sketched round: sum_c Jt_c^T R_c (T, m) over the rows this neighbour replied with
    at the requester's `anchor`, Jt computed again `block_rows` rows at a time (the reply sent only Jt Q)."""
    chosen = rows_to_send(spec, anchor, x, y, config, reply_draw(config, request.round, request.sender, sender))
    if chosen is not None:
        x = x[chosen.rows]
    residuals = request.residuals
    if residuals.ndim != 3 or residuals.shape[1:] != (len(x), spec.num_classes):
        raise ValueError(f"residuals of shape {residuals.shape} do not fit the {len(x)} rows this neighbour sent")
    compute = _projected_rows(spec, anchor, x, projection, projected_jacobian)
    pulled = np.zeros((len(residuals), projection.dim), dtype=np.float64)
    for rows in _blocks(len(x), block_rows):
        projected, _ = compute(rows)  # (n, C, m)
        part = residuals[:, rows, :].reshape(len(residuals), -1).astype(np.float32)
        pulled += part @ projected.reshape(part.shape[1], -1)
    return PullBackReply(sender, request.round, pulled.astype(np.float32))


def soft_targets(logits: FloatArray, labels: np.ndarray, weight: float, temperature: float,
                 num_classes: int) -> FloatArray:
    """Yt = (1 - lambda) Y + lambda softmax(f0 / T): (N, C) float64."""
    hard = one_hot(labels, num_classes)
    if weight == 0.0:
        return hard
    return (1.0 - weight) * hard + weight * softmax(logits.astype(np.float64) / temperature)


@dataclass(frozen=True)
class PullBackPlan:
    """A requester's evolved neighbourhood awaiting its pull-back (kernel sketch): each member's weighted residual
    sums, and the scale -(eta/N) that turns the members' pulled-back sums into the candidate updates."""

    sender: str
    round: int
    residuals: dict[str, FloatArray]  # member -> (T, N_j, C) float32
    scale: float

    def request_for(self, member: str) -> PullBackRequest:
        return PullBackRequest(self.sender, self.round, self.residuals[member])

    def candidates(self, pulled: Sequence[PullBackReply]) -> CandidateRequest:
        """The candidate updates dz(tau) = -(eta/N) sum over the members that answered of their pulled-back sums."""
        total = np.sum([reply.pulled.astype(np.float64) for reply in pulled], axis=0)
        return CandidateRequest(self.sender, self.round, (self.scale * total).astype(np.float32))


def propose_candidates(spec: Model, replies: Sequence[JacobianReply], eta: float, soft_weight: float,
                       config: SparkConfig, sender: str) -> CandidateRequest | PullBackPlan:
    """Requester side: evolve under the soft target with the projected kernel; updates dz live in R^m. With a kernel
    sketch the replies carry Jt Q, and the evolution's residual sums go back to the members to be pulled back."""
    parts = tuple(reply.jacobian for reply in replies if isinstance(reply.jacobian, DenseJacobian))
    if len(parts) != len(replies):
        raise TypeError("SPARK expects projected (dense) Jacobians in its replies")
    logits = np.concatenate([reply.logits for reply in replies]).astype(np.float64)
    labels = np.concatenate([reply.labels for reply in replies])
    targets = soft_targets(logits, labels, soft_weight, config.temperature, spec.num_classes)
    samples = sum(reply.represented_samples for reply in replies)
    weighted = any(reply.sampled_rows for reply in replies)
    row_weights = np.concatenate([reply.row_weights() for reply in replies]) if weighted else None
    if config.kernel_dim:
        sums = weighted_residual_sums(StackedJacobian(parts).kernel(), logits, targets, eta, config.ntk.evolution,
                                      samples, row_weights).astype(np.float32)
        edges = np.cumsum([0] + [len(reply.labels) for reply in replies]).tolist()
        by_member = {reply.sender: sums[:, start:stop] for reply, start, stop in zip(replies, edges, edges[1:],
                                                                                     strict=False)}
        return PullBackPlan(sender, replies[0].round, by_member, -eta / samples)
    updates = candidate_updates(StackedJacobian(parts), logits, targets, eta, config.ntk.evolution, samples,
                                row_weights)
    return CandidateRequest(sender, replies[0].round, updates)


def commit_with_momentum(anchor: FloatArray, request: CandidateRequest, scores: Sequence[CandidateScores],
                         projection: Projection, velocity: FloatArray, beta: float
                         ) -> tuple[FloatArray, FloatArray, int]:
    """u <- beta u + dw;  w <- wbar + dw + beta u, with dw = P dz(tau*). Returns (w, u, index of tau*)."""
    index = best_candidate(scores)
    step = projection.lift(request.updates[index]).astype(np.float32)
    new_velocity = (beta * velocity + step).astype(np.float32)
    return (anchor + step + beta * new_velocity).astype(np.float32), new_velocity, index

"""NTK-DFL (SPEC section 3) as pure functions: each side of each exchange in a round is one function.

Requester i: average -> JacobianRequest -> (replies) -> CandidateRequest -> (scores) -> commit.
Neighbour j: answer_jacobian_request, score_candidates. The simulator and the agent call the same functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from edge_agent.learning.jacobian import (
    DenseJacobian,
    FactoredJacobian,
    JacobianOperator,
    stack_jacobians,
)
from edge_agent.learning.messages import (
    CandidateRequest,
    CandidateScores,
    JacobianReply,
    JacobianRequest,
    WeightsMessage,
)
from edge_agent.learning.mlp import FloatArray, cross_entropy_sum, one_hot
from edge_agent.learning.models.contract import Model
from edge_agent.learning.ntk import EvolutionConfig, candidate_updates, choose_candidate

Lift = Callable[[FloatArray], FloatArray]  # maps (T, p) updates to (T, d) weight steps


@dataclass(frozen=True)
class NTKDFLConfig:
    """Learning-rate schedule eta_k = eta0 * exp(-gamma * k) and how the evolution is solved."""

    eta0: float = 0.01
    gamma: float = 0.0  # constant eta, as the reference code (SPEC section 3); 0.07 was the first SPEC's decay
    evolution: EvolutionConfig = field(default_factory=EvolutionConfig)

    def __post_init__(self) -> None:
        if self.eta0 <= 0 or self.gamma < 0:
            raise ValueError(f"need eta0 > 0 and gamma >= 0, got eta0={self.eta0}, gamma={self.gamma}")

    def learning_rate(self, round_index: int) -> float:
        return self.eta0 * math.exp(-self.gamma * round_index)


def average_weights(own: FloatArray, received: Sequence[WeightsMessage]) -> FloatArray:
    """wbar_i: the uniform mean of the client's own weights and those its neighbours sent."""
    stack = np.stack([own, *(message.weights for message in received)])
    return stack.mean(axis=0, dtype=np.float64).astype(np.float32)


def answer_jacobian_request(spec: Model, request: JacobianRequest, x: FloatArray, y: np.ndarray,
                            sender: str) -> JacobianReply:
    """Neighbour side: the exact Jacobian of our data at the requester's average, with logits and labels."""
    jacobian, logits = spec.jacobian(request.weights, x)
    return JacobianReply(sender, request.round, jacobian, logits, y)


def propose_candidates(spec: Model, replies: Sequence[JacobianReply], eta: float, config: NTKDFLConfig,
                       sender: str) -> CandidateRequest:
    """Requester side: evolve the neighbourhood in function space and return one update per candidate tau."""
    jacobian = stack_replies(replies)
    logits = np.concatenate([reply.logits for reply in replies]).astype(np.float64)
    targets = one_hot(np.concatenate([reply.labels for reply in replies]), spec.num_classes)
    updates = candidate_updates(jacobian, logits, targets, eta, config.evolution)
    return CandidateRequest(sender, replies[0].round, updates)


def score_candidates(spec: Model, anchor: FloatArray, request: CandidateRequest, x: FloatArray,
                     y: np.ndarray, sender: str, lift: Lift | None = None) -> CandidateScores:
    """Neighbour side: summed cross-entropy on our data of each candidate anchor + lift(update)."""
    steps = request.updates if lift is None else lift(request.updates)
    sums = np.array([cross_entropy_sum(spec.logits(anchor + step, x), y) for step in steps])
    return CandidateScores(sender, request.round, sums)


def best_candidate(scores: Sequence[CandidateScores]) -> int:
    """Requester side: index of the candidate with the lowest summed loss over the neighbourhood."""
    return choose_candidate(np.sum([score.loss_sums for score in scores], axis=0))


def commit_candidate(anchor: FloatArray, request: CandidateRequest,
                     scores: Sequence[CandidateScores]) -> tuple[FloatArray, int]:
    """Requester side: the best candidate's weights and its index."""
    index = best_candidate(scores)
    return (anchor + request.updates[index]).astype(np.float32), index


def stack_replies(replies: Sequence[JacobianReply]) -> JacobianOperator:
    """The neighbourhood's stacked Jacobian: exact factors when every reply has them, else dense (off the wire)."""
    parts = [reply.jacobian for reply in replies]
    factored = [part for part in parts if isinstance(part, FactoredJacobian)]
    if len(factored) == len(parts):
        return stack_jacobians(factored)
    dense = [part.dense() if isinstance(part, FactoredJacobian) else part for part in parts]
    if not all(isinstance(part, DenseJacobian) for part in dense):
        raise TypeError("NTK-DFL replies must carry Jacobians")
    return DenseJacobian(np.concatenate([part.values for part in dense if isinstance(part, DenseJacobian)]))

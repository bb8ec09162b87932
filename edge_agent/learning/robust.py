"""Robust aggregation (`--robust`): what one neighbour sends can move an honest agent's round only so far.

Pure functions over what a neighbourhood sent, called by the agent and the simulator alike, so the two stay equal.
Every bound is a radius around the agent's own value, scaled by the second-farthest neighbour (one neighbour of a
neighbourhood may lie; the others set the scale), so a fleet of honest boards is left exactly as it was.

- Weights, every algorithm. tau = RADIUS x the second-largest distance of a neighbour's weights from our own (with
  a single neighbour there is nobody to set the scale: tau = FALLBACK x our own weights' norm; and it is never
  below FLOOR x that norm, since neighbours that agree to the last bits, as in a fully connected fleet, set none).
  `screen`: a neighbour beyond tau is left out of the round: its weights, Jacobians and scores (comparative
  elimination, as in Gupta, Doan & Vaidya, "Byzantine fault-tolerance in decentralized optimization under
  2f-redundancy", 2021, with a radius instead of a fixed count, so an honest fleet loses nobody).
  `clip`: its weights enter the mean as own + clip(w_j - own, tau), the self-centred clipping of ClippedGossip (He,
  Karimireddy & Jaggi, 2022), and it stays in the round. Measured in bench/results/robust.md: clipping still lets a
  poisoner move its neighbours by tau / (kappa + 1) a round in a direction it picks; screening does not.
  A neighbour within tau counts as in the uniform mean, to the bit.
- Jacobian replies, NTK-DFL and SPARK. Each row (sample) of a neighbour's Jacobian is scaled down to at most
  ROW_RADIUS x the largest row norm of the requester's own reply at the same weights, so no reply dominates the
  kernel; a reply whose labels are not classes is refused.
- Candidate scores, NTK-DFL and SPARK. Tau is chosen by the summed loss as published, but a neighbour's loss curve
  (its mean loss per sample, less its mean: what the choice sees) is scaled down to at most SCORE_RADIUS x the
  largest of our own curve and the second-largest neighbour's, so no neighbour picks tau alone. Scores no honest
  member sends (a negative loss, a wrong count) are refused.
- A reply against its sender's scores, NTK-DFL and SPARK. The loss a reply predicts for the first candidate and the
  loss its sender reports for it must agree up to LABEL_RADIUS x the honest gap (`contradicted_labels`): a member
  that flips its reply's labels but scores on its real ones is refused, and the round runs again without it.
  Such a flip fades from the check as the fleet stops fitting it, so a member contradicted in STRIKES rounds is
  left out of every later round of the run (`Strikes`): its weights, replies and scores.

`off` is the method as published: the uniform mean, no bound on replies, the summed scores.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, get_args

import numpy as np

from edge_agent.learning.algorithms.ntk_dfl import average_weights
from edge_agent.learning.jacobian import DenseJacobian, FactoredJacobian
from edge_agent.learning.messages import CandidateScores, JacobianReply, WeightsMessage
from edge_agent.learning.mlp import FloatArray, log_softmax

Rule = Literal["off", "clip", "screen"]
RULES: tuple[Rule, ...] = get_args(Rule)
DEFAULT_RULE: Rule = "screen"
TOLERATED = 1  # neighbours of one neighbourhood that may lie: the scale is set by the one after them
RADIUS = 3.0  # tau, in units of the second-largest neighbour distance (honest smoke fleets: at most 1.6)
FALLBACK = 2.0  # tau with a single neighbour, in units of our own weights' norm (honest: at most 0.64)
FLOOR = 0.25  # tau is never below this, in units of our own norm: neighbours that agree closely set no scale
ROW_RADIUS = 2.0  # a neighbour's Jacobian row, in units of the largest row norm of our own reply
SCORE_RADIUS = 1.0  # a neighbour's loss curve, in units of the larger of ours and the second-largest neighbour's
LABEL_RADIUS = 4.0  # a neighbour's gap between the loss its reply predicts and the one it reports, in units of ours
LABEL_FLOOR = 0.4  # ... and never below this many nats a sample (honest gaps of the smoke and edge settings: 0.26)
STRIKES = 2  # rounds in which a member's reply is contradicted by its own scores before it is left out for good


@dataclass(frozen=True)
class RobustConfig:
    """Which rule bounds the neighbours; `off` is the published method."""

    rule: Rule = DEFAULT_RULE

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"robust rule {self.rule!r} is not one of {', '.join(RULES)}")

    @property
    def on(self) -> bool:
        return self.rule != "off"


OFF = RobustConfig("off")


@dataclass
class RobustReport:
    """What a round's rule did to each neighbour: per message kind (`weights`, `jacobian`, `scores`), the factor
    its contribution was scaled by (a Jacobian's: its smallest row factor), the messages refused, with why, and the
    seconds the rule took."""

    clipped: dict[str, dict[str, float]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def clip(self, peer: str, kind: str, factor: float) -> None:
        self.clipped.setdefault(peer, {})[kind] = factor

    def merge(self, other: RobustReport) -> None:
        for peer, kinds in other.clipped.items():
            self.clipped.setdefault(peer, {}).update(kinds)
        self.refused.update(other.refused)
        self.seconds += other.seconds

    def as_record(self) -> dict[str, dict[str, dict[str, float]] | dict[str, str]]:
        """The round record's `clipped` and `refused` (docs/records.md), sorted by neighbour."""
        return {"clipped": {peer: dict(sorted(kinds.items())) for peer, kinds in sorted(self.clipped.items())},
                "refused": dict(sorted(self.refused.items()))}


@dataclass
class Strikes:
    """One agent's count, per neighbour, of the rounds in which `contradicted_labels` refused it; a neighbour with
    STRIKES of them is barred from the rest of the run. A flipped reply is refused while the fleet's model tells the
    flipped labels from the real ones, and slips through once it no longer does (bench/results/robust.md)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, members: Iterable[str]) -> None:
        for member in members:
            self.counts[member] = self.counts.get(member, 0) + 1

    def barred(self) -> frozenset[str]:
        return frozenset(member for member, count in self.counts.items() if count >= STRIKES)


BARRED_WHY = (f"barred for the rest of the run: its Jacobian replies were contradicted by its own scores in {STRIKES} "
              "rounds")


def robust_average(own: FloatArray, received: Sequence[WeightsMessage], config: RobustConfig,
                   barred: frozenset[str] = frozenset()) -> tuple[FloatArray, RobustReport]:
    """wbar_i under `config`: the uniform mean with `off`; else screened or clipped as above, with the `barred`
    neighbours (`Strikes.barred`) refused before anything else. A neighbour the report refuses takes no further part
    in the round."""
    report, started = RobustReport(), time.perf_counter()
    if config.on:
        report.refused.update(dict.fromkeys(sorted(m.sender for m in received if m.sender in barred), BARRED_WHY))
        received = [message for message in received if message.sender not in barred]
    if not config.on or not received:
        return average_weights(own, received), report
    base = own.astype(np.float64)
    offsets = [message.weights.astype(np.float64) - base for message in received]
    distances = [float(np.linalg.norm(offset)) for offset in offsets]
    tau = radius(distances, float(np.linalg.norm(base)))
    kept: list[FloatArray] = []
    for message, offset, distance in zip(received, offsets, distances, strict=True):
        if distance <= tau:
            kept.append(message.weights)
        elif config.rule == "screen":
            report.refused[message.sender] = f"weights {distance:.3g} from ours, beyond the radius {tau:.3g}"
        else:
            report.clip(message.sender, "weights", tau / distance)
            kept.append((base + (tau / distance) * offset).astype(np.float32))
    anchor = np.stack([own, *kept]).mean(axis=0, dtype=np.float64).astype(np.float32)  # average_weights' sum
    report.seconds = time.perf_counter() - started
    return anchor, report


def radius(distances: Sequence[float], own_norm: float) -> float:
    """tau: RADIUS x the second-largest of `distances` but at least FLOOR x our own norm, or FALLBACK x our own
    norm with a single one."""
    if len(distances) <= TOLERATED:
        return FALLBACK * own_norm
    return max(RADIUS * sorted(distances, reverse=True)[TOLERATED], FLOOR * own_norm)


def bound_replies(replies: Mapping[str, JacobianReply], requester: str, num_classes: int, config: RobustConfig
                  ) -> tuple[dict[str, JacobianReply], RobustReport]:
    """The replies with each neighbour's Jacobian rows bounded by the requester's own (see the module), and those
    whose labels are not classes refused; unchanged with `off` or without the requester's own reply."""
    report, started = RobustReport(), time.perf_counter()
    own = replies.get(requester)
    if not config.on or own is None:
        return dict(replies), report
    limit = ROW_RADIUS * float(np.sqrt(np.max(row_norms_squared(own.jacobian), initial=0.0)))
    bounded: dict[str, JacobianReply] = {}
    for sender, reply in replies.items():
        if sender == requester:
            bounded[sender] = reply
            continue
        if reply.labels.size and not 0 <= int(reply.labels.min()) <= int(reply.labels.max()) < num_classes:
            report.refused[sender] = f"Jacobian reply with labels outside 0..{num_classes - 1}"
            continue
        norms = np.sqrt(row_norms_squared(reply.jacobian))
        factors = np.divide(limit, norms, out=np.ones_like(norms), where=norms > limit)  # rows within: 1
        if factors.size and factors.min() < 1.0:
            report.clip(sender, "jacobian", float(factors.min()))
            reply = replace(reply, jacobian=scale_rows(reply.jacobian, factors))
        bounded[sender] = reply
    report.seconds = time.perf_counter() - started
    return bounded, report


def row_norms_squared(jacobian: object) -> FloatArray:
    """Per sample, the squared norm of its Jacobian rows (C, p), float64 (N,)."""
    if isinstance(jacobian, DenseJacobian):
        flat = jacobian.values.reshape(jacobian.shape[0], -1).astype(np.float64)
        return np.einsum("np,np->n", flat, flat)
    if isinstance(jacobian, FactoredJacobian):  # a Linear block is an outer product: |g (x) a|^2 = |g|^2 |a|^2
        total = np.zeros(jacobian.shape[0])
        for a, g in zip(jacobian.inputs, jacobian.output_grads, strict=True):
            grads = g.reshape(len(g), -1).astype(np.float64)
            inputs = a.astype(np.float64)
            total += np.einsum("np,np->n", grads, grads) * (np.einsum("ni,ni->n", inputs, inputs) + 1.0)
        return total
    raise TypeError(f"cannot bound a {type(jacobian).__name__}")


def scale_rows(jacobian: object, factors: FloatArray) -> DenseJacobian | FactoredJacobian:
    """The Jacobian with sample r's rows multiplied by factors[r]."""
    if isinstance(jacobian, DenseJacobian):
        return DenseJacobian((jacobian.values * factors[:, None, None]).astype(np.float32))
    if isinstance(jacobian, FactoredJacobian):  # J is linear in the output-side factors
        grads = tuple((g * factors[:, None, None]).astype(np.float32) for g in jacobian.output_grads)
        return replace(jacobian, output_grads=grads)
    raise TypeError(f"cannot bound a {type(jacobian).__name__}")


def bound_scores(scores: Mapping[str, CandidateScores], samples: Mapping[str, int], requester: str,
                 candidates: int, config: RobustConfig) -> tuple[list[CandidateScores], RobustReport]:
    """The scores the requester's commit sums to choose tau: as they came with `off`; else without those no honest
    member sends, and with each neighbour's loss curve bounded as above (`samples`: what each member scored on)."""
    report, started = RobustReport(), time.perf_counter()
    own = scores.get(requester)
    if not config.on or own is None:
        return list(scores.values()), report
    valid: dict[str, CandidateScores] = {}
    for sender, score in scores.items():
        if score.loss_sums.shape != (candidates,) or not bool(np.all(score.loss_sums >= 0)):
            report.refused[sender] = f"candidate scores that are not {candidates} losses >= 0"
        else:
            valid[sender] = score
    count = {sender: max(samples.get(sender, 1), 1) for sender in valid}
    curves = {sender: _curve(score.loss_sums / count[sender]) for sender, score in valid.items()}
    sizes = {sender: float(np.linalg.norm(curve)) for sender, curve in curves.items() if sender != requester}
    ranked = sorted(sizes.values(), reverse=True)
    limit = SCORE_RADIUS * max([float(np.linalg.norm(curves[requester])), *ranked[TOLERATED:TOLERATED + 1]])
    for sender, size in sizes.items():
        if size > limit:
            report.clip(sender, "scores", limit / size)
            level = float(valid[sender].loss_sums.astype(np.float64).mean())
            valid[sender] = replace(valid[sender], loss_sums=level + (limit / size) * curves[sender] * count[sender])
    report.seconds = time.perf_counter() - started
    return list(valid.values()), report


def contradicted_labels(replies: Mapping[str, JacobianReply], scores: Mapping[str, CandidateScores],
                        updates: FloatArray, requester: str, config: RobustConfig) -> dict[str, str]:
    """The neighbours whose Jacobian reply and candidate scores cannot both be honest, with why (empty with `off`).

    A reply's logits, Jacobian and labels predict the loss of the first candidate (the shortest horizon) on its
    rows: logits + J updates[0], against its labels. The member reports that loss on its data. Both come from the
    same data and labels, so for an honest member they differ only by the linearisation of one step, which is the
    same step for every member: the requester's own gap, and the other neighbours', set the scale. A neighbour more
    than LABEL_RADIUS times the larger of ours and the second-largest neighbour's gap apart (and more than LABEL_FLOOR
    nats a sample) is refused: a reply whose labels were changed after the data was scored (the label flip of
    bench/bench_robust.py) is. Checked where the reply carries the Jacobian the updates live in (SPARK without a
    kernel sketch, NTK-DFL); a member that changes its reply and its scores alike looks like one with mislabelled
    data, and is not caught."""
    if not config.on or updates.ndim != 2 or not len(updates):
        return {}
    gaps: dict[str, tuple[float, float, float]] = {}  # member -> (gap, predicted, reported), nats a sample
    for sender, reply in replies.items():
        score = scores.get(sender)
        if (score is None or not isinstance(reply.jacobian, DenseJacobian) or not reply.labels.size
                or reply.jacobian.shape[2] != updates.shape[1] or not len(score.loss_sums)):
            continue
        n, c, p = reply.jacobian.shape
        step = (reply.jacobian.values.reshape(n * c, p) @ updates[0]).reshape(n, c)
        logp = log_softmax(reply.logits.astype(np.float64) + step)
        samples = max(reply.represented_samples, 1)
        predicted = float((-logp[np.arange(n), reply.labels] * reply.row_weights()).sum()) / samples
        reported = float(score.loss_sums[0]) / samples
        gaps[sender] = (abs(predicted - reported), predicted, reported)
    own = gaps.pop(requester, (0.0, 0.0, 0.0))[0]
    ranked = sorted((gap for gap, _, _ in gaps.values()), reverse=True)
    limit = max(LABEL_RADIUS * max([own, *ranked[TOLERATED:TOLERATED + 1]]), LABEL_FLOOR)
    return {sender: (f"its Jacobian reply's labels predict a loss of {predicted:.3g} a sample for the first "
                     f"candidate; it reported {reported:.3g} (limit {limit:.3g} apart)")
            for sender, (gap, predicted, reported) in gaps.items() if gap > limit}


def _curve(losses: FloatArray) -> FloatArray:
    """A loss curve less its mean: what the choice of tau sees of it (adding a constant changes no choice)."""
    curve = losses.astype(np.float64)
    return curve - curve.mean()

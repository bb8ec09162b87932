"""The robust rules: honest neighbourhoods pass untouched (to the bit), one poisoned neighbour moves nothing much."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edge_agent.learning.algorithms.ntk_dfl import average_weights, score_candidates
from edge_agent.learning.data import load_fashion_mnist
from edge_agent.learning.jacobian import DenseJacobian, mlp_jacobian
from edge_agent.learning.messages import CandidateRequest, CandidateScores, JacobianReply, WeightsMessage
from edge_agent.learning.mlp import MLPSpec, init_weights
from edge_agent.learning.projection import ProjectionConfig, make_projection
from edge_agent.learning.robust import (
    FALLBACK,
    OFF,
    RADIUS,
    ROW_RADIUS,
    STRIKES,
    RobustConfig,
    Strikes,
    bound_replies,
    bound_scores,
    contradicted_labels,
    robust_average,
    row_norms_squared,
)
from edge_agent.sim.config import SimulationConfig
from edge_agent.sim.engine import Simulation

SPEC = MLPSpec()
SCREEN, CLIP = RobustConfig("screen"), RobustConfig("clip")
RNG = np.random.default_rng(0)
OWN = init_weights(SPEC, 0)


def _honest(count: int, spread: float = 0.05) -> list[WeightsMessage]:
    """Neighbours a little away from OWN, none more than twice as far as another."""
    return [WeightsMessage(f"client-{i + 1}", 0, OWN + (spread * (1 + i / count) * RNG.standard_normal(OWN.shape)
                                                        ).astype(np.float32)) for i in range(count)]


ATTACKS = {"noise": lambda w: RNG.standard_normal(w.shape).astype(np.float32), "scale": lambda w: w * 100,
           "constant": lambda w: np.full_like(w, 3.0)}


@pytest.mark.parametrize("kappa", [2, 3, 5])
@pytest.mark.parametrize("rule", [SCREEN, CLIP])
def test_an_honest_neighbourhood_averages_exactly_as_the_published_mean(kappa: int, rule: RobustConfig) -> None:
    received = _honest(kappa)
    anchor, report = robust_average(OWN, received, rule)
    assert anchor.tobytes() == average_weights(OWN, received).tobytes()
    assert not report.clipped and not report.refused


@pytest.mark.parametrize("attack", list(ATTACKS))
@pytest.mark.parametrize("kappa", [2, 3, 5])
def test_screen_leaves_out_a_poisoned_neighbour_and_names_it(attack: str, kappa: int) -> None:
    honest = _honest(kappa - 1)
    bad = WeightsMessage("client-9", 0, ATTACKS[attack](OWN))
    anchor, report = robust_average(OWN, [*honest, bad], SCREEN)
    assert anchor.tobytes() == average_weights(OWN, honest).tobytes()
    assert list(report.refused) == ["client-9"] and "beyond the radius" in report.refused["client-9"]


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_clip_bounds_how_far_a_poisoned_neighbour_moves_the_mean(attack: str) -> None:
    honest = _honest(2)
    bad = WeightsMessage("client-9", 0, ATTACKS[attack](OWN))
    anchor, report = robust_average(OWN, [*honest, bad], CLIP)
    tau = RADIUS * max(float(np.linalg.norm(m.weights.astype(np.float64) - OWN)) for m in honest)  # 2nd largest
    clean = np.stack([OWN, *(m.weights for m in honest)]).astype(np.float64).sum(axis=0)
    moved = np.linalg.norm(anchor.astype(np.float64) - (clean + OWN) / 4)  # the poisoner at our own weights
    assert moved <= tau / 4 * 1.001 and 0 < report.clipped["client-9"]["weights"] < 1


def test_with_a_single_neighbour_its_radius_is_a_multiple_of_our_own_norm() -> None:
    honest = _honest(1)
    assert robust_average(OWN, honest, SCREEN)[0].tobytes() == average_weights(OWN, honest).tobytes()
    far = WeightsMessage("client-9", 0, OWN * np.float32(FALLBACK + 1.5))
    anchor, report = robust_average(OWN, [far], SCREEN)
    assert anchor.tobytes() == OWN.tobytes() and "client-9" in report.refused


def test_off_is_the_published_method() -> None:
    received = [*_honest(1), WeightsMessage("client-9", 0, OWN * 100)]
    anchor, report = robust_average(OWN, received, OFF)
    assert anchor.tobytes() == average_weights(OWN, received).tobytes() and not report.refused
    replies = {"a": _reply("a", 1.0), "b": _reply("b", 100.0)}
    assert bound_replies(replies, "a", 10, OFF)[0] == replies
    scores = {"a": CandidateScores("a", 0, np.ones(3)), "b": CandidateScores("b", 0, -np.ones(3))}
    assert bound_scores(scores, {"a": 1, "b": 1}, "a", 3, OFF)[0] == list(scores.values())


def _reply(sender: str, scale: float, labels: np.ndarray | None = None) -> JacobianReply:
    x = load_fashion_mnist()[0].x[:20]
    jacobian, logits = mlp_jacobian(SPEC, OWN, x)
    values = (jacobian.dense()[:, :, :512] * scale).astype(np.float32)
    return JacobianReply(sender, 0, DenseJacobian(values), logits, np.arange(20) % 10 if labels is None else labels)


def test_a_neighbours_jacobian_rows_are_bounded_by_our_own_and_bad_labels_refused() -> None:
    replies = {"me": _reply("me", 1.0), "honest": _reply("honest", 1.0), "big": _reply("big", 100.0),
               "labels": _reply("labels", 1.0, np.full(20, 12))}
    bounded, report = bound_replies(replies, "me", 10, SCREEN)
    limit = ROW_RADIUS * np.sqrt(row_norms_squared(replies["me"].jacobian).max())
    assert bounded["honest"] is replies["honest"] and bounded["me"] is replies["me"]
    assert np.sqrt(row_norms_squared(bounded["big"].jacobian)).max() <= limit * 1.0001
    assert 0 < report.clipped["big"]["jacobian"] < 0.03
    assert "labels" not in bounded and "outside 0..9" in report.refused["labels"]


def test_a_reply_whose_labels_its_own_scores_contradict_is_refused_and_an_honest_one_is_not() -> None:
    """The flip of bench_robust: the reply's labels are flipped after the neighbour scored on its real ones."""
    train = load_fashion_mnist()[0]
    x, y = train.x[:60], train.y[:60]
    projection = make_projection(ProjectionConfig(), SPEC, 0)
    jp, logits = SPEC.projected_jacobian(OWN, x, projection)
    residual = np.exp(logits - logits.max(axis=1, keepdims=True))
    residual = residual / residual.sum(axis=1, keepdims=True) - np.eye(10)[y]
    updates = np.stack([-scale * DenseJacobian(jp).pull_back(residual) for scale in (0.01, 0.05)])
    request = CandidateRequest("me", 0, updates.astype(np.float32))
    replies = {label: JacobianReply(label, 0, DenseJacobian(jp), logits, labels)
               for label, labels in (("honest", y), ("flipped", 9 - y))}
    scores = {sender: score_candidates(SPEC, OWN, request, x, y, sender, projection.lift) for sender in replies}
    found = contradicted_labels(replies, scores, request.updates, "me", SCREEN)
    assert set(found) == {"flipped"} and "labels predict a loss of" in found["flipped"]
    assert contradicted_labels(replies, scores, request.updates, "me", OFF) == {}
    sketched = {"flipped": replace(replies["flipped"], jacobian=DenseJacobian(jp[:, :, :32]))}  # J P Q: not checked
    assert contradicted_labels(sketched, scores, request.updates, "me", SCREEN) == {}


def test_factored_and_dense_jacobians_have_the_same_row_norms() -> None:
    x = load_fashion_mnist()[0].x[:5]
    factored, _ = mlp_jacobian(SPEC, OWN, x)
    dense = DenseJacobian(factored.dense())
    assert np.allclose(row_norms_squared(factored), row_norms_squared(dense), rtol=1e-4)


def test_a_neighbours_loss_curve_cannot_pick_tau_alone() -> None:
    own = CandidateScores("me", 0, np.array([50.0, 45.0, 40.0, 48.0]))  # both honest members prefer the third
    honest = CandidateScores("n1", 0, np.array([60.0, 55.0, 50.0, 58.0]))
    liar = CandidateScores("n2", 0, np.array([9000.0, 9000.0, 9000.0, 0.0]))  # votes for the last tau
    samples = {"me": 100, "n1": 100, "n2": 100}
    plain = int(np.argmin(sum(s.loss_sums for s in (own, honest, liar))))
    chosen, report = bound_scores({"me": own, "n1": honest, "n2": liar}, samples, "me", 4, SCREEN)
    assert plain == 3 and int(np.argmin(sum(s.loss_sums for s in chosen))) == 2
    assert "n2" in report.clipped and chosen[:2] == [own, honest]
    negative = CandidateScores("n2", 0, np.array([-1.0, 0.0, 0.0, 0.0]))
    chosen, report = bound_scores({"me": own, "n1": honest, "n2": negative}, samples, "me", 4, SCREEN)
    assert chosen == [own, honest] and "losses >= 0" in report.refused["n2"]


def test_a_clean_dfedavg_simulation_is_the_same_bits_with_screen_and_off() -> None:
    train, test = load_fashion_mnist()
    weights = {}
    for rule in ("off", "screen"):
        config = SimulationConfig.from_setting("smoke", "dfedavg", clients=4, rounds=2)
        simulation = Simulation(replace(config, robust=RobustConfig(rule)), train, test)  # type: ignore[arg-type]
        list(simulation.run())
        weights[rule] = simulation.weights
    assert weights["off"].tobytes() == weights["screen"].tobytes()


def test_a_neighbour_is_barred_from_its_strikes_th_contradicted_round_on() -> None:
    strikes = Strikes()
    for _ in range(STRIKES - 1):
        strikes.add({"client-3"})
        strikes.add(set())
    assert strikes.barred() == frozenset()
    strikes.add({"client-3", "client-2"})
    assert strikes.barred() == {"client-3"} and strikes.counts == {"client-3": STRIKES, "client-2": 1}

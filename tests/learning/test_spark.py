"""SPARK's switches: identity + no regulariser + no momentum is NTK-DFL; schedule, soft targets, momentum."""

from dataclasses import replace

import numpy as np
import pytest

from edge_agent.learning.algorithms import spark as spark_module
from edge_agent.learning.algorithms.ntk_dfl import NTKDFLConfig
from edge_agent.learning.algorithms.spark import (
    SparkConfig,
    answer_jacobian_request,
    commit_with_momentum,
    propose_candidates,
    residual_rows,
    rows_to_send,
    soft_targets,
)
from edge_agent.learning.codec import CodecConfig
from edge_agent.learning.jacobian import DenseJacobian
from edge_agent.learning.messages import CandidateRequest, CandidateScores, JacobianReply, JacobianRequest, WireCodecs
from edge_agent.learning.mlp import MLPSpec, forward, init_weights, one_hot, softmax
from edge_agent.learning.ntk import EvolutionConfig
from edge_agent.learning.projection import ProjectionConfig, kernel_sketch, make_projection
from edge_agent.sim.network import InMemoryNetwork, TrafficLedger
from edge_agent.sim.rounds import Client, ntk_dfl_round, spark_round

GRAPH = {"c0": ("c1", "c3"), "c1": ("c0", "c2"), "c2": ("c1", "c3"), "c3": ("c0", "c2")}


def _problem() -> tuple[MLPSpec, list[Client], np.ndarray]:
    spec = MLPSpec((8, 6, 3))
    rng = np.random.default_rng(0)
    clients = [Client(f"c{i}", rng.normal(size=(5, 8)).astype(np.float32), rng.integers(0, 3, size=5))
               for i in range(4)]
    weights = np.stack([init_weights(spec, 0) + 0.2 * rng.normal(size=spec.num_params).astype(np.float32)
                        for _ in clients])
    return spec, clients, weights


def test_spark_with_everything_off_equals_ntk_dfl_round() -> None:
    spec, clients, weights = _problem()
    ntk = NTKDFLConfig(eta0=0.3, gamma=0.1, evolution=EvolutionConfig(taus=(2, 5, 9), solver="euler"))
    spark = SparkConfig(ntk=ntk, projection=ProjectionConfig(family="identity"), distill=False, momentum=False)
    for round_index in range(3):
        expected, expected_taus = ntk_dfl_round(spec, clients, weights, GRAPH, InMemoryNetwork(), ntk, round_index)
        stale_velocity = np.ones_like(weights)  # ignored while momentum is off
        got, _, taus = spark_round(spec, clients, weights, stale_velocity, GRAPH, InMemoryNetwork(), spark,
                                   round_index, rounds=3)
        assert taus == expected_taus
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
        weights = expected


def test_spark_sends_projected_jacobians_and_updates() -> None:
    spec, clients, weights = _problem()
    spark = SparkConfig(ntk=NTKDFLConfig(evolution=EvolutionConfig(solver="euler")),
                        projection=ProjectionConfig(family="tensorsketch", dim=16))
    network = InMemoryNetwork()
    spark_round(spec, clients, weights, np.zeros_like(weights), GRAPH, network, spark, 0, rounds=3)
    kinds = network.ledger.elements_by_kind
    members, kappa, n, c, taus = 4, 2, 5, 3, len(EvolutionConfig().taus)
    assert kinds["JacobianReply"] == members * kappa * (n * c * 16 + n * c + n)
    assert kinds["CandidateRequest"] == members * kappa * taus * 16
    assert kinds["JacobianRequest"] == members * kappa * spec.num_params


def test_wire_precisions_are_counted_and_what_arrives_is_what_the_codecs_decode() -> None:
    spec, clients, weights = _problem()
    base = SparkConfig(ntk=NTKDFLConfig(evolution=EvolutionConfig(solver="euler")),
                       projection=ProjectionConfig(family="tensorsketch", dim=16))
    low = replace(base, codec=CodecConfig("int4", block_size=32), candidates_codec=CodecConfig("int8", block_size=8))
    results = {}
    for name, config, codecs in (("fp32", base, WireCodecs()),
                                 ("low", low, WireCodecs(low.codec, CodecConfig("int8", block_size=32),
                                                         low.candidates_codec))):
        network = InMemoryNetwork(TrafficLedger(codecs))
        results[name] = spark_round(spec, clients, weights, np.zeros_like(weights), GRAPH, network, config, 0,
                                    rounds=3)[0]
        kinds = network.ledger.bytes_by_kind
    members, kappa, n, c, d, taus = 4, 2, 5, 3, spec.num_params, len(EvolutionConfig().taus)
    assert kinds["CandidateRequest"] == members * kappa * (taus * 16 + 4 * taus * 16 // 8)
    assert kinds["WeightsMessage"] == kinds["JacobianRequest"] == members * kappa * (d + 4 * -(-d // 32))
    assert kinds["JacobianReply"] == members * kappa * (n * c * 16 // 2 + 4 * -(-n * c * 16 // 32) + 4 * (n * c + n))
    assert np.all(np.isfinite(results["low"])) and not np.array_equal(results["low"], results["fp32"])
    half = replace(base, codec=CodecConfig("fp16"))
    network = InMemoryNetwork(TrafficLedger(WireCodecs(half.codec, CodecConfig("fp16"))))
    got = spark_round(spec, clients, weights, np.zeros_like(weights), GRAPH, network, half, 0, rounds=3)[0]
    assert not np.array_equal(got, results["fp32"])
    np.testing.assert_allclose(got, results["fp32"], atol=2e-3)  # fp16 rounding moves the round only slightly


def test_a_network_whose_jacobian_or_candidate_codec_is_not_sparks_is_refused() -> None:
    spec, clients, weights = _problem()
    for config in (SparkConfig(codec=CodecConfig("int8")), SparkConfig(candidates_codec=CodecConfig("int8"))):
        with pytest.raises(ValueError, match="Jacobian and candidate codecs"):
            spark_round(spec, clients, weights, np.zeros_like(weights), GRAPH, InMemoryNetwork(), config, 0, rounds=3)


def test_stage_schedule_anneals_lambda_and_switches_momentum_on_from_stage_two() -> None:
    config = SparkConfig()
    assert [config.soft_label_weight(k, 30) for k in (0, 9, 10, 19, 20, 29)] == [0.0, 0.0, 0.3, 0.3, 0.5, 0.5]
    assert [config.momentum_beta(k, 30) for k in (0, 9, 10, 29)] == [0.0, 0.0, 0.9, 0.9]
    off = SparkConfig(distill=False, momentum=False)
    assert off.soft_label_weight(25, 30) == 0.0 and off.momentum_beta(25, 30) == 0.0


def test_a_fixed_schedule_spreads_the_stages_over_its_own_rounds_and_later_rounds_stay_in_the_last() -> None:
    config = SparkConfig(schedule_rounds=20)
    assert [config.soft_label_weight(k, 25) for k in (0, 6, 7, 13, 14, 19, 24)] == [0.0, 0.0, 0.3, 0.3, 0.5, 0.5, 0.5]
    assert [config.momentum_beta(k, 25) for k in (6, 7, 24)] == [0.0, 0.9, 0.9]
    with pytest.raises(ValueError, match="schedule rounds"):
        SparkConfig(schedule_rounds=-1)


def test_a_service_trains_past_its_schedule_in_the_last_stage_without_momentum() -> None:
    service = SparkConfig(momentum_after_schedule=False)  # what `run --rounds 0` runs, spread over 5 rounds
    assert [service.momentum_beta(k, 5) for k in range(8)] == [0.0, 0.0, 0.9, 0.9, 0.9, 0.0, 0.0, 0.0]
    assert [service.soft_label_weight(k, 5) for k in (4, 5, 50)] == [0.5, 0.5, 0.5]
    assert SparkConfig(schedule_rounds=5, momentum_after_schedule=False).momentum_beta(5, 15) == 0.0


def test_soft_targets_mix_one_hot_and_tempered_predictions() -> None:
    logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    labels = np.array([1, 0])
    got = soft_targets(logits, labels, 0.3, 2.0, 3)
    np.testing.assert_allclose(got, 0.7 * np.eye(3)[labels] + 0.3 * softmax(logits / 2.0))
    np.testing.assert_allclose(got.sum(axis=1), 1.0)
    assert np.array_equal(soft_targets(logits, labels, 0.0, 1.0, 3), np.eye(3)[labels])


def test_nesterov_commit_follows_spec_formula() -> None:
    spec = MLPSpec((8, 6, 3))
    projection = make_projection(ProjectionConfig(family="kron", dim=8), spec, round_index=4)
    rng = np.random.default_rng(1)
    anchor = rng.normal(size=spec.num_params).astype(np.float32)
    velocity = rng.normal(size=spec.num_params).astype(np.float32)
    request = CandidateRequest("c0", 4, rng.normal(size=(3, 8)).astype(np.float32))
    scores = [CandidateScores("c1", 4, np.array([3.0, 1.0, 2.0])), CandidateScores("c2", 4, np.array([0.0, 1.5, 2.0]))]
    weights, new_velocity, index = commit_with_momentum(anchor, request, scores, projection, velocity, beta=0.9)
    step = projection.lift(request.updates[1])
    assert index == 1
    np.testing.assert_allclose(new_velocity, 0.9 * velocity + step, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weights, anchor + step + 0.9 * (0.9 * velocity + step), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad", [{"stage_lambdas": (0.0, 1.5)}, {"temperature": 0.0}, {"beta": 1.0},
                                 {"residual_share": 0.0}, {"residual_share": 1.01}, {"tail_rate": -0.1}])
def test_invalid_spark_config_is_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SparkConfig(**bad)  # type: ignore[arg-type]


def test_residual_rows_are_the_fewest_that_hold_the_share_of_the_squared_residual() -> None:
    rng = np.random.default_rng(3)
    logits, labels = 3 * rng.normal(size=(40, 3)), rng.integers(0, 3, size=40)
    squared = np.sum((softmax(logits) - one_hot(labels, 3)) ** 2, axis=1)
    for share in (0.3, 0.8, 0.95):
        rows = residual_rows(logits, labels, share)
        assert list(rows) == sorted(rows)
        assert squared[rows].sum() >= share * squared.sum()
        dropped = np.setdiff1d(np.arange(40), rows)
        assert squared[dropped].max(initial=0.0) <= squared[rows].min()  # the largest residuals are kept
        fewer = np.sort(squared[rows])[1:]  # without the smallest kept row the share is not reached
        assert fewer.sum() < share * squared.sum()
    assert len(residual_rows(logits, labels, 1.0)) == 40


def test_a_reply_with_the_largest_residuals_sends_fewer_rows_and_stands_for_all_samples() -> None:
    spec, clients, weights = _problem()
    projection = make_projection(ProjectionConfig(family="tensorsketch", dim=16), spec, round_index=0)
    request, client = JacobianRequest("c0", 0, weights[0]), clients[1]
    full = answer_jacobian_request(spec, request, client.x, client.y, "c1", projection)
    part = answer_jacobian_request(spec, request, client.x, client.y, "c1", projection, SparkConfig(residual_share=0.6))
    assert full.samples == 0 and full.represented_samples == 5
    rows = residual_rows(forward(spec, weights[0], client.x), client.y, 0.6)
    assert 0 < len(rows) < 5 and part.samples == part.represented_samples == 5
    np.testing.assert_array_equal(part.labels, client.y[rows])
    np.testing.assert_allclose(part.logits, full.logits[rows], rtol=1e-6)
    np.testing.assert_allclose(part.jacobian.values, full.jacobian.values[rows], rtol=1e-5, atol=1e-7)  # type: ignore[attr-defined]


def test_rows_left_out_with_no_residual_and_no_coupling_leave_the_update_unchanged() -> None:
    # Rows whose residual is zero and whose Jacobian is orthogonal to the others' never move in the evolution;
    # the update without them, scaled by all the samples, is the update with them.
    spec, rng = MLPSpec((4, 3)), np.random.default_rng(5)
    jacobian = np.zeros((6, 3, 8), np.float32)
    jacobian[:4, :, :4] = rng.normal(size=(4, 3, 4))
    jacobian[4:, :, 4:] = rng.normal(size=(2, 3, 4))
    logits = rng.normal(size=(6, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2])
    logits[4:] = np.log(np.eye(3)[labels[4:]] * (1 - 3e-7) + 1e-7)  # softmax = its one-hot label to float32
    config = SparkConfig(ntk=NTKDFLConfig(evolution=EvolutionConfig(taus=(2, 5), solver="euler")))
    whole = JacobianReply("c1", 0, DenseJacobian(jacobian), logits, labels)
    kept = JacobianReply("c1", 0, DenseJacobian(jacobian[:4]), logits[:4], labels[:4], samples=6)
    full = propose_candidates(spec, [whole], 0.5, 0.0, config, "c0").updates
    part = propose_candidates(spec, [kept], 0.5, 0.0, config, "c0").updates
    np.testing.assert_allclose(part, full, rtol=1e-4, atol=1e-6)
    unscaled = propose_candidates(spec, [replace(kept, samples=0)], 0.5, 0.0, config, "c0").updates
    assert not np.allclose(unscaled, full, rtol=1e-2)


def test_a_round_with_a_residual_share_sends_fewer_jacobian_rows() -> None:
    spec, clients, weights = _problem()
    base = SparkConfig(ntk=NTKDFLConfig(evolution=EvolutionConfig(solver="euler")),
                       projection=ProjectionConfig(family="tensorsketch", dim=16))
    replies = {}
    for share in (1.0, 0.5):
        network = InMemoryNetwork()
        got = spark_round(spec, clients, weights, np.zeros_like(weights), GRAPH, network,
                          replace(base, residual_share=share), 0, rounds=3)[0]
        replies[share] = network.ledger.elements_by_kind["JacobianReply"]
        assert np.all(np.isfinite(got))
    assert replies[0.5] < replies[1.0]


def test_a_random_tail_of_the_other_rows_is_drawn_reproducibly_and_stands_for_all_of_them() -> None:
    rng = np.random.default_rng(4)
    spec = MLPSpec((8, 6, 3))
    x, y, weights = rng.normal(size=(40, 8)).astype(np.float32), rng.integers(0, 3, size=40), init_weights(spec, 1)
    config = SparkConfig(residual_share=0.5, tail_rate=0.25)
    chosen = rows_to_send(spec, weights, x, y, config, (0, 3, 1, 2))
    assert chosen is not None
    top = residual_rows(forward(spec, weights, x), y, 0.5)
    rest = len(y) - len(top)
    assert chosen.samples == 40 and chosen.sampled == -(-rest // 4)
    assert list(chosen.rows[:len(top)]) == list(top) and not set(chosen.rows[len(top):]) & set(top)
    again = rows_to_send(spec, weights, x, y, config, (0, 3, 1, 2))
    other = rows_to_send(spec, weights, x, y, config, (0, 3, 2, 1))
    assert again is not None and other is not None
    assert np.array_equal(again.rows, chosen.rows) and not np.array_equal(other.rows, chosen.rows)
    assert rows_to_send(spec, weights, x, y, replace(config, tail_rate=1.0), (0, 3, 1, 2)) is None  # every row
    reply = JacobianReply("c1", 0, DenseJacobian(np.zeros((len(chosen.rows), 3, 4), np.float32)),
                          np.zeros((len(chosen.rows), 3)), y[chosen.rows], chosen.samples, chosen.sampled)
    row_weights = reply.row_weights()
    assert row_weights.sum() == pytest.approx(40) and set(row_weights[:len(top)]) == {1.0}


def test_a_row_weighted_twice_evolves_as_two_identical_samples() -> None:
    spec, rng = MLPSpec((4, 3)), np.random.default_rng(6)
    jacobian = rng.normal(size=(6, 3, 8)).astype(np.float32)
    logits, labels = rng.normal(size=(6, 3)).astype(np.float32), np.array([0, 1, 2, 0, 1, 1])
    jacobian[5], logits[5] = jacobian[4], logits[4]  # sample 5 is sample 4 again
    config = SparkConfig(ntk=NTKDFLConfig(evolution=EvolutionConfig(taus=(2, 5), solver="euler")))
    every = JacobianReply("c1", 0, DenseJacobian(jacobian), logits, labels)
    once = JacobianReply("c1", 0, DenseJacobian(jacobian[:5]), logits[:5], labels[:5], samples=6, sampled_rows=1)
    np.testing.assert_array_equal(once.row_weights(), [1, 1, 1, 1, 2])
    full = propose_candidates(spec, [every], 0.5, 0.3, config, "c0").updates
    weighted = propose_candidates(spec, [once], 0.5, 0.3, config, "c0").updates
    np.testing.assert_allclose(weighted, full, rtol=1e-4, atol=1e-6)


def test_kernel_sketch_is_a_seeded_countsketch_with_one_sign_per_row() -> None:
    q = kernel_sketch(64, 8, seed=3, round_index=5)
    assert q.shape == (64, 8) and q.dtype == np.float32
    assert np.all(np.count_nonzero(q, axis=1) == 1) and set(np.unique(q)) == {-1.0, 0.0, 1.0}
    np.testing.assert_array_equal(q, kernel_sketch(64, 8, seed=3, round_index=5))
    assert not np.array_equal(q, kernel_sketch(64, 8, seed=3, round_index=6))
    with pytest.raises(ValueError, match="kernel sketch dimension"):
        kernel_sketch(64, 65, seed=0, round_index=0)


def test_kernel_dim_beyond_the_projection_is_refused() -> None:
    with pytest.raises(ValueError, match=r"kernel sketch dimension must lie in 0\.\.16"):
        SparkConfig(projection=ProjectionConfig(family="tensorsketch", dim=16), kernel_dim=17)


def test_a_sketched_round_whose_sketch_is_the_identity_equals_the_published_round(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The pull-back is exact: with Q = I the kernel is the replies' own, so only the summation order differs."""
    spec, clients, weights = _problem()
    base = SparkConfig(ntk=NTKDFLConfig(evolution=EvolutionConfig(taus=(20, 50, 90), solver="euler")),
                       projection=ProjectionConfig(family="tensorsketch", dim=16), residual_share=0.8, tail_rate=0.5)
    monkeypatch.setattr(spark_module, "kernel_sketch", lambda dim, *_args: np.eye(dim, dtype=np.float32))
    velocity = np.zeros_like(weights)
    for round_index in range(3):  # momentum from round 1 (3-round schedule)
        expected, expected_velocity, expected_taus = spark_round(spec, clients, weights, velocity, GRAPH,
                                                                 InMemoryNetwork(), base, round_index, rounds=3)
        got, got_velocity, taus = spark_round(spec, clients, weights, velocity, GRAPH, InMemoryNetwork(),
                                              replace(base, kernel_dim=16), round_index, rounds=3)
        assert taus == expected_taus
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got_velocity, expected_velocity, rtol=1e-5, atol=1e-6)
        weights, velocity = expected, expected_velocity


def test_sketched_replies_carry_m_prime_values_and_the_pull_back_what_the_spec_table_says() -> None:
    spec, clients, weights = _problem()
    taus = (20, 50, 90)
    config = SparkConfig(ntk=NTKDFLConfig(evolution=EvolutionConfig(taus=taus, solver="euler")),
                         projection=ProjectionConfig(family="tensorsketch", dim=16), kernel_dim=4)
    network = InMemoryNetwork()
    got = spark_round(spec, clients, weights, np.zeros_like(weights), GRAPH, network, config, 0, rounds=3)[0]
    kinds = network.ledger.elements_by_kind
    members, kappa, n, c = 4, 2, 5, 3
    assert kinds["JacobianReply"] == members * kappa * (n * c * 4 + n * c + n)
    assert kinds["PullBackRequest"] == members * kappa * len(taus) * n * c
    assert kinds["PullBackReply"] == kinds["CandidateRequest"] == members * kappa * len(taus) * 16
    assert kinds["JacobianRequest"] == members * kappa * spec.num_params
    assert np.all(np.isfinite(got)) and not np.array_equal(got, weights)

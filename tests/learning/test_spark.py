"""SPARK's switches: identity + no regulariser + no momentum is NTK-DFL; schedule, soft targets, momentum."""

from dataclasses import replace

import numpy as np
import pytest

from edge_agent.learning.algorithms.ntk_dfl import NTKDFLConfig
from edge_agent.learning.algorithms.spark import SparkConfig, commit_with_momentum, soft_targets
from edge_agent.learning.codec import CodecConfig
from edge_agent.learning.messages import CandidateRequest, CandidateScores, WireCodecs
from edge_agent.learning.mlp import MLPSpec, init_weights, softmax
from edge_agent.learning.ntk import EvolutionConfig
from edge_agent.learning.projection import ProjectionConfig, make_projection
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
    members, kappa, n, c, taus = 4, 2, 5, 3, 4
    assert kinds["JacobianReply"] == members * kappa * (n * c * 16 + n * c + n)
    assert kinds["CandidateRequest"] == members * kappa * taus * 16
    assert kinds["JacobianRequest"] == members * kappa * spec.num_params


def test_wire_precisions_are_counted_and_what_arrives_is_what_the_codecs_decode() -> None:
    spec, clients, weights = _problem()
    base = SparkConfig(ntk=NTKDFLConfig(evolution=EvolutionConfig(solver="euler")),
                       projection=ProjectionConfig(family="tensorsketch", dim=16))
    low = replace(base, codec=CodecConfig("int4", block_size=32))
    results = {}
    for name, config, codecs in (("fp32", base, WireCodecs()),
                                 ("low", low, WireCodecs(low.codec, CodecConfig("int8", block_size=32)))):
        network = InMemoryNetwork(TrafficLedger(codecs))
        results[name] = spark_round(spec, clients, weights, np.zeros_like(weights), GRAPH, network, config, 0,
                                    rounds=3)[0]
        kinds = network.ledger.bytes_by_kind
    members, kappa, n, c, d = 4, 2, 5, 3, spec.num_params
    assert kinds["WeightsMessage"] == kinds["JacobianRequest"] == members * kappa * (d + 4 * -(-d // 32))
    assert kinds["JacobianReply"] == members * kappa * (n * c * 16 // 2 + 4 * -(-n * c * 16 // 32) + 4 * (n * c + n))
    assert np.all(np.isfinite(results["low"])) and not np.array_equal(results["low"], results["fp32"])
    half = replace(base, codec=CodecConfig("fp16"))
    network = InMemoryNetwork(TrafficLedger(WireCodecs(half.codec, CodecConfig("fp16"))))
    got = spark_round(spec, clients, weights, np.zeros_like(weights), GRAPH, network, half, 0, rounds=3)[0]
    assert not np.array_equal(got, results["fp32"])
    np.testing.assert_allclose(got, results["fp32"], atol=2e-3)  # fp16 rounding moves the round only slightly


def test_a_network_whose_jacobian_codec_is_not_sparks_is_refused() -> None:
    spec, clients, weights = _problem()
    int8 = SparkConfig(codec=CodecConfig("int8"))
    with pytest.raises(ValueError, match="Jacobian codec"):
        spark_round(spec, clients, weights, np.zeros_like(weights), GRAPH, InMemoryNetwork(), int8, 0, rounds=3)


def test_stage_schedule_anneals_lambda_and_switches_momentum_on_from_stage_two() -> None:
    config = SparkConfig()
    assert [config.soft_label_weight(k, 30) for k in (0, 9, 10, 19, 20, 29)] == [0.0, 0.0, 0.3, 0.3, 0.5, 0.5]
    assert [config.momentum_beta(k, 30) for k in (0, 9, 10, 29)] == [0.0, 0.0, 0.9, 0.9]
    off = SparkConfig(distill=False, momentum=False)
    assert off.soft_label_weight(25, 30) == 0.0 and off.momentum_beta(25, 30) == 0.0


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


@pytest.mark.parametrize("bad", [{"stage_lambdas": (0.0, 1.5)}, {"temperature": 0.0}, {"beta": 1.0}])
def test_invalid_spark_config_is_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SparkConfig(**bad)  # type: ignore[arg-type]

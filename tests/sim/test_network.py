"""The simulator's in-memory network: what a receiver gets (the wire's codecs applied) and what the ledger counts."""

import math

import numpy as np

from edge_agent.learning.codec import CodecConfig, decode, encode, encoded_size
from edge_agent.learning.jacobian import DenseJacobian, mlp_jacobian
from edge_agent.learning.messages import JacobianReply, WeightsMessage, WireCodecs
from edge_agent.learning.mlp import MLPSpec, init_weights
from edge_agent.sim.network import InMemoryNetwork, TrafficLedger

INT8 = CodecConfig("int8", block_size=64)
INT4 = CodecConfig("int4", block_size=64)


def _weights(d: int = 1000) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(d).astype(np.float32)


def test_fp32_messages_arrive_as_sent_and_are_counted_at_four_bytes() -> None:
    network = InMemoryNetwork()
    message = WeightsMessage("a", 0, _weights())
    assert network.deliver(message, "b") is message
    assert network.ledger.bytes_sent_by_client == {"a": 4000} and network.ledger.bytes_received_by_client == {"b": 4000}


def test_weights_arrive_as_the_weights_codec_decodes_them_and_cost_its_bytes() -> None:
    network = InMemoryNetwork(TrafficLedger(WireCodecs(weights=INT8)))
    weights = _weights()
    received = network.deliver(WeightsMessage("a", 0, weights), "b")
    np.testing.assert_array_equal(received.weights, decode(encode(weights, INT8)))
    assert not np.array_equal(received.weights, weights)
    assert network.ledger.total_bytes == encoded_size(1000, INT8) == 1000 + 4 * math.ceil(1000 / 64)


def test_a_message_to_oneself_is_neither_encoded_nor_counted() -> None:
    network = InMemoryNetwork(TrafficLedger(WireCodecs(weights=INT8)))
    message = WeightsMessage("a", 0, _weights())
    assert network.deliver(message, "a") is message
    assert network.ledger.total_bytes == 0


def test_a_factored_jacobian_arrives_dense_at_the_jacobian_codec_and_the_rest_in_fp32() -> None:
    spec = MLPSpec((6, 5, 3))
    x = np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32)
    jacobian, logits = mlp_jacobian(spec, init_weights(spec, 0), x)
    network = InMemoryNetwork(TrafficLedger(WireCodecs(jacobian=INT4)))
    received = network.deliver(JacobianReply("b", 0, jacobian, logits, np.array([0, 1, 2, 0])), "a")
    assert isinstance(received.jacobian, DenseJacobian)
    np.testing.assert_array_equal(received.jacobian.values, decode(encode(jacobian.dense(), INT4)))
    assert received.logits is logits
    n, c = logits.shape
    assert network.ledger.total_bytes == encoded_size(n * c * spec.num_params, INT4) + 4 * (n * c + n)

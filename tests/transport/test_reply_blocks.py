"""A Jacobian reply sent block by block as it is computed: the same frames, the same reply, bit for bit."""

import numpy as np
import pytest

from edge_agent.agent.kernels import ChunkedReferenceKernels
from edge_agent.learning.algorithms.spark import SparkConfig
from edge_agent.learning.codec import CodecConfig
from edge_agent.learning.exchange import SparkMethod
from edge_agent.learning.jacobian import DenseJacobian
from edge_agent.learning.messages import FP32, JacobianReply, JacobianRequest, WireCodecs
from edge_agent.learning.mlp import MLPSpec, init_weights
from edge_agent.transport.wire import StreamedMessage, assemble, encode_blocks, encode_message, frames

SPEC = MLPSpec((20, 8, 4))
SAMPLES = 23


def method(chunk: int | None) -> SparkMethod:
    config = SparkConfig()
    kernels = None if chunk is None else ChunkedReferenceKernels(SPEC, chunk)
    return SparkMethod(SPEC, config, rounds=3, kernels=kernels)


def request_and_data() -> tuple[JacobianRequest, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.random((SAMPLES, 20), dtype=np.float32)
    y = rng.integers(0, 4, SAMPLES)
    return JacobianRequest("client-0", 1, init_weights(SPEC, 3)), x, y


def assert_same_reply(got: JacobianReply, expected: JacobianReply) -> None:
    assert isinstance(got.jacobian, DenseJacobian) and isinstance(expected.jacobian, DenseJacobian)
    assert got.jacobian.values.tobytes() == expected.jacobian.values.tobytes()
    assert got.logits.tobytes() == expected.logits.tobytes()
    assert np.array_equal(got.labels, expected.labels)
    assert (got.sender, got.round, got.samples, got.sampled_rows) == (expected.sender, expected.round,
                                                                      expected.samples, expected.sampled_rows)


@pytest.mark.parametrize("chunk", [None, 5, 8, SAMPLES, 64])
def test_a_reply_computed_in_blocks_is_the_whole_reply_bit_for_bit(chunk: int | None) -> None:
    request, x, y = request_and_data()
    whole = method(chunk).answer(request, x, y, "client-1")
    blocks = method(chunk).answer_blocks(request, x, y, "client-1")
    rows = list(blocks.rows())
    expected_blocks = 1 if chunk is None or chunk >= SAMPLES else -(-SAMPLES // chunk)
    assert len(rows) == expected_blocks and rows[0].start == 0 and rows[-1].stop == SAMPLES
    assert_same_reply(blocks.reply, whole)


@pytest.mark.parametrize("chunk", [5, 8])
def test_streamed_frames_are_the_whole_replys_frames_and_assemble_to_it(chunk: int) -> None:
    request, x, y = request_and_data()
    whole = method(chunk).answer(request, x, y, "client-1")
    blocks = method(chunk).answer_blocks(request, x, y, "client-1")
    finished: list[list[tuple[float, float]]] = []
    blocks.on_finish = finished.append
    streamed = encode_blocks(blocks)
    assert isinstance(streamed, StreamedMessage)  # fp32 Jacobians leave block by block
    sent = list(frames(streamed, chunk_size=700))
    assert sent == list(frames(encode_message(whole), chunk_size=700))
    reply = assemble(sent)
    assert isinstance(reply, JacobianReply)
    assert_same_reply(reply, whole)
    assert len(finished) == 1 and len(finished[0]) == -(-SAMPLES // chunk) + 1  # per block, then logits and labels
    assert all(start <= end for start, end in finished[0])


def test_a_lossy_jacobian_codec_is_encoded_whole_with_the_same_bytes() -> None:
    request, x, y = request_and_data()
    codecs = WireCodecs(CodecConfig("int8"), FP32)
    whole = method(5).answer(request, x, y, "client-1")
    encoded = encode_blocks(method(5).answer_blocks(request, x, y, "client-1"), codecs)
    assert list(frames(encoded)) == list(frames(encode_message(whole, codecs)))


def test_a_reader_that_stops_early_leaves_no_block_computing_forever() -> None:
    request, x, y = request_and_data()
    blocks = method(2).answer_blocks(request, x, y, "client-1")
    stream = frames(encode_blocks(blocks), chunk_size=64)
    next(stream), next(stream)
    stream.close()  # the call was cut: the thread computing ahead stops after its block

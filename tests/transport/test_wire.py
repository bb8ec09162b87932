"""Tests for edge_agent.transport.wire: every message kind through frames and back, and what a receiver rejects."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from edge_agent.learning.codec import CodecConfig, Precision, decode, encode
from edge_agent.learning.jacobian import DenseJacobian, mlp_jacobian
from edge_agent.learning.messages import (
    CandidateRequest,
    CandidateScores,
    JacobianReply,
    JacobianRequest,
    Message,
    WeightsMessage,
    WireCodecs,
    payload_bytes,
)
from edge_agent.learning.mlp import MLPSpec, init_weights
from edge_agent.transport.framing import chunk_frame
from edge_agent.transport.schema import describe
from edge_agent.transport.wire import WireError, assemble, encode_ack, encode_message, frames, predicted_wire_bytes
from edge_agent.v1 import agent_pb2 as pb

PRECISIONS: tuple[Precision, ...] = ("fp32", "fp16", "int8", "int4")
KINDS = ("WeightsMessage", "JacobianRequest", "JacobianReply", "CandidateRequest", "CandidateScores")


def make_message(kind: str, n: int = 5, d: int = 37, taus: int = 4, seed: int = 0) -> Message:
    """A small message of `kind` with random float32 tensors (N samples, C = 10, p = d)."""
    rng = np.random.default_rng(seed)

    def normal(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    factories: dict[str, Callable[[], Message]] = {
        "WeightsMessage": lambda: WeightsMessage("a", 3, normal(d)),
        "JacobianRequest": lambda: JacobianRequest("a", 3, normal(d)),
        "JacobianReply": lambda: JacobianReply("b", 3, DenseJacobian(normal(n, 10, d)), normal(n, 10),
                                               rng.integers(0, 10, size=n)),
        "CandidateRequest": lambda: CandidateRequest("a", 3, normal(taus, d)),
        "CandidateScores": lambda: CandidateScores("b", 3, rng.random(taus).astype(np.float32) * 100),
    }
    return factories[kind]()


def tensors(message: Message) -> dict[str, np.ndarray]:
    """The message's tensors as arrays (a Jacobian as its dense values)."""
    out = {}
    for name, value in vars(message).items():
        if isinstance(value, DenseJacobian):
            out[name] = value.values
        elif isinstance(value, np.ndarray):
            out[name] = value
    return out


def round_trip(message: Message, codecs: WireCodecs, chunk_size: int) -> Message:
    received = assemble(frames(encode_message(message, codecs), chunk_size))
    assert received is not None
    return received


@pytest.mark.parametrize("chunk_size", [7, 1 << 20])
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_round_trips_as_the_codec_decodes_it(kind: str, precision: Precision, chunk_size: int) -> None:
    codec = CodecConfig(precision, block_size=16)
    message = make_message(kind)
    received = round_trip(message, WireCodecs(jacobian=codec, weights=codec, updates=codec), chunk_size)
    assert type(received) is type(message)
    assert (received.sender, received.round) == (message.sender, message.round)
    sent, got = tensors(message), tensors(received)
    assert sent.keys() == got.keys()
    for name, value in sent.items():
        assert got[name].shape == value.shape
        if name in ("jacobian", "weights", "updates"):  # what the codec gives, close to the input
            np.testing.assert_array_equal(got[name], decode(encode(value, codec)))
            atol = {"fp32": 0, "fp16": 4e-3, "int8": 0.02, "int4": 0.3}[precision]
            np.testing.assert_allclose(got[name], value, atol=atol)
        elif name == "labels":
            assert got[name].dtype == np.int64
            np.testing.assert_array_equal(got[name], value)
        else:  # everything else travels fp32, bit for bit
            assert got[name].dtype == np.float32
            np.testing.assert_array_equal(got[name], value)


def test_a_reply_of_some_rows_keeps_the_samples_they_stand_for() -> None:
    message = make_message("JacobianReply")
    assert isinstance(message, JacobianReply)
    some = JacobianReply(message.sender, message.round, message.jacobian, message.logits, message.labels,
                         samples=12, sampled_rows=2)
    received = round_trip(some, WireCodecs(), 64)
    assert isinstance(received, JacobianReply) and received.samples == 12 and received.represented_samples == 12
    np.testing.assert_array_equal(received.row_weights(), [1, 1, 1, 4.5, 4.5])
    every = round_trip(message, WireCodecs(), 64)
    assert isinstance(every, JacobianReply) and every.samples == 0 and every.represented_samples == 5


def test_factored_jacobian_travels_as_its_dense_tensor() -> None:
    spec = MLPSpec((6, 5, 3))
    x = np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32)
    jacobian, logits = mlp_jacobian(spec, init_weights(spec, 0), x)
    message = JacobianReply("b", 0, jacobian, logits, np.array([0, 1, 2, 0]))
    received = round_trip(message, WireCodecs(), 1 << 20)
    assert isinstance(received, JacobianReply) and isinstance(received.jacobian, DenseJacobian)
    np.testing.assert_array_equal(received.jacobian.values, jacobian.dense())
    np.testing.assert_allclose(received.jacobian.kernel(), jacobian.kernel(), rtol=1e-5)


def test_fp32_payload_is_the_codecs_little_endian_bytes_in_header_order() -> None:
    message = make_message("JacobianReply")
    assert isinstance(message, JacobianReply) and isinstance(message.jacobian, DenseJacobian)
    stream = b"".join(pb.Frame.FromString(f).chunk for f in frames(encode_message(message), 7))
    expected = [encode(a, CodecConfig()).data for a in (message.jacobian.values, message.logits, message.labels)]
    assert stream == b"".join(expected)


def test_chunks_are_full_size_except_the_last_and_span_tensors() -> None:
    message = make_message("JacobianReply", n=3, d=5)
    codecs = WireCodecs(jacobian=CodecConfig("int8", block_size=4))
    sizes = [len(pb.Frame.FromString(f).chunk) for f in list(frames(encode_message(message, codecs), 7))[1:]]
    total = payload_bytes(message, codecs)  # 150 + 4 * 38 jacobian, 120 logits, 12 labels: tensors end mid-chunk
    assert sum(sizes) == total
    assert sizes == [7] * (total // 7) + ([total % 7] if total % 7 else [])


@pytest.mark.parametrize("kind", ["CandidateRequest", "CandidateScores", "JacobianReply"])
def test_zero_element_tensors_round_trip(kind: str) -> None:
    message = make_message(kind, n=0, taus=0)
    received = round_trip(message, WireCodecs(jacobian=CodecConfig("int8")), 7)
    assert {k: v.shape for k, v in tensors(received).items()} == {k: v.shape for k, v in tensors(message).items()}
    assert len(list(frames(encode_message(message), 7))) == 1 + (payload_bytes(message) + 6) // 7


@pytest.mark.parametrize("chunk_size", [7, 1000, 1 << 20])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_metered_bytes_equal_serialised_sizes_payload_and_prediction(precision: Precision, chunk_size: int) -> None:
    codec = WireCodecs(jacobian=CodecConfig(precision, block_size=16))
    message = make_message("JacobianReply", n=7, d=301)  # odd element count: int4's last byte is half used
    counted: list[tuple[int, int]] = []
    sent = list(frames(encode_message(message, codec), chunk_size, lambda w, p, h: counted.append((w, p))))
    assert [w for w, _ in counted] == [pb.Frame.FromString(f).ByteSize() + 5 for f in sent]
    assert sum(p for _, p in counted) == payload_bytes(message, codec)
    assert sum(w for w, _ in counted) == predicted_wire_bytes(describe(message, codec), chunk_size)
    received: list[tuple[int, int]] = []
    assemble(sent, meter=lambda w, p, h: received.append((w, p)))
    assert received == counted


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16383, 16384, 2_097_151, 2_097_152])
def test_hand_written_chunk_frames_are_protobufs_own_encoding(size: int) -> None:
    piece = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert chunk_frame(piece) == pb.Frame(chunk=piece).SerializeToString()
    assert chunk_frame(memoryview(piece)) == chunk_frame(piece)


def test_frames_from_any_protobuf_encoder_assemble() -> None:
    message = make_message("CandidateRequest")
    parsed = [pb.Frame.FromString(f) for f in frames(encode_message(message), 100)]
    reencoded = [f.SerializeToString() for f in parsed]
    reencoded[1] += b"\x78\x01"  # an unknown varint field 15, as a newer peer might add
    received = assemble(reencoded)
    assert isinstance(received, CandidateRequest) and isinstance(message, CandidateRequest)
    np.testing.assert_array_equal(received.updates, message.updates)


def test_an_ack_carries_nothing_and_assembles_to_none() -> None:
    sent = list(frames(encode_ack("b", 9)))
    assert len(sent) == 1 and pb.Frame.FromString(sent[0]).header.kind == "Ack"
    assert assemble(sent) is None


def test_encoding_refuses_nan_before_anything_is_sent() -> None:
    weights = np.ones(4, np.float32)
    weights[2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        encode_message(WeightsMessage("a", 0, weights))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_are_refused_among_values_whose_squares_overflow(bad: float) -> None:
    weights = np.full(1000, 3e38, np.float32)  # finite, but their dot product overflows
    received = assemble(frames(encode_message(WeightsMessage("a", 0, weights))))
    assert isinstance(received, WeightsMessage) and np.array_equal(received.weights, weights)
    weights[500] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        encode_message(WeightsMessage("a", 0, weights))
    header = encode_message(WeightsMessage("a", 0, np.ones(1000, np.float32))).header
    with pytest.raises(WireError, match="NaN or inf"):
        assemble([pb.Frame(header=header).SerializeToString(), chunk_frame(weights.tobytes())])


def valid_frames(kind: str = "JacobianReply", chunk_size: int = 64) -> list[bytes]:
    return list(frames(encode_message(make_message(kind)), chunk_size))


def edited(stream: list[bytes], edit: Callable[[pb.MessageHeader], object]) -> list[bytes]:
    """`stream` with its header frame changed by `edit`."""
    header = pb.Frame.FromString(stream[0]).header
    edit(header)
    return [pb.Frame(header=header).SerializeToString(), *stream[1:]]


def with_tensor(stream: list[bytes], index: int, **changes: object) -> list[bytes]:
    def edit(header: pb.MessageHeader) -> None:
        for name, value in changes.items():
            if name == "shape":
                del header.tensors[index].shape[:]
                header.tensors[index].shape.extend(value)
            else:
                setattr(header.tensors[index], name, value)

    return edited(stream, edit)


def nan_payload() -> list[bytes]:
    encoded = encode_message(make_message("WeightsMessage", d=2))
    return [pb.Frame(header=encoded.header).SerializeToString(), chunk_frame(np.array([1.0, np.nan], "<f4").tobytes())]


def fractional_labels() -> list[bytes]:
    stream = valid_frames()
    last = pb.Frame.FromString(stream[-1]).chunk
    return [*stream[:-1], chunk_frame(last[:-4] + np.float32(0.5).tobytes())]


MALFORMED = {
    "nothing at all": ([], "start with a header"),
    "a chunk before the header": (valid_frames()[1:], "start with a header"),
    "garbage": ([b"\xff\xff\xff"], "not a valid"),
    "a chunk frame shorter than its length": ([valid_frames()[0], b"\x12\x05ab"], "not a valid"),
    "an empty frame": ([valid_frames()[0], b""], "empty frame"),
    "a second header": ([*valid_frames(), valid_frames()[0]], "second header"),
    "an unknown kind": (edited(valid_frames(), lambda h: setattr(h, "kind", "Pickle")), "unknown message kind"),
    "no sender": (edited(valid_frames(), lambda h: setattr(h, "sender", "")), "sender id"),
    "a missing tensor": (edited(valid_frames(), lambda h: h.tensors.pop()), "must carry tensors"),
    "a renamed tensor": (with_tensor(valid_frames(), 0, name="weights"), "must carry tensors"),
    "an unknown dtype": (with_tensor(valid_frames(), 0, dtype="float64"), "unknown dtype"),
    "a wrong rank": (with_tensor(valid_frames(), 1, shape=[50]), "dimensions"),
    "a size that disagrees with the shape": (with_tensor(valid_frames(), 1, data_bytes=8), "must announce"),
    "int8 without a block size": (with_tensor(valid_frames(), 0, dtype="int8", data_bytes=1850), "block_size"),
    "int4 without a block size": (with_tensor(valid_frames(), 0, dtype="int4", data_bytes=925), "block_size"),
    "int4 announcing a byte per element": (
        with_tensor(valid_frames(), 0, dtype="int4", block_size=16, data_bytes=1850, scales_bytes=4 * 116),
        "must announce"),
    "shapes that disagree": (with_tensor(valid_frames(), 2, shape=[4], data_bytes=16), "shapes disagree"),
    "too many bytes": ([*valid_frames(), chunk_frame(b"x")], "more than"),
    "too few bytes": (valid_frames()[:-1], "ended after"),
    "NaN in a tensor": (nan_payload(), "NaN"),
    "fractional labels": (fractional_labels(), "labels"),
    "a reply standing for fewer samples than its rows": (
        edited(valid_frames(), lambda h: setattr(h, "samples", 4)), "cannot stand for only 4"),
    "a sample count on another kind": (
        edited(valid_frames("WeightsMessage"), lambda h: setattr(h, "samples", 9)), "only a JacobianReply"),
    "more sampled rows than rows": (
        edited(valid_frames(), lambda h: (setattr(h, "samples", 9), setattr(h, "sampled_rows", 6))), "sampled rows"),
    "sampled rows standing for no count": (
        edited(valid_frames(), lambda h: setattr(h, "sampled_rows", 2)), "sampled rows"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_streams_raise_wire_error(case: str) -> None:
    stream, message = MALFORMED[case]
    with pytest.raises(WireError, match=message):
        assemble(stream)


def test_a_message_over_the_receivers_limit_is_refused_before_allocating() -> None:
    huge = with_tensor(valid_frames("WeightsMessage"), 0, shape=[1 << 40], data_bytes=4 << 40)
    with pytest.raises(WireError, match="exceeds the limit"):
        assemble(huge, max_message_bytes=1 << 30)

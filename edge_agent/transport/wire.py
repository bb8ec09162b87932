"""Round messages as a stream of gRPC frames and back: a header that describes every tensor, then raw bytes.

The sender encodes each tensor with its codec (the Jacobian and the weights at their configured precisions,
everything else fp32; a factored Jacobian is materialised with `.dense()`, as NTK-DFL sends full Jacobians),
then streams the tensors' bytes in header order, cut into chunks of at most `chunk_size` that may span
tensors. The receiver checks the header against the message schema and its own size limit, preallocates one
buffer per tensor and fills it in place: no message size ceiling, no repeated copies.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from edge_agent.learning.codec import EncodedTensor, all_finite, as_flat_float32, decode, encode
from edge_agent.learning.jacobian import DenseJacobian
from edge_agent.learning.messages import (
    ALL_FP32,
    JacobianReply,
    JacobianReplyBlocks,
    Message,
    WireCodecs,
    wire_array,
)
from edge_agent.transport.framing import chunk_frame, chunk_frame_size, cut, fill, read_frame
from edge_agent.transport.schema import ACK, KINDS, WireError, check_header, describe
from edge_agent.v1 import agent_pb2 as pb

DEFAULT_CHUNK_SIZE = 1 << 20
DEFAULT_MAX_MESSAGE_BYTES = 8 << 30
# gRPC puts a 5-byte prefix (compressed flag, 4-byte length) before every serialised message on a stream.
GRPC_MESSAGE_PREFIX = 5
# Called once per frame, before it is sent or after it arrived: (wire bytes, payload bytes, header or None).
FrameMeter = Callable[[int, int, "pb.MessageHeader | None"], None]

__all__ = ["ACK", "EncodedMessage", "FrameMeter", "StreamedMessage", "WireConfig", "WireError", "assemble",
           "encode_ack", "encode_blocks", "encode_message", "frames", "predicted_wire_bytes"]


@dataclass(frozen=True)
class WireConfig:
    """The tensors' codecs, the chunk size, and the largest message (payload bytes) a receiver accepts."""

    codecs: WireCodecs = ALL_FP32
    chunk_size: int = DEFAULT_CHUNK_SIZE
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES

    def __post_init__(self) -> None:
        if self.chunk_size < 1 or self.max_message_bytes < 0:
            raise ValueError(f"chunk_size must be >= 1 and max_message_bytes >= 0, got {self}")


@dataclass(frozen=True)
class EncodedMessage:
    """A message ready for the wire: its header and its tensors' bytes (data, then block scales) in header order."""

    header: pb.MessageHeader
    parts: tuple[memoryview, ...]


@dataclass(frozen=True)
class StreamedMessage:
    """A message whose bytes are produced while it is sent: `parts` yields them in header order as they are ready."""

    header: pb.MessageHeader
    parts: Iterator[memoryview]

    @property
    def payload_bytes(self) -> int:
        return sum(part.nbytes for part in self.parts)


def encode_message(message: Message, codecs: WireCodecs = ALL_FP32) -> EncodedMessage:
    """Header plus the encoded bytes of `message`'s tensors; ValueError if a tensor holds NaN or inf.

    fp32 tensors are not copied: their parts are views of the message's arrays until the frames are sent.
    """
    header = describe(message, codecs)
    parts = [part for info in header.tensors for part in _tensor_parts(info, getattr(message, info.name), codecs)]
    return EncodedMessage(header, tuple(part for part in parts if part.nbytes))


def _tensor_parts(info: pb.TensorInfo, value: object, codecs: WireCodecs) -> list[memoryview]:
    """One tensor's bytes on the wire: its data, then its block scales (none for fp32)."""
    array = wire_array(value)
    if info.dtype == "float32":
        return [_fp32_bytes(array)]  # the codec's fp32 bytes, without its copy
    encoded = encode(array, codecs.of(info.name))
    return [memoryview(encoded.data), memoryview(encoded.scales)]


def encode_blocks(blocks: JacobianReplyBlocks, codecs: WireCodecs = ALL_FP32) -> EncodedMessage | StreamedMessage:
    """A Jacobian reply whose rows are still being computed, ready for the wire: with fp32 Jacobians its rows are
    sent block by block while a thread computes the next block; otherwise (block scales follow all the data) it is
    computed whole first. The bytes are those `encode_message` makes of the whole reply; ValueError for NaN or inf."""
    reply = blocks.reply
    if codecs.of("jacobian").precision != "fp32" or not isinstance(reply.jacobian, DenseJacobian):
        encoded = encode_message(blocks.whole(), codecs)
        blocks.finish([])
        return encoded
    header = describe(reply, codecs)
    return StreamedMessage(header, _block_parts(blocks, reply.jacobian.values, header, codecs))


def _block_parts(blocks: JacobianReplyBlocks, jacobian: np.ndarray, header: pb.MessageHeader,
                 codecs: WireCodecs) -> Iterator[memoryview]:
    """The reply's bytes: each block's Jacobian rows as soon as they are computed, then logits and labels.

    The blocks after the first are computed one ahead, in a thread, while the frames of the rows before them wait
    for the link; `blocks.finish` hears the intervals in which the bytes were being sent."""
    sending: list[tuple[float, float]] = []  # from handing a part on until the frames asked for the next one
    for block in _ahead(blocks.rows()):
        started = time.perf_counter()
        yield _fp32_bytes(jacobian[block])
        sending.append((started, time.perf_counter()))
    started = time.perf_counter()
    for info in header.tensors[1:]:  # logits, labels
        yield from (part for part in _tensor_parts(info, getattr(blocks.reply, info.name), codecs) if part.nbytes)
    sending.append((started, time.perf_counter()))
    blocks.finish(sending)


def _ahead(items: Iterator[slice]) -> Iterator[slice]:
    """`items`, computed in a thread one item ahead of the reader.

    A reader that stops early (the call was cut) stops the thread after the item it is computing."""
    ready: queue.Queue[object] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: object) -> None:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                ready.put(item, timeout=0.2)
                return

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                put(item)
            put(_DONE)
        except BaseException as error:  # handed to the reader, which raises it
            put(error)
    threading.Thread(target=produce, name="reply-blocks", daemon=True).start()
    try:
        while (got := ready.get()) is not _DONE:
            if isinstance(got, BaseException):
                raise got
            assert isinstance(got, slice)
            yield got
    finally:
        stop.set()


_DONE = object()


def encode_ack(sender: str, round_index: int) -> EncodedMessage:
    """The reply to a one-way message: a header that carries nothing."""
    return EncodedMessage(pb.MessageHeader(kind=ACK, sender=sender, round=round_index), ())


def frames(message: EncodedMessage | StreamedMessage, chunk_size: int = DEFAULT_CHUNK_SIZE,
           meter: FrameMeter | None = None) -> Iterator[bytes]:
    """Serialised Frames: the header, then the payload in chunks of at most `chunk_size`.

    `meter` sees each frame just before it is handed on (and may block it, to throttle).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    header = pb.Frame(header=message.header).SerializeToString()
    if meter is not None:
        meter(len(header) + GRPC_MESSAGE_PREFIX, 0, message.header)
    yield header
    for piece in cut(message.parts, chunk_size):
        if meter is not None:
            meter(chunk_frame_size(len(piece)) + GRPC_MESSAGE_PREFIX, len(piece), None)
        yield chunk_frame(piece)


def assemble(stream: Iterable[bytes], max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
             meter: FrameMeter | None = None,
             admit: Callable[[pb.MessageHeader], None] | None = None) -> Message | None:
    """The message serialised Frames carry (None for an Ack); WireError for anything its header did not promise.

    `meter` sees each frame as it arrives, before its bytes are checked or copied; `admit` sees the checked header
    before anything is allocated for its tensors, and may refuse it by raising (limits.py: this run's shapes).
    """
    iterator = iter(stream)
    raw = next(iterator, None)
    header = read_frame(raw) if raw is not None else None
    if not isinstance(header, pb.MessageHeader):
        raise WireError("a message must start with a header frame")
    if meter is not None and raw is not None:
        meter(len(raw) + GRPC_MESSAGE_PREFIX, 0, header)
    layout = check_header(header, max_message_bytes)  # per tensor: (data bytes, scale bytes)
    if admit is not None:
        admit(header)
    buffers = [(np.empty(data, np.uint8), np.empty(scales, np.uint8)) for data, scales in layout]
    fill(_chunks_of(iterator, meter), [b.data for pair in buffers for b in pair if b.size])
    if header.kind == ACK:
        return None
    values = [_decode(info, data, scales) for info, (data, scales) in zip(header.tensors, buffers, strict=True)]
    cls = KINDS[header.kind].cls
    if cls is JacobianReply:
        jacobian, logits, labels = values
        return JacobianReply(header.sender, header.round, DenseJacobian(jacobian), logits, _labels(labels),
                             int(header.samples), int(header.sampled_rows))
    return cls(header.sender, header.round, *values)


def predicted_wire_bytes(header: pb.MessageHeader, chunk_size: int) -> int:
    """The wire bytes `frames` of a message with this header amount to, without encoding it."""
    total = sum(int(t.data_bytes + t.scales_bytes) for t in header.tensors)
    full, rest = divmod(total, chunk_size)
    frames_bytes = int(pb.Frame(header=header).ByteSize()) + full * chunk_frame_size(chunk_size)
    frames_bytes += chunk_frame_size(rest) if rest else 0
    return frames_bytes + GRPC_MESSAGE_PREFIX * (1 + full + (1 if rest else 0))


def _chunks_of(stream: Iterator[bytes], meter: FrameMeter | None) -> Iterator[memoryview]:
    for raw in stream:
        chunk = read_frame(raw)
        if not isinstance(chunk, memoryview):
            raise WireError("got a second header frame in the middle of a message")
        if meter is not None:
            meter(len(raw) + GRPC_MESSAGE_PREFIX, len(chunk), None)
        yield chunk


def _fp32_bytes(array: np.ndarray) -> memoryview:
    """Little-endian float32 bytes of `array`, a view when it already is contiguous float32 (as `encode` checks)."""
    values = as_flat_float32(array)
    if not all_finite(values):
        raise ValueError("tensor contains NaN or inf; refusing to encode it")
    return values.data.cast("B")


def _decode(info: pb.TensorInfo, data: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """float32 array of the tensor (zero-copy for fp32); WireError if it holds NaN or inf."""
    shape = tuple(int(s) for s in info.shape)
    if info.dtype == "float32":
        values = data.view("<f4").astype(np.float32, copy=False).reshape(shape)
    else:
        values = decode(EncodedTensor(info.dtype, shape, data.tobytes(), scales.tobytes(), max(info.block_size, 1)))
    if not all_finite(values):
        raise WireError(f"tensor {info.name!r} contains NaN or inf")
    return values


def _labels(values: np.ndarray) -> np.ndarray:
    """Integer class labels from their fp32 wire form; WireError for fractional or negative ones."""
    labels = values.astype(np.int64)
    if np.any(labels != values) or np.any(labels < 0):
        raise WireError("labels must be non-negative integers")
    return labels

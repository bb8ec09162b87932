"""Frames as the bytes gRPC carries: chunk frames written and read directly, and payloads cut and refilled.

The protobuf encoding of `Frame{chunk: b}` is one tag byte (field 2, length-delimited), b's length as a varint,
then b. Writing and reading that directly saves two copies of every chunk inside protobuf, which is most of
the sender's and receiver's CPU on a fast link. Header frames, and any frame not in that exact form (unknown
fields, non-minimal varints), go through the generated protobuf classes, so any conforming peer interoperates.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from google.protobuf.message import DecodeError  # type: ignore[import-untyped]

from edge_agent.transport.schema import WireError
from edge_agent.v1 import agent_pb2 as pb

CHUNK_TAG = b"\x12"  # field 2 (chunk), wire type 2 (length-delimited)


def chunk_frame(piece: bytes | memoryview) -> bytes:
    """The serialised `Frame{chunk: piece}` (one copy of the piece)."""
    return b"".join((CHUNK_TAG, _varint(len(piece)), piece))


def chunk_frame_size(n: int) -> int:
    """Serialised size of a chunk frame carrying n bytes: tag, varint length, the bytes."""
    return 1 + len(_varint(n)) + n


def read_frame(raw: bytes) -> pb.MessageHeader | memoryview:
    """A serialised frame's header, or a view of its chunk bytes; WireError if it is neither."""
    view = memoryview(raw)
    if view[:1] == CHUNK_TAG:
        length, start = _read_varint(view, 1)
        if start + length == len(view):
            return view[start:]
    try:
        frame = pb.Frame.FromString(raw)
    except DecodeError as error:
        raise WireError(f"a frame is not a valid edge_agent.v1.Frame: {error}") from error
    body = frame.WhichOneof("body")
    if body is None:
        raise WireError("got an empty frame, neither header nor chunk")
    return frame.header if body == "header" else memoryview(frame.chunk)


def cut(parts: Iterable[memoryview], size: int) -> Iterator[bytes | memoryview]:
    """The concatenation of `parts` in pieces of `size` bytes (the last may be shorter); views where possible."""
    pending = bytearray()
    for whole in parts:
        part = whole.cast("B") if whole.format != "B" or whole.ndim != 1 else whole
        offset = 0
        while offset < len(part):
            if not pending and len(part) - offset >= size:
                yield part[offset : offset + size]
                offset += size
                continue
            take = min(size - len(pending), len(part) - offset)
            pending += part[offset : offset + take]
            offset += take
            if len(pending) == size:
                yield bytes(pending)
                pending.clear()
    if pending:
        yield bytes(pending)


def fill(chunks: Iterable[memoryview], targets: Sequence[memoryview]) -> None:
    """Copy `chunks` into `targets` in order; WireError if they carry more or fewer bytes than the targets hold."""
    expected = sum(t.nbytes for t in targets)
    index, offset, received = 0, 0, 0
    for chunk in chunks:
        received += len(chunk)
        if received > expected:
            raise WireError(f"the stream carries more than the {expected} payload bytes its header announced")
        position = 0
        while position < len(chunk):
            take = min(targets[index].nbytes - offset, len(chunk) - position)
            targets[index][offset : offset + take] = chunk[position : position + take]
            position, offset = position + take, offset + take
            if offset == targets[index].nbytes:
                index, offset = index + 1, 0
    if received < expected:
        raise WireError(f"the stream ended after {received} of the {expected} payload bytes its header announced")


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_varint(view: memoryview, start: int) -> tuple[int, int]:
    """(value, index after it) of the varint at `start`; (-1, start) if it is truncated or over 10 bytes."""
    value, shift = 0, 0
    for index in range(start, min(len(view), start + 10)):
        value |= (view[index] & 0x7F) << shift
        if not view[index] & 0x80:
            return value, index + 1
        shift += 7
    return -1, start

"""What each message kind carries on the wire, and the checks a receiver makes before trusting a header."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

from edge_agent.learning.codec import BLOCK_SCALED_DTYPES, WIRE_DTYPE_OF, data_bytes, scale_bytes
from edge_agent.learning.messages import (
    ALL_FP32,
    CandidateRequest,
    CandidateScores,
    JacobianReply,
    JacobianRequest,
    Message,
    PullBackReply,
    PullBackRequest,
    WeightsMessage,
    WireCodecs,
)
from edge_agent.v1 import agent_pb2 as pb

ACK = "Ack"
MAX_SENDER_LENGTH = 256
_WIRE_DTYPES = frozenset(WIRE_DTYPE_OF.values())


class WireError(ValueError):
    """A peer sent frames that do not form a valid message."""


@dataclass(frozen=True)
class KindSpec:
    """A message class and its tensor fields with their number of dimensions, in wire order."""

    cls: Callable[..., Message]
    tensors: tuple[tuple[str, int], ...]


KINDS = MappingProxyType({
    "WeightsMessage": KindSpec(WeightsMessage, (("weights", 1),)),
    "JacobianRequest": KindSpec(JacobianRequest, (("weights", 1),)),
    "JacobianReply": KindSpec(JacobianReply, (("jacobian", 3), ("logits", 2), ("labels", 1))),
    "CandidateRequest": KindSpec(CandidateRequest, (("updates", 2),)),
    "CandidateScores": KindSpec(CandidateScores, (("loss_sums", 1),)),
    "PullBackRequest": KindSpec(PullBackRequest, (("residuals", 3),)),
    "PullBackReply": KindSpec(PullBackReply, (("pulled", 2),)),
})


def describe(message: Message, codecs: WireCodecs = ALL_FP32) -> pb.MessageHeader:
    """The header of `message` from its tensors' shapes alone (nothing is encoded)."""
    kind = type(message).__name__
    if kind not in KINDS:
        raise TypeError(f"{kind} is not a round message")
    samples, sampled = (message.samples, message.sampled_rows) if isinstance(message, JacobianReply) else (0, 0)
    header = pb.MessageHeader(kind=kind, sender=message.sender, round=message.round, samples=samples,
                              sampled_rows=sampled)
    for name, ndim in KINDS[kind].tensors:
        shape = tuple(int(s) for s in getattr(message, name).shape)
        if len(shape) != ndim:
            raise ValueError(f"{kind}.{name} must have {ndim} dimensions, got shape {shape}")
        codec = codecs.of(name)
        dtype, n = WIRE_DTYPE_OF[codec.precision], math.prod(shape)
        block_size = codec.block_size if dtype in BLOCK_SCALED_DTYPES else 0
        header.tensors.add(name=name, dtype=dtype, shape=shape, block_size=block_size, data_bytes=data_bytes(dtype, n),
                           scales_bytes=scale_bytes(dtype, n, codec.block_size))
    return header


def check_header(header: pb.MessageHeader, max_message_bytes: int) -> list[tuple[int, int]]:
    """Per tensor (data bytes, scale bytes) after checking the header; WireError if a peer could not mean it."""
    if header.kind != ACK and header.kind not in KINDS:
        raise WireError(f"unknown message kind {header.kind!r}")
    if len(header.sender) > MAX_SENDER_LENGTH or (header.kind != ACK and not header.sender):
        raise WireError(f"sender id must be 1..{MAX_SENDER_LENGTH} characters, got {len(header.sender)}")
    expected = KINDS[header.kind].tensors if header.kind != ACK else ()
    names = [t.name for t in header.tensors]
    if names != [name for name, _ in expected]:
        raise WireError(f"{header.kind} must carry tensors {[n for n, _ in expected]}, got {names}")
    sizes = [_tensor_sizes(info, ndim) for info, (_, ndim) in zip(header.tensors, expected, strict=True)]
    total = sum(data + scales for data, scales in sizes)
    if total > max_message_bytes:
        raise WireError(f"{header.kind} of {total} payload bytes exceeds the limit of {max_message_bytes}")
    if header.kind == "JacobianReply":
        _check_reply_shapes(header)
    elif header.samples or header.sampled_rows:
        raise WireError(f"only a JacobianReply carries sample counts, got {header.samples} and "
                        f"{header.sampled_rows} on a {header.kind}")
    return sizes


def _tensor_sizes(info: pb.TensorInfo, ndim: int) -> tuple[int, int]:
    if info.dtype not in _WIRE_DTYPES:
        raise WireError(f"tensor {info.name!r} has unknown dtype {info.dtype!r}")
    if len(info.shape) != ndim:
        raise WireError(f"tensor {info.name!r} must have {ndim} dimensions, got shape {list(info.shape)}")
    n = math.prod(info.shape)
    data = data_bytes(info.dtype, n)
    if info.dtype in BLOCK_SCALED_DTYPES and info.block_size < 1:
        raise WireError(f"{info.dtype} tensor {info.name!r} needs a block_size >= 1")
    scales = scale_bytes(info.dtype, n, info.block_size)  # 0 unless block-scaled, whose block_size was checked
    if (info.data_bytes, info.scales_bytes) != (data, scales):
        raise WireError(f"tensor {info.name!r} ({info.dtype}, shape {list(info.shape)}) must announce {data} data "
                        f"and {scales} scale bytes, announced {info.data_bytes} and {info.scales_bytes}")
    return data, scales


def _check_reply_shapes(header: pb.MessageHeader) -> None:
    jacobian, logits, labels = (list(t.shape) for t in header.tensors)  # (N, C, p), (N, C), (N,)
    if logits != jacobian[:2] or labels != jacobian[:1]:
        raise WireError(f"JacobianReply shapes disagree: jacobian {jacobian}, logits {logits}, labels {labels}")
    if 0 < header.samples < jacobian[0]:
        raise WireError(f"JacobianReply of {jacobian[0]} rows cannot stand for only {header.samples} samples")
    if header.sampled_rows and (header.sampled_rows > jacobian[0] or not header.samples):
        raise WireError(f"JacobianReply of {jacobian[0]} rows standing for {header.samples} samples cannot have "
                        f"{header.sampled_rows} sampled rows")

"""The typed messages of one round; the simulator passes them through memory and the agent through gRPC.

A message's payload size is counted from the arrays it actually carries, so the simulator and the agent
account bytes from the same objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from typing import Any, Protocol, TypeVar

import numpy as np

from edge_agent.learning.codec import CodecConfig, decode, encode, encoded_size
from edge_agent.learning.jacobian import DenseJacobian, FactoredJacobian
from edge_agent.learning.mlp import FloatArray

FP32 = CodecConfig("fp32")


class Sized(Protocol):
    """Anything that knows how many elements it puts on the wire (arrays and Jacobian operators)."""

    @property
    def size(self) -> int: ...


@dataclass(frozen=True)
class WeightsMessage:
    """w_j sent to a neighbour for the round's averaging step."""

    sender: str
    round: int
    weights: FloatArray  # (d,)


@dataclass(frozen=True)
class JacobianRequest:
    """Client i's neighbourhood average wbar_i, asking a neighbour for its Jacobian there."""

    sender: str
    round: int
    weights: FloatArray  # (d,)


@dataclass(frozen=True)
class JacobianReply:
    """A neighbour's Jacobian of its own data at wbar_i, its logits f0 there and its labels.

    A SPARK neighbour may send only its rows with the largest residuals; `samples` then says how many local
    samples they stand for, which the requester's 1/N uses (0: exactly the rows sent). Its last `sampled_rows`
    rows may be a random draw from the samples it did not send before them, each standing for an equal part.
    """

    sender: str
    round: int
    jacobian: Sized  # (N_j, C, p): p = d for NTK-DFL, m for SPARK
    logits: FloatArray  # (N_j, C)
    labels: np.ndarray  # (N_j,)
    samples: int = 0
    sampled_rows: int = 0

    @property
    def represented_samples(self) -> int:
        """The local samples these rows stand for in the requester's normalisation."""
        return self.samples or len(self.labels)

    def row_weights(self) -> FloatArray:
        """How many samples each row stands for: 1, except the sampled rows, which share the samples not sent."""
        rows = len(self.labels)
        weights = np.ones(rows)
        if self.sampled_rows:
            first = rows - self.sampled_rows
            weights[first:] = (self.represented_samples - first) / self.sampled_rows
        return weights


class JacobianReplyBlocks:
    """A JacobianReply whose rows are computed block by block, so they can be sent as they are computed.

    `reply` has the whole reply's arrays from the start (its shapes, labels and first block are final); `rows()`
    computes the other blocks into them in place, yielding each block's rows once they hold their final values.
    The blocks are the ones the reply is computed in anyway, so the reply is the same bits streamed or not.
    `finish(sending)` is told, once the reply has left, the intervals (perf_counter seconds) its bytes were sent in.
    """

    def __init__(self, reply: JacobianReply, first: slice, rest: Iterator[slice]) -> None:
        self.reply, self.first, self.rest = reply, first, rest  # rest computes as it is iterated
        self.on_finish: Callable[[list[tuple[float, float]]], None] | None = None

    def rows(self) -> Iterator[slice]:
        """The first block's rows, then each further block's as it is computed (once: it drives the compute)."""
        yield self.first
        yield from self.rest

    def whole(self) -> JacobianReply:
        """The reply with every block computed."""
        for _ in self.rest:
            pass
        return self.reply

    def finish(self, sending: list[tuple[float, float]]) -> None:
        if self.on_finish is not None:
            self.on_finish(sending)


@dataclass(frozen=True)
class CandidateRequest:
    """Candidate updates of wbar_i, one per tau, for a neighbour to score on its data."""

    sender: str
    round: int
    updates: FloatArray  # (T, p)


@dataclass(frozen=True)
class PullBackRequest:
    """The requester's residual sums R(tau) for a neighbour's rows, weighted and scaled, one per candidate tau:
    the neighbour pulls them back through its own projected Jacobian (SPARK with a kernel sketch)."""

    sender: str
    round: int
    residuals: FloatArray  # (T, N_j, C)


@dataclass(frozen=True)
class PullBackReply:
    """A neighbour's sum_c Jt_c^T R_c in R^m for each candidate tau, from its own rows."""

    sender: str
    round: int
    pulled: FloatArray  # (T, m)


@dataclass(frozen=True)
class CandidateScores:
    """Summed cross-entropy of each candidate on the neighbour's data."""

    sender: str
    round: int
    loss_sums: FloatArray  # (T,)


Message = (WeightsMessage | JacobianRequest | JacobianReply | CandidateRequest | CandidateScores | PullBackRequest
           | PullBackReply)


def payload_elements(message: Message) -> int:
    """Tensor elements the message carries (ids and round numbers are framing, not payload)."""
    return sum(int(value.size) for f in fields(message) if hasattr(value := getattr(message, f.name), "size"))


@dataclass(frozen=True)
class WireCodecs:
    """The precision of each tensor on the wire: the reply's Jacobian, the weights of both weight messages
    (the exchange and the Jacobian request), the candidate request's updates, and both tensors of the pull-back
    (residual sums out, pulled-back sums in); every other tensor is fp32."""

    jacobian: CodecConfig = FP32
    weights: CodecConfig = FP32
    updates: CodecConfig = FP32
    pullback: CodecConfig = FP32

    def of(self, tensor: str) -> CodecConfig:
        """The codec of a message field by its name."""
        return {"jacobian": self.jacobian, "weights": self.weights, "updates": self.updates,
                "residuals": self.pullback, "pulled": self.pullback}.get(tensor, FP32)


ALL_FP32 = WireCodecs()
M = TypeVar("M", bound=Message)


def payload_bytes(message: Message, codecs: WireCodecs = ALL_FP32) -> int:
    """Payload bytes on the wire, each tensor in its codec's precision."""
    total = 0
    for f in fields(message):
        value = getattr(message, f.name)
        if hasattr(value, "size"):
            total += encoded_size(int(value.size), codecs.of(f.name))
    return total


def wire_array(value: object) -> np.ndarray:
    """The array a message field puts on the wire: a Jacobian's dense values (NTK-DFL sends full Jacobians)."""
    if isinstance(value, FactoredJacobian):
        return value.dense()  # (N, C, d)
    if isinstance(value, DenseJacobian):
        return value.values
    if isinstance(value, np.ndarray):
        return value
    raise TypeError(f"cannot put a {type(value).__name__} on the wire")


def as_received(message: M, codecs: WireCodecs) -> M:
    """`message` as the receiver decodes it: every tensor with a lossy codec through encode and decode."""
    changes: dict[str, Any] = {}
    for f in fields(message):
        codec = codecs.of(f.name)
        if codec.precision == "fp32":
            continue
        decoded = decode(encode(wire_array(getattr(message, f.name)), codec))
        changes[f.name] = DenseJacobian(decoded) if f.name == "jacobian" else decoded
    return replace(message, **changes) if changes else message

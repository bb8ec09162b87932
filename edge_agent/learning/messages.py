"""The typed messages of one round; the simulator passes them through memory and the agent through gRPC.

A message's payload size is counted from the arrays it actually carries, so the simulator and the agent
account bytes from the same objects.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Protocol

import numpy as np

from edge_agent.learning.codec import CodecConfig, encoded_size
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
    """A neighbour's Jacobian of its own data at wbar_i, its logits f0 there and its labels."""

    sender: str
    round: int
    jacobian: Sized  # (N_j, C, p): p = d for NTK-DFL, m for SPARK
    logits: FloatArray  # (N_j, C)
    labels: np.ndarray  # (N_j,)


@dataclass(frozen=True)
class CandidateRequest:
    """Candidate updates of wbar_i, one per tau, for a neighbour to score on its data."""

    sender: str
    round: int
    updates: FloatArray  # (T, p)


@dataclass(frozen=True)
class CandidateScores:
    """Summed cross-entropy of each candidate on the neighbour's data."""

    sender: str
    round: int
    loss_sums: FloatArray  # (T,)


Message = WeightsMessage | JacobianRequest | JacobianReply | CandidateRequest | CandidateScores


def payload_elements(message: Message) -> int:
    """Tensor elements the message carries (ids and round numbers are framing, not payload)."""
    return sum(int(value.size) for f in fields(message) if hasattr(value := getattr(message, f.name), "size"))


def payload_bytes(message: Message, jacobian_codec: CodecConfig = FP32) -> int:
    """Payload bytes on the wire: the Jacobian in `jacobian_codec`'s precision, every other tensor in fp32."""
    total = 0
    for f in fields(message):
        value = getattr(message, f.name)
        if hasattr(value, "size"):
            codec = jacobian_codec if isinstance(message, JacobianReply) and f.name == "jacobian" else FP32
            total += encoded_size(int(value.size), codec)
    return total

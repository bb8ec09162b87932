"""What a receiver accepts before it allocates anything: declared shapes this run can send, calls per caller.

A header is checked against the shapes that follow from the model (d weights, C classes), the most samples a
shard can hold (N), the reply width (m for SPARK, or its kernel sketch's m'; d for NTK-DFL), the update width
(m for SPARK) and the number of candidates (one per tau), so a peer cannot make an agent preallocate more than the
largest message of its own run. Concurrent calls are
bounded per caller and in all, leaving workers free for health checks, PeerInfo, Status and honest peers.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from edge_agent.learning.codec import data_bytes, scale_bytes
from edge_agent.transport.schema import WireError
from edge_agent.v1 import agent_pb2 as pb


@dataclass(frozen=True)
class MessageLimits:
    """The largest tensors any agent of this run sends: (d,) weights, (N, C, p) replies, (T, m) candidates and
    pulled-back sums, (T, N, C) residual sums."""

    num_params: int  # d
    max_samples: int  # N: the most samples a shard holds
    classes: int  # C
    reply_width: int  # p: m for SPARK (m' with a kernel sketch), d for NTK-DFL
    max_candidates: int  # T: one candidate per tau
    update_width: int = 0  # m of the candidates and pulled-back sums (0: the reply width)

    def __post_init__(self) -> None:
        if min(self.num_params, self.max_samples, self.classes, self.reply_width, self.max_candidates) < 1:
            raise ValueError(f"every limit must be >= 1, got {self}")

    def allowed_shapes(self, kind: str) -> tuple[tuple[int, ...], ...]:
        """Per tensor the largest shape of a `kind` message; a declared dimension may be smaller only where
        the count varies (samples N, candidates T)."""
        d, n, c, p, t = self.num_params, self.max_samples, self.classes, self.reply_width, self.max_candidates
        m = self.update_width or p
        return {"WeightsMessage": ((d,),), "JacobianRequest": ((d,),), "JacobianReply": ((n, c, p), (n, c), (n,)),
                "CandidateRequest": ((t, m),), "CandidateScores": ((t,),), "PullBackRequest": ((t, n, c),),
                "PullBackReply": ((t, m),)}.get(kind, ())

    def check(self, header: pb.MessageHeader) -> None:
        """WireError unless every tensor the header declares fits this run (called before any allocation)."""
        varying = _VARYING_AXES.get(header.kind, ())
        for info, largest in zip(header.tensors, self.allowed_shapes(header.kind), strict=False):
            shape = tuple(int(s) for s in info.shape)
            fits = len(shape) == len(largest) and all(
                size <= most if axis in varying else size == most
                for axis, (size, most) in enumerate(zip(shape, largest, strict=True)))
            if not fits:
                raise WireError(f"{header.kind}.{info.name} of shape {list(shape)} does not fit this run "
                                f"(at most {list(largest)})")
        if header.samples > self.max_samples:
            raise WireError(f"{header.kind} stands for {header.samples} samples, more than a shard holds "
                            f"({self.max_samples})")

    @property
    def max_message_bytes(self) -> int:
        """Payload bytes of the largest message of this run (fp32 everywhere, plus block scales at worst)."""
        largest = 0
        for kind in ("WeightsMessage", "JacobianReply", "CandidateRequest", "CandidateScores", "PullBackRequest",
                     "PullBackReply"):
            elements = [_prod(shape) for shape in self.allowed_shapes(kind)]
            largest = max(largest, sum(data_bytes("float32", n) + scale_bytes("int4", n, 1) for n in elements))
        return largest


# The axes whose size varies between messages (samples, candidates); every other axis is exact.
_VARYING_AXES = {"JacobianReply": (0,), "CandidateRequest": (0,), "CandidateScores": (0,), "PullBackRequest": (0, 1),
                 "PullBackReply": (0,)}


def _prod(shape: tuple[int, ...]) -> int:
    total = 1
    for size in shape:
        total *= size
    return total


class BusyError(RuntimeError):
    """A caller already holds its share of the server's calls, or the server all it gives to round calls."""


class CallGate:
    """At most `per_caller` concurrent calls per caller and `total` in all; thread-safe."""

    def __init__(self, per_caller: int, total: int) -> None:
        if per_caller < 1 or total < per_caller:
            raise ValueError(f"need 1 <= per_caller <= total, got {per_caller} and {total}")
        self.per_caller, self.total = per_caller, total
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextmanager
    def slot(self, caller: str) -> Iterator[None]:
        """Hold one of the caller's slots within the block; BusyError (at once, no waiting) if none is free."""
        with self._lock:
            if self._held[caller] >= self.per_caller:
                raise BusyError(f"{caller} already has {self.per_caller} calls in progress")
            if sum(self._held.values()) >= self.total:
                raise BusyError(f"all {self.total} round-call slots are busy")
            self._held[caller] += 1
        try:
            yield
        finally:
            with self._lock:
                self._held[caller] -= 1
                if not self._held[caller]:
                    del self._held[caller]

    def in_use(self) -> int:
        with self._lock:
            return sum(self._held.values())

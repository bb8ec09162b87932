"""The agent's answer to incoming round messages: neighbours' weights go to the inbox, requests to the Responder."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import numpy as np

from edge_agent.agent.inbox import WeightsInbox
from edge_agent.agent.traffic import RoundTraffic
from edge_agent.learning.exchange import Responder
from edge_agent.learning.messages import (
    CandidateRequest,
    JacobianReplyBlocks,
    JacobianRequest,
    Message,
    PullBackRequest,
    WeightsMessage,
)
from edge_agent.transport.contract import NOT_A_MEMBER, PROVEN_PREFIX
from edge_agent.transport.limits import MessageLimits
from edge_agent.transport.schema import describe

# The served-seconds total each answered message adds to (a Jacobian request: "jacobian").
_SERVED_AS = {"CandidateRequest": "score", "PullBackRequest": "pullback"}
# No model this run trains has a weight (or a candidate update) this large; beyond it replies overflow float32.
MAX_ABS_VALUE = 1e6


class ServedSeconds:
    """Running totals (thread-safe) of this agent's neighbour-side compute, its own requests included: `jacobian`,
    `pullback` and `score` seconds, and `overlap`, the seconds of Jacobian compute during which the same reply's
    earlier rows were on the wire (transfer hidden behind compute). A round's record takes the difference since the
    last one."""

    def __init__(self) -> None:
        self._seconds = dict.fromkeys(("jacobian", "pullback", "score", "overlap"), 0.0)
        self._lock = threading.Lock()

    def add(self, kind: str, seconds: float) -> None:
        with self._lock:
            self._seconds[kind] += seconds

    def totals(self) -> dict[str, float]:
        with self._lock:
            return dict(self._seconds)


def overlap_seconds(first: list[tuple[float, float]], second: list[tuple[float, float]]) -> float:
    """Seconds covered by an interval of `first` and one of `second` at once (the intervals of each are disjoint)."""
    return sum(max(0.0, min(a_end, b_end) - max(a_start, b_start))
               for a_start, a_end in first for b_start, b_end in second)


class AgentHandler:
    """The transport's MessageHandler for one agent.

    With `in_blocks`, a peer's Jacobian request is answered with blocks still to be computed (the transport sends
    each as it is ready); the blocks are computed one at a time across requests, like whole replies.
    """

    def __init__(self, responder: Responder, inbox: WeightsInbox, traffic: RoundTraffic,
                 on_message: Callable[[Message], None] | None = None, is_member: Callable[[str], bool] | None = None,
                 rounds: Callable[[], tuple[int, int]] | None = None, limits: MessageLimits | None = None,
                 in_blocks: bool = False) -> None:
        self.responder = responder
        self.in_blocks = in_blocks
        self.served = ServedSeconds()
        self.inbox = inbox
        self.traffic = traffic
        self._on_message = on_message  # hears each accepted message: a peer that calls us is alive
        self._is_member = is_member  # None: anyone (tests of the round code alone)
        self._rounds = rounds  # the rounds (first, last) a message may be for now
        self._limits = limits  # the shapes this run's messages have
        self._answering = threading.Lock()

    def handle(self, message: Message, peer: str) -> Message | JacobianReplyBlocks | None:
        """The reply (None for weights, which go to the inbox). PermissionError for a sender that is neither a
        member nor proven by its certificate; ValueError for a round far from ours or weights that do not fit."""
        self.check_sender(message, peer)
        self.check_values(message)
        reply: Message | JacobianReplyBlocks | None
        if isinstance(message, WeightsMessage):
            self.inbox.put(message)
            reply = None
        elif isinstance(message, JacobianRequest) and self.in_blocks:
            reply = self.answer_in_blocks(message)
            self.traffic.sent(reply.reply)
        else:
            reply = self.answer(message)  # ValueError (nothing kept) for candidates without a Jacobian request
            self.traffic.sent(reply)
        self.traffic.received(message)  # counted, and its sender heard from, only once accepted
        if self._on_message is not None:
            self._on_message(message)
        return reply

    def check_sender(self, message: Message, peer: str) -> None:
        """Refuse (before anything is stored) what no current member of this run could have sent now."""
        proven = peer == f"{PROVEN_PREFIX}{message.sender}"  # over mTLS: a cluster board, whose run was checked
        if self._is_member is not None and not proven and not self._is_member(message.sender):
            raise PermissionError(f"{message.sender!r:.60} {NOT_A_MEMBER}")
        if self._rounds is not None:
            first, last = self._rounds()
            if not first <= message.round <= last:
                raise ValueError(f"round {message.round} is not near this agent's rounds {first}..{last}")

    def check_values(self, message: Message) -> None:
        """ValueError for shapes this run never sends and values no model it trains holds (before any is stored)."""
        if isinstance(message, WeightsMessage | JacobianRequest):
            if message.weights.shape != (self.responder.method.spec.num_params,):
                raise ValueError(f"weights of shape {message.weights.shape} do not fit this model")
            values = message.weights
        elif isinstance(message, CandidateRequest):
            values = message.updates
        elif isinstance(message, PullBackRequest):
            values = message.residuals
        else:
            raise ValueError(f"an agent is not sent {type(message).__name__}")
        if self._limits is not None:
            self._limits.check(describe(message))
        if values.size and not float(np.max(np.abs(values))) <= MAX_ABS_VALUE:
            raise ValueError(f"{type(message).__name__} holds values beyond +-{MAX_ABS_VALUE:g} (or NaN)")

    def answer(self, message: Message) -> Message | None:
        """The Responder's reply, computed for one requester at a time (this agent's own requests included).

        Every member of a neighbourhood asks at once; answered concurrently, each request holds its own kernel
        working set and reply buffers, so the peak grows with the number of neighbours. One at a time, the peak is
        one request's, and the profile's jacobian_chunk bounds that.
        """
        with self._answering:
            started = time.perf_counter()
            reply = self.responder.handle(message)
            self.served.add(_SERVED_AS.get(type(message).__name__, "jacobian"), time.perf_counter() - started)
            return reply

    def answer_in_blocks(self, request: JacobianRequest) -> JacobianReplyBlocks:
        """The Responder's reply as blocks: the first computed now, each other one when the transport reads it,
        each under the same one-at-a-time lock as a whole reply (so the peak stays one block's working set)."""
        with self._answering:
            started = time.perf_counter()
            blocks = self.responder.handle_in_blocks(request)
            self.served.add("jacobian", time.perf_counter() - started)
        assert isinstance(blocks, JacobianReplyBlocks)
        computing: list[tuple[float, float]] = []  # when the blocks after the first were computed
        paced = JacobianReplyBlocks(blocks.reply, blocks.first, self._one_at_a_time(blocks.rest, computing))
        paced.on_finish = lambda sending: self.served.add("overlap", overlap_seconds(computing, sending))
        return paced

    def _one_at_a_time(self, rest: Iterator[slice], computing: list[tuple[float, float]]) -> Iterator[slice]:
        while True:
            with self._answering:
                started = time.perf_counter()
                rows = next(rest, None)
                ended = time.perf_counter()
            self.served.add("jacobian", ended - started)
            if rows is None:
                return
            computing.append((started, ended))
            yield rows

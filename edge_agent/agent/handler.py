"""The agent's answer to incoming round messages: neighbours' weights go to the inbox, requests to the Responder."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from edge_agent.agent.inbox import WeightsInbox
from edge_agent.agent.traffic import RoundTraffic
from edge_agent.learning.exchange import Responder
from edge_agent.learning.messages import CandidateRequest, JacobianRequest, Message, WeightsMessage
from edge_agent.transport.contract import PROVEN_PREFIX
from edge_agent.transport.limits import MessageLimits
from edge_agent.transport.schema import describe

# No model this run trains has a weight (or a candidate update) this large; beyond it replies overflow float32.
MAX_ABS_VALUE = 1e6


class AgentHandler:
    """The transport's MessageHandler for one agent."""

    def __init__(self, responder: Responder, inbox: WeightsInbox, traffic: RoundTraffic,
                 on_message: Callable[[Message], None] | None = None, is_member: Callable[[str], bool] | None = None,
                 rounds: Callable[[], tuple[int, int]] | None = None, limits: MessageLimits | None = None) -> None:
        self.responder = responder
        self.inbox = inbox
        self.traffic = traffic
        self._on_message = on_message  # hears each accepted message: a peer that calls us is alive
        self._is_member = is_member  # None: anyone (tests of the round code alone)
        self._rounds = rounds  # the rounds (first, last) a message may be for now
        self._limits = limits  # the shapes this run's messages have
        self._answering = threading.Lock()

    def handle(self, message: Message, peer: str) -> Message | None:
        """The reply (None for weights, which go to the inbox). PermissionError for a sender that is neither a
        member nor proven by its certificate; ValueError for a round far from ours or weights that do not fit."""
        self.check_sender(message, peer)
        self.check_values(message)
        if isinstance(message, WeightsMessage):
            self.inbox.put(message)
            reply = None
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
            raise PermissionError(f"{message.sender!r:.60} is not a member of this run")
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
            return self.responder.handle(message)

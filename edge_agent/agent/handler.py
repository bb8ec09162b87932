"""The agent's answer to incoming round messages: neighbours' weights go to the inbox, requests to the Responder."""

from __future__ import annotations

import threading
from collections.abc import Callable

from edge_agent.agent.inbox import WeightsInbox
from edge_agent.agent.traffic import RoundTraffic
from edge_agent.learning.exchange import Responder
from edge_agent.learning.messages import Message, WeightsMessage


class AgentHandler:
    """The transport's MessageHandler for one agent."""

    def __init__(self, responder: Responder, inbox: WeightsInbox, traffic: RoundTraffic,
                 on_message: Callable[[Message], None] | None = None) -> None:
        self.responder = responder
        self.inbox = inbox
        self.traffic = traffic
        self._on_message = on_message  # hears each message: a peer that calls us is alive
        self._answering = threading.Lock()

    def handle(self, message: Message, peer: str) -> Message | None:
        self.traffic.received(message)
        if self._on_message is not None and not isinstance(message, WeightsMessage):
            self._on_message(message)
        if isinstance(message, WeightsMessage):
            if message.weights.shape != (self.responder.method.spec.num_params,):
                raise ValueError(f"weights of shape {message.weights.shape} do not fit this model")
            self.inbox.put(message)
            if self._on_message is not None:  # after the inbox has it
                self._on_message(message)
            return None
        reply = self.answer(message)
        self.traffic.sent(reply)
        return reply

    def answer(self, message: Message) -> Message | None:
        """The Responder's reply, computed for one requester at a time (this agent's own requests included).

        Every member of a neighbourhood asks at once; answered concurrently, each request holds its own kernel
        working set and reply buffers, so the peak grows with the number of neighbours. One at a time, the peak is
        one request's, and the profile's jacobian_chunk bounds that.
        """
        with self._answering:
            return self.responder.handle(message)

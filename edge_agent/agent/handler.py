"""The agent's answer to incoming round messages: neighbours' weights go to the inbox, requests to the Responder."""

from __future__ import annotations

from edge_agent.agent.inbox import WeightsInbox
from edge_agent.agent.traffic import RoundTraffic
from edge_agent.learning.exchange import Responder
from edge_agent.learning.messages import Message, WeightsMessage


class AgentHandler:
    """The transport's MessageHandler for one agent."""

    def __init__(self, responder: Responder, inbox: WeightsInbox, traffic: RoundTraffic) -> None:
        self.responder = responder
        self.inbox = inbox
        self.traffic = traffic

    def handle(self, message: Message, peer: str) -> Message | None:
        self.traffic.received(message)
        if isinstance(message, WeightsMessage):
            if message.weights.shape != (self.responder.method.spec.num_params,):
                raise ValueError(f"weights of shape {message.weights.shape} do not fit this model")
            self.inbox.put(message)
            return None
        reply = self.responder.handle(message)
        self.traffic.sent(reply)
        return reply

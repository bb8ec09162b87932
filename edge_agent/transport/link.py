"""One peer link's frame path: latency, the link's token buckets, and byte counting, per frame out or in."""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.transport.ledger import TransportLedger
from edge_agent.transport.throttle import LinkShaper
from edge_agent.v1 import agent_pb2 as pb

UNKNOWN_PEER = "?"


@dataclass
class LinkMeter:
    """A `FrameMeter` for one message in one direction: counts each frame and makes it wait for the link.

    Sending: the latency before the header, then each frame through the uplink bucket before it leaves.
    Receiving: each frame counted as it arrives, the latency after the header, then the downlink bucket.
    The link is `peer`, or (receiving with `peer=None`) the sender the header names.
    """

    shaper: LinkShaper
    ledger: TransportLedger
    sending: bool
    peer: str | None = None

    def __call__(self, wire: int, payload: int, header: pb.MessageHeader | None) -> None:
        if self.peer is None:
            self.peer = header.sender if header is not None and header.sender else UNKNOWN_PEER
        messages = int(header is not None)
        if self.sending:
            if header is not None:
                self.shaper.add_latency()
            self.shaper.throttle_send(self.peer, wire)
            self.ledger.add_sent(self.peer, wire, payload, messages)
        else:
            self.ledger.add_received(self.peer, wire, payload, messages)
            if header is not None:
                self.shaper.add_latency()
            self.shaper.throttle_receive(self.peer, wire)

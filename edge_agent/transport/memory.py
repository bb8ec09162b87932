"""The in-memory twin of `PeerClient`: delivers to a handler directly, counting bytes as the wire would."""

from __future__ import annotations

from edge_agent.learning.messages import JacobianReplyBlocks, Message, payload_bytes
from edge_agent.transport.contract import MessageHandler, PeerInfo, TransportError
from edge_agent.transport.ledger import TransportLedger
from edge_agent.transport.schema import describe
from edge_agent.transport.wire import WireConfig, assemble, encode_ack, encode_message, frames, predicted_wire_bytes

MEMORY_PEER = "memory"


class InMemoryPeer:
    """A peer link to a local handler with `PeerClient`'s interface and byte counts, without sockets or throttling.

    Wire bytes are what `frames` would produce, computed from the header alone. With `through_codec` each
    message is really framed and reassembled, so the receiver sees exactly what gRPC would deliver (fp16/int8/int4
    rounding, a dense Jacobian); otherwise it gets the sender's object, as the simulator does.
    """

    def __init__(self, handler: MessageHandler, peer_id: str, *, info: PeerInfo | None = None,
                 wire: WireConfig | None = None, ledger: TransportLedger | None = None,
                 remote_ledger: TransportLedger | None = None, through_codec: bool = False) -> None:
        self.peer_id = peer_id
        self.wire = wire or WireConfig()
        self.ledger = ledger if ledger is not None else TransportLedger()
        self.remote_ledger = remote_ledger  # the handler's side, counted as its server would, if given
        self._handler = handler
        self._info = info or PeerInfo(peer_id, address=MEMORY_PEER)
        self._through_codec = through_codec
        self._closed = False

    def call(self, message: Message, timeout: float | None = None) -> Message | None:
        """Hand `message` to the handler and return its reply; TransportError when closed or the handler fails."""
        if self._closed:
            raise TransportError(f"link to {self.peer_id} is closed")
        delivered = self._carry(message)  # with the codec: ValueError for NaN before anything is counted
        self._count(message.sender, self._wire_bytes(message), self._payload(message), outgoing=True)
        try:
            answer = self._handler.handle(delivered, MEMORY_PEER)
            reply = answer.whole() if isinstance(answer, JacobianReplyBlocks) else answer
        except Exception as error:
            raise TransportError(f"call to {self.peer_id} failed: {type(error).__name__}: {error}") from error
        if reply is None:
            ack = encode_ack(self.peer_id, message.round).header
            self._count(message.sender, predicted_wire_bytes(ack, self.wire.chunk_size), 0, outgoing=False)
            return None
        self._count(message.sender, self._wire_bytes(reply), self._payload(reply), outgoing=False)
        return self._carry(reply)

    def peer_info(self, timeout: float | None = None) -> PeerInfo:
        return self._info

    def close(self) -> None:
        self._closed = True

    def _count(self, caller: str, wire: int, payload: int, *, outgoing: bool) -> None:
        """One message on the link: sent by the caller if `outgoing` (else received), mirrored on the remote side."""
        if outgoing:
            self.ledger.add_sent(self.peer_id, wire, payload, messages=1)
            if self.remote_ledger is not None:
                self.remote_ledger.add_received(caller, wire, payload, messages=1)
        else:
            self.ledger.add_received(self.peer_id, wire, payload, messages=1)
            if self.remote_ledger is not None:
                self.remote_ledger.add_sent(caller, wire, payload, messages=1)

    def _carry(self, message: Message) -> Message:
        if not self._through_codec:
            return message
        carried = assemble(frames(encode_message(message, self.wire.codecs), self.wire.chunk_size),
                           self.wire.max_message_bytes)
        if carried is None:
            raise TransportError("a round message reassembled as an Ack")
        return carried

    def _payload(self, message: Message) -> int:
        return payload_bytes(message, self.wire.codecs)

    def _wire_bytes(self, message: Message) -> int:
        return predicted_wire_bytes(describe(message, self.wire.codecs), self.wire.chunk_size)

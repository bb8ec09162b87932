"""A 10 MB call through a 1 Mbit/s throttle in a background thread: about 80 s, nearly all of it asleep in the
token bucket, so the suite runs it alongside the tests before the one that checks its outcome."""

from __future__ import annotations

import threading
import time

import numpy as np

from edge_agent.learning.messages import Message, WeightsMessage
from edge_agent.transport.client import PeerClient
from edge_agent.transport.server import AgentServer, ServerConfig
from edge_agent.transport.stall import StallPolicy
from edge_agent.transport.throttle import LinkModel, LinkShaper


class SlowTransfer:
    """Serves, calls through the throttle with a stall window, and keeps the outcome: seconds, or the error."""

    def __init__(self, megabytes: float = 10, rate: str = "1mbit", stall: StallPolicy | None = None) -> None:
        self.stall = stall or StallPolicy(stall_s=5.0, compute_s=0.0)
        self.received: list[int] = []
        self._message = WeightsMessage("near", 0, np.ones(int(megabytes * 1e6 / 4), np.float32))
        self._rate = rate
        self._server = AgentServer(ServerConfig("far"), self)
        self._seconds: float | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._call, name="slow-transfer", daemon=True)

    def handle(self, message: Message, peer: str) -> Message | None:
        assert isinstance(message, WeightsMessage)
        self.received.append(message.weights.size)
        return None

    def start(self) -> SlowTransfer:
        self._server.start()
        self._thread.start()
        return self

    def result(self, timeout: float) -> float:
        """Seconds the call took; re-raises what it failed with."""
        self._thread.join(timeout)
        if self._error is not None:
            raise self._error
        assert self._seconds is not None, f"the transfer did not finish within {timeout} s"
        return self._seconds

    def stop(self) -> None:
        self._server.stop(grace=0)

    def _call(self) -> None:
        client = PeerClient(self._server.address, "far", shaper=LinkShaper(LinkModel.parse(uplink=self._rate)),
                            stall=self.stall)
        started = time.monotonic()
        try:
            client.call(self._message)
            self._seconds = time.monotonic() - started
        except BaseException as error:
            self._error = error
        finally:
            client.close()

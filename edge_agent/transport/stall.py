"""Deadlines that follow progress: a call that keeps moving frames lives however long it takes, one that stalls ends.

A call is stalled when no frame has moved in either direction for the stall window, except between the caller's
last frame and the reply's first, when the far side computes its answer and the window is widened by the compute
allowance. A peer that dies or freezes while it computes is found sooner by gRPC keepalive pings, which the client
channel sends every half window (`keepalive_options`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

Clock = Callable[[], float]


@dataclass(frozen=True)
class StallPolicy:
    """How long a call may go without moving a frame, and how long the far side may compute its reply."""

    stall_s: float = 20.0
    compute_s: float = 60.0

    def __post_init__(self) -> None:
        if self.stall_s <= 0 or self.compute_s < 0:
            raise ValueError(f"need stall_s > 0 and compute_s >= 0, got {self}")


def keepalive_options(policy: StallPolicy) -> tuple[tuple[str, int], ...]:
    """Client channel options: HTTP/2 pings every half window, so a frozen peer fails the call within a window."""
    half_ms = max(500, int(policy.stall_s * 500))
    return (("grpc.keepalive_time_ms", half_ms), ("grpc.keepalive_timeout_ms", half_ms),
            ("grpc.keepalive_permit_without_calls", 0), ("grpc.http2.max_pings_without_data", 0),
            ("grpc.http2.min_time_between_pings_ms", half_ms),
            ("grpc.http2.min_ping_interval_without_data_ms", half_ms), ("grpc.http2.ping_timeout_ms", half_ms))


# What a server must allow so that its peers' keepalive pings are not answered with GOAWAY (too_many_pings).
SERVER_KEEPALIVE_OPTIONS = (("grpc.http2.min_recv_ping_interval_without_data_ms", 400),
                            ("grpc.http2.max_ping_strikes", 0))


class CallProgress:
    """When one call last moved a frame, and whether it now waits for the far side's reply."""

    def __init__(self, policy: StallPolicy, clock: Clock = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._last = clock()
        self._awaiting_reply = False
        self.stalled = False  # set when the watch cut the call

    def moved(self) -> None:
        """A frame went out or came in."""
        self._last = self._clock()
        self._awaiting_reply = False

    def awaiting_reply(self) -> None:
        """Our last frame is out: the far side now computes (the compute allowance applies until its reply)."""
        self._last = self._clock()
        self._awaiting_reply = True

    def overdue(self) -> bool:
        allowed = self.policy.stall_s + (self.policy.compute_s if self._awaiting_reply else 0.0)
        return self._clock() - self._last > allowed

    def idle_seconds(self) -> float:
        return self._clock() - self._last


class StallWatch:
    """One daemon thread that cancels every watched call whose progress is overdue."""

    def __init__(self, tick_s: float = 0.1) -> None:
        self._tick_s = tick_s
        self._calls: dict[int, tuple[CallProgress, Callable[[], object]]] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def watch(self, progress: CallProgress, cancel: Callable[[], object]) -> Iterator[CallProgress]:
        """Within the block, `cancel()` is called (once) if `progress` becomes overdue."""
        key = id(progress)
        with self._lock:
            self._calls[key] = (progress, cancel)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="edge-agent-stall-watch", daemon=True)
                self._thread.start()
        try:
            yield progress
        finally:
            with self._lock:
                self._calls.pop(key, None)

    def close(self) -> None:
        self._closed.set()

    def _run(self) -> None:
        while not self._closed.wait(self._tick_s):
            with self._lock:
                overdue = [(key, p, cancel) for key, (p, cancel) in self._calls.items() if p.overdue()]
                for key, _, _ in overdue:
                    del self._calls[key]
            for _, progress, cancel in overdue:
                progress.stalled = True
                cancel()


def then(frames: Iterator[bytes], done: Callable[[], None]) -> Iterator[bytes]:
    """`frames`, calling `done()` once the last one has been taken."""
    yield from frames
    done()

"""Token-bucket shaping so a run on loopback behaves like the named link (`--uplink 2mbit --latency 20ms`).

An agent's access link has an uplink rate, a downlink rate and a one-way latency. Every link to a peer gets
its own pair of buckets (per direction and per link), so two transfers to different peers do not share a rate.
A message pays the latency once when it leaves and once when it arrives, so A -> B takes A's plus B's latency,
and its bytes pass A's uplink bucket and B's downlink bucket, so the slower of the two sets the pace.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from edge_agent.transport.rates import UNLIMITED, parse_bitrate, parse_duration

Clock = Callable[[], float]
Sleep = Callable[[float], None]
DEFAULT_BURST = 16 * 1024
# On a shaped link a frame carries at most this much of the uplink's time (never less than the burst), so the
# receiver's bucket passes frames as they trickle in instead of adding one big frame's time again at the end.
FRAME_SECONDS = 0.02


class TokenBucket:
    """Thread-safe bytes bucket: `acquire(n)` takes n tokens at once and sleeps off any debt (no busy wait).

    Tokens refill at `rate` bytes/s up to `burst`. Taking more than is there leaves the bucket in debt, and the
    caller sleeps until it is repaid, so concurrent callers are served in order and a frame larger than the
    burst still passes, at exactly the rate.
    """

    def __init__(self, rate: float, burst: int = DEFAULT_BURST, clock: Clock = time.monotonic,
                 sleep: Sleep = time.sleep, *, full: bool = True) -> None:
        if not rate > 0:
            raise ValueError(f"token bucket rate must be > 0 bytes/s, got {rate}")
        if burst < 1:
            raise ValueError(f"token bucket burst must be >= 1 byte, got {burst}")
        self.rate = float(rate)
        self.burst = int(burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst) if full else 0.0
        self._stamp = clock()

    def acquire(self, nbytes: int) -> float:
        """Charge `nbytes` and sleep until the bucket is out of debt; the seconds slept."""
        if nbytes < 0:
            raise ValueError(f"cannot acquire a negative number of bytes ({nbytes})")
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= nbytes
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


@dataclass(frozen=True)
class LinkModel:
    """One agent's access link: rates in bits/s (0 = unlimited) and the one-way latency it adds."""

    uplink_bits: float = UNLIMITED
    downlink_bits: float = UNLIMITED
    latency_s: float = 0.0
    burst_bytes: int = DEFAULT_BURST

    def __post_init__(self) -> None:
        if self.uplink_bits < 0 or self.downlink_bits < 0 or self.latency_s < 0:
            raise ValueError(f"link rates and latency must be >= 0, got {self}")
        if self.burst_bytes < 1:
            raise ValueError(f"burst_bytes must be >= 1, got {self.burst_bytes}")

    @classmethod
    def parse(cls, uplink: str = "unlimited", downlink: str = "unlimited", latency: str = "0") -> LinkModel:
        """From command-line strings such as `2mbit`, `10mbit`, `20ms`."""
        return cls(parse_bitrate(uplink), parse_bitrate(downlink), parse_duration(latency))

    @property
    def shaped(self) -> bool:
        return self.uplink_bits > 0 or self.downlink_bits > 0 or self.latency_s > 0

    def frame_bytes(self, chunk_size: int) -> int:
        """The chunk size to send with: `chunk_size`, capped on a shaped uplink to FRAME_SECONDS of its time."""
        return chunk_size if self.uplink_bits <= 0 else min(chunk_size, self.bucket_burst(self.uplink_bits))

    def bucket_burst(self, bits: float) -> int:
        """A bucket's burst at rate `bits`: `burst_bytes`, or a frame's worth if that is more."""
        return max(self.burst_bytes, int(bits / 8 * FRAME_SECONDS))


@dataclass
class LinkShaper:
    """The link model applied per peer: lazily created uplink and downlink buckets for each peer id."""

    model: LinkModel = field(default_factory=LinkModel)
    clock: Clock = time.monotonic
    sleep: Sleep = time.sleep
    _buckets: dict[tuple[str, str], TokenBucket] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def throttle_send(self, peer: str, nbytes: int) -> None:
        """Block until `nbytes` may leave on the uplink to `peer`."""
        if self.model.uplink_bits > 0:
            self._bucket(peer, "up", self.model.uplink_bits).acquire(nbytes)

    def throttle_receive(self, peer: str, nbytes: int) -> None:
        """Block until `nbytes` that arrived from `peer` have passed the downlink."""
        if self.model.downlink_bits > 0:
            self._bucket(peer, "down", self.model.downlink_bits).acquire(nbytes)

    def add_latency(self) -> None:
        """Wait out the link's one-way latency (once per message sent, once per message received)."""
        if self.model.latency_s > 0:
            self.sleep(self.model.latency_s)

    def _bucket(self, peer: str, direction: str, bits: float) -> TokenBucket:
        with self._lock:
            bucket = self._buckets.get((peer, direction))
            if bucket is None:
                bucket = TokenBucket(bits / 8, self.model.bucket_burst(bits), self.clock, self.sleep,
                                     full=direction == "down")
                self._buckets[(peer, direction)] = bucket
            return bucket

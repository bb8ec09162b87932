"""Tests for edge_agent.transport.throttle: token-bucket arithmetic on a fake clock, and per-link buckets."""

from __future__ import annotations

import threading

import pytest

from edge_agent.transport.throttle import DEFAULT_BURST, FRAME_SECONDS, LinkModel, LinkShaper, TokenBucket


class FakeClock:
    """A clock that only moves when the code under test sleeps (or the test advances it)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_full_bucket_passes_its_burst_without_waiting() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1000.0, burst=500, clock=clock, sleep=clock.sleep)
    assert bucket.acquire(500) == 0.0
    assert clock.sleeps == []


def test_an_empty_bucket_makes_the_first_bytes_wait_too() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1000.0, burst=500, clock=clock, sleep=clock.sleep, full=False)
    assert bucket.acquire(500) == pytest.approx(0.5)


def test_bytes_beyond_the_burst_take_exactly_their_time_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1000.0, burst=100, clock=clock, sleep=clock.sleep)
    start = clock.now
    for _ in range(10):
        bucket.acquire(250)  # frames larger than the burst still pass
    assert clock.now - start == pytest.approx((10 * 250 - 100) / 1000.0)


def test_idle_time_refills_up_to_the_burst_only() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1000.0, burst=100, clock=clock, sleep=clock.sleep)
    bucket.acquire(100)
    clock.now += 60.0  # a minute idle earns 100 bytes, not 60,000
    assert bucket.acquire(100) == 0.0
    assert bucket.acquire(100) == pytest.approx(0.1)


def test_oversleeping_is_paid_back_on_the_next_frame() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1000.0, burst=200, clock=clock, sleep=clock.sleep)
    bucket.acquire(200)
    assert bucket.acquire(200) == pytest.approx(0.2)
    clock.now += 0.05  # the scheduler woke us late
    assert bucket.acquire(200) == pytest.approx(0.15)


def test_concurrent_acquirers_share_the_rate() -> None:
    clock = FakeClock()
    lock = threading.Lock()
    waits: list[float] = []
    bucket = TokenBucket(rate=1000.0, burst=1, clock=clock, sleep=lambda s: None)

    def take() -> None:
        wait = bucket.acquire(100)
        with lock:
            waits.append(wait)

    threads = [threading.Thread(target=take) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # nobody slept on the fake clock, so the debt piles up: 0.1, 0.2, ... 0.5 seconds (minus the 1-byte burst)
    assert sorted(waits) == pytest.approx([(100 * k - 1) / 1000.0 for k in range(1, 6)])


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 10), (-1.0, 10), (10.0, 0)])
def test_bucket_rejects_nonsense(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)


def test_link_model_parses_the_command_line_form() -> None:
    model = LinkModel.parse(uplink="2mbit", downlink="10mbit", latency="20ms")
    assert (model.uplink_bits, model.downlink_bits) == (2e6, 10e6)
    assert model.latency_s == pytest.approx(0.02)
    assert model.shaped
    assert not LinkModel().shaped


def test_frames_on_a_slow_uplink_carry_a_few_milliseconds_of_it() -> None:
    assert LinkModel().frame_bytes(1 << 20) == 1 << 20  # unlimited: the configured chunk
    assert LinkModel(uplink_bits=2e6).frame_bytes(1 << 20) == DEFAULT_BURST  # 20 ms of 2 Mbit/s < 16 KiB
    assert LinkModel(uplink_bits=1e8).frame_bytes(1 << 20) == int(1e8 / 8 * FRAME_SECONDS)  # 250 kB
    assert LinkModel(uplink_bits=1e9).frame_bytes(1 << 20) == 1 << 20  # fast link: the chunk is smaller


def test_shaper_gives_every_peer_and_direction_its_own_bucket() -> None:
    clock = FakeClock()
    shaper = LinkShaper(LinkModel(uplink_bits=8000.0, downlink_bits=16000.0, burst_bytes=1), clock, clock.sleep)
    # uplink buckets start empty; downlink buckets start with their burst, 20 ms of 2000 bytes/s = 40 bytes
    shaper.throttle_send("a", 1000)  # 1000 bytes/s up: 1 s
    shaper.throttle_send("b", 1000)  # another link: its own 1 s, not queued behind a
    shaper.throttle_receive("a", 2040)  # 1 s
    assert clock.sleeps == pytest.approx([1.0, 1.0, 1.0])


def test_unshaped_link_never_sleeps_and_latency_sleeps_once_per_call() -> None:
    clock = FakeClock()
    LinkShaper(LinkModel(), clock, clock.sleep).throttle_send("a", 10**9)
    assert clock.sleeps == []
    LinkShaper(LinkModel(latency_s=0.02), clock, clock.sleep).add_latency()
    assert clock.sleeps == [0.02]

"""Deadlines that follow the link: a slow link is not a failure, a dead peer is."""

from __future__ import annotations

from edge_agent.transport.throttle import LinkModel

BASE_SECONDS = 30.0  # compute on the far side (a Jacobian at N = 200 takes well under this on a Pi 4)
UNSHAPED_BYTES_PER_SECOND = 20e6  # assumed floor when a link is not shaped
SAFETY = 3.0


def call_timeout(link: LinkModel, payload_bytes: int) -> float:
    """Seconds to allow for a call moving `payload_bytes` in total: base + latency + SAFETY x transfer time."""
    rates = [rate for rate in (link.uplink_bits, link.downlink_bits) if rate > 0]
    bytes_per_second = min(rates) / 8 if rates else UNSHAPED_BYTES_PER_SECOND
    return BASE_SECONDS + 4 * link.latency_s + SAFETY * payload_bytes / bytes_per_second

"""Parse link settings from the command line: bit rates (`2mbit`, `10Mbps`) and delays (`20ms`)."""

from __future__ import annotations

import re

_RATE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmg]?)(?:bit|bps|bit/s)", re.IGNORECASE)
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(us|ms|s)", re.IGNORECASE)
_RATE_PREFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}
_DURATION_UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
UNLIMITED = 0.0


def parse_bitrate(text: str) -> float:
    """Bits per second of `[number][k|m|g](bit|bps)` (SI prefixes, bps means bits); 0.0 for `unlimited` or `0`.

    `bps` is bits per second as in "100 Mbps" (unlike tc, where it means bytes).
    """
    value = text.strip().lower()
    if value in ("unlimited", "0"):
        return UNLIMITED
    match = _RATE.fullmatch(value)
    if match is None:
        raise ValueError(f"bad rate {text!r}: expected e.g. 2mbit, 500kbit, 1gbps, or unlimited")
    rate = float(match.group(1)) * _RATE_PREFIX[match.group(2)]
    if rate <= 0:
        raise ValueError(f"bad rate {text!r}: use 0 or unlimited for no limit")
    return rate


def parse_duration(text: str) -> float:
    """Seconds of `[number](us|ms|s)`, or of `0`."""
    value = text.strip().lower()
    if value == "0":
        return 0.0
    match = _DURATION.fullmatch(value)
    if match is None:
        raise ValueError(f"bad duration {text!r}: expected e.g. 20ms, 1s, 500us, or 0")
    return float(match.group(1)) * _DURATION_UNIT[match.group(2)]


def format_bitrate(bits_per_second: float) -> str:
    """A short human form of a rate, the inverse of `parse_bitrate` up to rounding (`2mbit`, `unlimited`)."""
    if bits_per_second <= 0:
        return "unlimited"
    for prefix, scale in (("g", 1e9), ("m", 1e6), ("k", 1e3)):
        if bits_per_second >= scale:
            return f"{bits_per_second / scale:g}{prefix}bit"
    return f"{bits_per_second:g}bit"

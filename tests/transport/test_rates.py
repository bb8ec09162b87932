"""Tests for edge_agent.transport.rates: link rates and delays as the command line spells them."""

from __future__ import annotations

import pytest

from edge_agent.transport.rates import format_bitrate, parse_bitrate, parse_duration


@pytest.mark.parametrize(
    ("text", "bits"),
    [("2mbit", 2e6), ("10Mbit", 10e6), ("100kbit", 1e5), ("1gbit", 1e9), ("500kbps", 5e5), ("1.5mbit", 1.5e6),
     ("64bit", 64.0), (" 2 mbit ", 2e6), ("3Mbit/s", 3e6), ("unlimited", 0.0), ("0", 0.0), ("UNLIMITED", 0.0)],
)
def test_parse_bitrate_gives_bits_per_second(text: str, bits: float) -> None:
    assert parse_bitrate(text) == pytest.approx(bits)


@pytest.mark.parametrize("text", ["", "2", "fast", "2mb", "2MB/s", "-1mbit", "0mbit", "2tbit", "mbit", "1e3kbit"])
def test_parse_bitrate_rejects_bad_input_in_one_line(text: str) -> None:
    with pytest.raises(ValueError, match="bad rate") as info:
        parse_bitrate(text)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("text", "seconds"), [("20ms", 0.02), ("1s", 1.0), ("0", 0.0), ("0.5s", 0.5),
                                               ("250us", 2.5e-4), ("0ms", 0.0), ("15 MS", 0.015)])
def test_parse_duration_gives_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "20", "-1ms", "1h", "ms", "fast"])
def test_parse_duration_rejects_bad_input(text: str) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["2mbit", "100kbit", "1gbit", "1.5mbit", "64bit", "unlimited"])
def test_format_bitrate_round_trips(text: str) -> None:
    assert parse_bitrate(format_bitrate(parse_bitrate(text))) == pytest.approx(parse_bitrate(text))

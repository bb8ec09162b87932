"""A simulation's progress lines: requesters done and ETAs once a round has run a few seconds, one line per round."""

from __future__ import annotations

import io

import pytest

from edge_agent.cli.round_progress import RoundProgress, format_duration
from edge_agent.sim.records import RoundRecord


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def record(index: int, seconds: float) -> RoundRecord:
    return RoundRecord(round=index, agg_accuracy=0.5, mean_client_accuracy=0.4, bytes_per_client=1.0,
                       cumulative_bytes_per_client=1.0, bytes_by_kind={}, learning_rate=None, tau=None,
                       seconds=seconds)


def test_a_log_gets_requesters_done_with_etas_from_the_pace_after_the_first_requester() -> None:
    clock, stream = Clock(), io.StringIO()
    progress = RoundProgress(4, stream, clock=clock, interactive=False)
    progress.start(1)  # resumed after one round
    clock.now += 30  # an engine's start-up, then the first requester
    progress.requesters(1, 100)
    clock.now += 20  # 20 more requesters in 20 s: 1 s each
    progress.requesters(21, 100)
    assert stream.getvalue() == "round 2/4: 21/100 requesters, round ETA 1 min 19 s, run ETA 4 min 39 s\n"
    clock.now += 5  # within a log's 15 s: nothing more
    progress.requesters(26, 100)
    assert stream.getvalue().count("\n") == 1
    clock.now += 75
    progress.round_done(record(1, 120.0))
    assert stream.getvalue().splitlines()[-1] == ("round 2/4: aggregated accuracy 0.5000, mean client accuracy "
                                                  "0.4000, 120.0 s, run ETA 4 min 20 s")


def test_a_short_round_shows_only_its_round_line_and_the_last_round_no_eta() -> None:
    clock, stream = Clock(), io.StringIO()
    progress = RoundProgress(1, stream, clock=clock, interactive=False)
    progress.start(0)
    for done in range(1, 11):
        clock.now += 0.1
        progress.requesters(done, 10)
    progress.round_done(record(0, 1.0))
    assert stream.getvalue() == "round 1/1: aggregated accuracy 0.5000, mean client accuracy 0.4000, 1.0 s\n"


def test_a_terminal_redraws_the_requester_line_in_place_and_ends_it_before_the_next_line() -> None:
    clock, stream = Clock(), io.StringIO()
    progress = RoundProgress(2, stream, clock=clock, interactive=True, label="spark")
    progress.start(0)
    clock.now += 3
    progress.requesters(1, 4)
    clock.now += 1
    progress.requesters(2, 4)
    clock.now += 1
    progress.requesters(3, 4)
    progress.notice("ray: 8 tasks per node")
    assert stream.getvalue() == ("\r\x1b[Kspark round 1/2: 2/4 requesters, round ETA 2 s, run ETA 6 s"
                                 "\r\x1b[Kspark round 1/2: 3/4 requesters, round ETA 1 s, run ETA 5 s"
                                 "\r\x1b[Kray: 8 tasks per node\n")


@pytest.mark.parametrize(("seconds", "shown"), [(0.4, "0 s"), (59.4, "59 s"), (65, "1 min 05 s"),
                                                 (3600 * 2 + 240, "2 h 04 min")])
def test_durations_read_in_seconds_minutes_or_hours(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown

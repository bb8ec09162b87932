"""A simulation's progress on stderr: a line per round, and within a round that has run a few seconds the requesters
done of its total with an ETA for the round and the run.

On a terminal the requester line is redrawn in place; in a log it is a new line at most every `every_s` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from edge_agent.sim.records import RoundRecord

SHOW_AFTER_S = 2.0  # a round shorter than this prints only its round line
REDRAW_S, LOG_EVERY_S = 0.2, 15.0


class RoundProgress:
    """Fed by an engine's progress hook (`requesters`), its notices (`notice`) and each finished round."""

    def __init__(self, rounds: int, stream: TextIO, label: str = "",
                 clock: Callable[[], float] = time.monotonic, show_after_s: float = SHOW_AFTER_S,
                 interactive: bool | None = None) -> None:
        self._rounds, self._round, self._stream, self._clock = rounds, 0, stream, clock
        self._label = f"{label} " if label else ""
        self._show_after_s = show_after_s
        self._interactive = stream.isatty() if interactive is None else interactive
        self._every_s = REDRAW_S if self._interactive else LOG_EVERY_S
        self._round_started = clock()
        self._last_shown: float | None = None
        self._first: tuple[float, int] | None = None  # (when, done) at the round's first finished requester
        self._round_seconds: list[float] = []  # of the rounds this process ran
        self._drawn = False  # a requester line is on screen, not yet ended

    def start(self, rounds_done: int) -> None:
        """The run starts (or resumes) with `rounds_done` rounds behind it."""
        self._round, self._round_started, self._last_shown, self._first = rounds_done, self._clock(), None, None

    def requesters(self, done: int, total: int) -> None:
        """A requester finished: `done` of the round's `total`. The pace is taken from the first one done on, so an
        engine's start-up (a local Ray takes seconds) does not count as requester time."""
        now = self._clock()
        if self._first is None:
            self._first = (now, done)
        first_at, first_done = self._first
        if now - self._round_started < self._show_after_s or done >= total or done == first_done:
            return
        if self._last_shown is not None and now - self._last_shown < self._every_s:
            return
        self._last_shown = now
        per_requester = (now - first_at) / (done - first_done)
        round_left = per_requester * (total - done)
        per_round = self._mean_round_s() or per_requester * total
        run_left = round_left + per_round * (self._rounds - self._round - 1)
        self._write(f"{self._label}round {self._round + 1}/{self._rounds}: {done}/{total} requesters, "
                    f"round ETA {format_duration(round_left)}, run ETA {format_duration(run_left)}", redraw=True)

    def round_done(self, record: RoundRecord) -> None:
        """A round finished: its line, with the run's ETA from the rounds so far."""
        now = self._clock()
        self._round_seconds.append(now - self._round_started)
        self._round, self._round_started, self._last_shown, self._first = record.round + 1, now, None, None
        left = self._rounds - self._round
        eta = f", run ETA {format_duration(self._mean_round_s() * left)}" if left else ""
        modelled = "" if record.modelled_seconds is None else f" ({record.modelled_seconds:.1f} s modelled)"
        self._write(f"{self._label}round {self._round}/{self._rounds}: aggregated accuracy {record.agg_accuracy:.4f}, "
                    f"mean client accuracy {record.mean_client_accuracy:.4f}, {record.seconds:.1f} s{modelled}{eta}")

    def notice(self, text: str) -> None:
        """An engine's one-line notice (cluster, tasks per node)."""
        self._write(text)

    def _mean_round_s(self) -> float:
        return sum(self._round_seconds) / len(self._round_seconds) if self._round_seconds else 0.0

    def _write(self, line: str, redraw: bool = False) -> None:
        if self._interactive and redraw:
            self._stream.write(f"\r\x1b[K{line}")
            self._drawn = True
        else:
            self._stream.write(f"\r\x1b[K{line}\n" if self._drawn else f"{line}\n")
            self._drawn = False
        self._stream.flush()


def format_duration(seconds: float) -> str:
    """'42 s', '3 min 05 s', '2 h 04 min'."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"

"""Ctrl-C for commands that watch until stopped: a flag their loops check between steps.

Python's default turns SIGINT into a KeyboardInterrupt raised wherever the main thread is, which may be inside
zeroconf or gRPC; interrupted there, their threads could be left waiting and the command never exited. With the
flag, a watch finishes the step it is in (each is bounded by a timeout), closes what it opened and exits 0.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def until_interrupted() -> Iterator[threading.Event]:
    """An event set by SIGINT while the block runs (in the main thread); the previous handler is put back after."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda _signum, _frame: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)

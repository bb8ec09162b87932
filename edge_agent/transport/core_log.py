"""gRPC core's own log lines, which its C code writes to stderr, passed through except failed TLS handshakes: a port
scan or a flood of broken handshakes gives one line per window with their count, not one line each.

The process's stderr (file descriptor 2) becomes a pipe that a thread reads and forwards line by line to where
stderr went before; Python's own writes (logging, click) go there directly through `sys.stderr`, so a last line
never waits on the thread.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
import time
from typing import TextIO

log = logging.getLogger(__name__)
FAILED_HANDSHAKE = b"Handshake failed"
WINDOW_S = 10.0  # failed handshakes are summed and logged at most once per window


class CoreLogFilter:
    """Route file descriptor 2 through the filter (`start`) and back (`stop`); idempotent."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self.window_s = window_s
        self.failed = 0  # failed handshakes seen in all
        self._saved: int | None = None
        self._thread: threading.Thread | None = None
        self._pending = 0  # failed handshakes not yet logged
        self._last_logged = -window_s
        self._example = b""
        self._out: TextIO | None = None
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._previous: TextIO = sys.stderr
        self._moved: list[logging.StreamHandler[TextIO]] = []

    def start(self) -> None:
        """From now on C writes to fd 2 pass the filter; `sys.stderr` writes where fd 2 wrote before."""
        if self._saved is not None:
            return
        sys.stderr.flush()
        self._saved = os.dup(2)
        self._out = os.fdopen(os.dup(self._saved), "w", buffering=1, errors="replace")
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        _unbuffered_c_stderr()
        self._previous = sys.stderr
        sys.stderr = self._out
        self._moved = [handler for handler in logging.getLogger().handlers  # set up before: they hold the old stream
                       if isinstance(handler, logging.StreamHandler) and handler.stream is self._previous]
        for handler in self._moved:
            handler.setStream(self._out)
        self._thread = threading.Thread(target=self._forward, args=(read,), name="grpc-core-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Give fd 2 back (the thread drains the pipe, then logs the failures still pending)."""
        if self._saved is None:
            return
        for handler in self._moved:
            handler.setStream(self._previous)
        sys.stderr = self._previous
        os.dup2(self._saved, 2)  # closes the pipe's last write end: the thread reads to its end
        os.close(self._saved)
        self._saved = None
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._summarise(force=True)

    def _forward(self, read: int) -> None:
        assert self._out is not None
        out = self._out.buffer
        with os.fdopen(read, "rb") as pipe:
            for line in pipe:
                if FAILED_HANDSHAKE in line:
                    with self._lock:
                        self.failed += 1
                        self._pending += 1
                        self._example = line
                    self._summarise()
                    continue
                out.write(line)
                out.flush()

    def _summarise(self, force: bool = False) -> None:
        """Log the pending failures if the window allows (or `force`), else make sure a timer will."""
        with self._lock:
            now = time.monotonic()
            if not self._pending:
                return
            wait = self._last_logged + self.window_s - now
            if wait > 0 and not force:
                if self._timer is None:
                    self._timer = threading.Timer(wait, self._summarise, kwargs={"force": True})
                    self._timer.daemon = True
                    self._timer.start()
                return
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            # what went wrong, without the words the filter looks for (this line may pass it again)
            example = self._example.decode(errors="replace").strip().partition(FAILED_HANDSHAKE.decode())[2]
            example = example.removeprefix(" with ")[:160]
            count, self._pending, self._last_logged = self._pending, 0, now
        log.warning("%d TLS handshake%s failed (callers without a cluster certificate, or not speaking TLS; "
                    "one such line per %.0f s at most), the last: %s", count, "" if count == 1 else "s",
                    self.window_s, example)


def _unbuffered_c_stderr() -> None:
    """C's `stderr` stream unbuffered, as C starts it: a native library may have made it buffered, which on a pipe
    would hold gRPC core's lines until the process exits."""
    try:
        libc = ctypes.CDLL(None)
        libc.setvbuf(ctypes.c_void_p.in_dll(libc, "stderr"), None, 2, 0)  # 2: _IONBF
    except (OSError, ValueError, AttributeError):  # no glibc symbol of that name: nothing to undo
        pass

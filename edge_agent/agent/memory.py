"""The agent process's memory: the RSS, round peak and life peak its records report, and glibc malloc settings
that keep it flat."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import resource
import sys
from collections.abc import Callable

_M_ARENA_MAX = -8  # glibc <malloc.h>


# VmHWM of this process just before the last round reset it: the life's peak is the larger of this and VmHWM now.
_peak_before_reset_mb = 0.0
_round_peak_reset = False  # the last start_round_peak reset VmHWM, so VmHWM is that round's peak


def rss_bytes() -> int | None:
    """This process's resident set size now in bytes (VmRSS), or None where /proc does not say."""
    kib = _status_kib("VmRSS:")
    return None if kib is None else kib * 1024


def rss_mb() -> float | None:
    """This process's resident set size now in MiB (VmRSS), or None where /proc does not say."""
    return _status_mb("VmRSS:")


def peak_rss_mb() -> float:
    """This process's peak resident set size so far in MiB: a high-water mark, never lowered, rounds included.

    On Linux, VmHWM of /proc/self/status: ru_maxrss would do, but Linux carries it across exec, so an agent
    started by a large parent (a test runner with torch loaded) would report the parent's peak as its own.
    """
    now = _status_mb("VmHWM:")
    if now is not None:
        return max(_peak_before_reset_mb, now)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)


def start_round_peak() -> bool:
    """Begin measuring one round's peak: VmHWM is reset to the RSS now (writing 5 to /proc/self/clear_refs,
    Linux >= 4.0) after the life's peak so far is kept. False, and nothing reset, where that is not possible."""
    global _peak_before_reset_mb, _round_peak_reset
    _round_peak_reset = False
    before = _status_mb("VmHWM:")
    if before is None:
        return False
    _peak_before_reset_mb = max(_peak_before_reset_mb, before)
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    _round_peak_reset = True
    return True


def round_peak_rss_mb() -> float | None:
    """The peak resident set size in MiB since the last `start_round_peak` (VmHWM), or None when that could not
    reset it (VmHWM is then the life's peak, not the round's)."""
    return _status_mb("VmHWM:") if _round_peak_reset else None


def _status_mb(key: str) -> float | None:
    """A "kB" line of /proc/self/status in MiB, to 0.1, or None."""
    kib = _status_kib(key)
    return None if kib is None else round(kib / 1024, 1)


def _status_kib(key: str) -> int | None:
    """A "kB" line of /proc/self/status ("VmHWM:  123456 kB"), or None."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def bound_malloc(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas (default: 8 per core); False where libc is not glibc and nothing changed.

    Each of an agent's server and caller threads would otherwise get an arena of its own, and pages freed in one
    arena are not reused by another, so the peak climbs round after round (measured on loopback Pi Zero agents:
    by 40-50 MB over three rounds). A fixed low mmap threshold would hold it lower still, but it mapped every large
    buffer afresh and made a torch agent's round 3x slower in CPU time, so it is left dynamic.
    """
    mallopt = _glibc("mallopt")
    return mallopt is not None and bool(mallopt(_M_ARENA_MAX, arenas))


def release_free_memory() -> None:
    """Hand memory that malloc holds free back to the OS (glibc's malloc_trim), e.g. between rounds."""
    trim = _glibc("malloc_trim")
    if trim is not None:
        trim(0)


@functools.cache
def _glibc(name: str) -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function: Callable[..., int] = getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None
    return function

"""An agent as a service: its round record and checkpoint committed together, and a clean stop on a signal.

A round commits in two durable steps: its metrics line is appended and fsynced, then the checkpoint, which names
the metrics file's length, replaces the old one atomically. A restart truncates the file to the length the
checkpoint names, so a line written after the last checkpoint (its round will run again) is dropped: no restart
repeats or loses a line. A checkpoint of another run is ignored, so a finished run never blocks a new one.
The metrics file holds round records only (docs/records.md); the summary, written however the agent ends, goes to a
file beside it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from edge_agent.agent.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edge_agent.learning.mlp import FloatArray
from edge_agent.records import write_json_atomic
from edge_agent.round_records import AGENT_SUMMARY, stamped
from edge_agent.run_identity import RunIdentity
from edge_agent.transport.status import MAX_RECORDS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ending:
    """How an agent process ended, as its summary and its last log line say: exit status, why, and the signal that
    asked it to stop (None when none did)."""

    status: int
    reason: str
    signal: str | None = None


class AgentStopped(Exception):  # noqa: N818 (a request, not a failure)
    """The agent was asked to stop; the round in progress is abandoned, the last committed one stands."""


class PathError(OSError):
    """A path the operator gave that cannot be used; `option` is the parameter it came from (`metrics`,
    `checkpoint_dir`), so the error can name the flag or config key."""

    def __init__(self, option: str, path: Path, error: OSError) -> None:
        where = error.filename
        if isinstance(error, FileExistsError) and where and not Path(where).is_dir():  # mkdir met a file
            reason = f"{where} is a file, not a folder"
        else:
            reason = f"{error.strerror or error}" + (f" ({where})" if where and str(where) != str(path) else "")
        super().__init__(f"{path}: {reason}")
        self.option = option


class RoundJournal:
    """The metrics file and the checkpoint of one agent, opened (checked) before it advertises."""

    def __init__(self, metrics: Path | None, checkpoint_dir: Path | None, agent_id: str, run: RunIdentity,
                 num_params: int) -> None:
        self.metrics_path, self.checkpoint_dir = metrics, checkpoint_dir
        self.agent_id, self.run, self.num_params = agent_id, run, num_params
        self._file: Any = None
        self.opened = False  # both paths checked: a summary may be written
        self._recent: deque[str] = deque(maxlen=MAX_RECORDS)  # the last lines committed, as written
        self._recent_lock = threading.Lock()

    def open(self) -> Checkpoint | None:
        """Check both paths can be written, and return the checkpoint to resume from (None: start fresh).

        OSError, with the path, when either cannot be written; ValueError when the checkpoint is unreadable.
        """
        resume = None
        if self.checkpoint_dir is not None:
            try:
                _check_writable_directory(self.checkpoint_dir)
            except OSError as error:
                raise PathError("checkpoint_dir", self.checkpoint_dir, error) from None
            resume = load_checkpoint(self.checkpoint_dir, self.agent_id, self.num_params)
            if resume is not None and (resume.run, resume.fingerprint) != (self.run.run_id, self.run.fingerprint):
                log.info("checkpoint of %s belongs to run %r, not %r: starting fresh", self.agent_id,
                         resume.run or "(unnamed)", self.run.run_id)
                resume = None
        if self.metrics_path is not None:
            try:
                self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.metrics_path.open("a+b")
            except OSError as error:
                raise PathError("metrics", self.metrics_path, error) from None
            keep = resume.metrics_bytes if resume is not None and resume.metrics_bytes >= 0 else 0
            self._file.truncate(min(keep, self._file.seek(0, os.SEEK_END)))
            self._file.seek(0)
            kept = self._file.read().decode(errors="replace").splitlines()
            with self._recent_lock:
                self._recent.extend(line for line in kept if line.strip())
            self._file.seek(0, os.SEEK_END)
            if resume is None and self.summary_path is not None:  # a fresh start: an old summary is not ours
                self.summary_path.unlink(missing_ok=True)
        self.opened = True
        return resume

    @property
    def summary_path(self) -> Path | None:
        """Where the summary goes: beside the metrics file (agent-0.jsonl -> agent-0.summary.json)."""
        return None if self.metrics_path is None else summary_path(self.metrics_path)

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Replace the summary file atomically with `summary` (an agent-summary record)."""
        if self.summary_path is not None:
            write_json_atomic(self.summary_path, stamped(AGENT_SUMMARY, summary))

    def commit(self, record: dict[str, Any], round_index: int, weights: FloatArray, velocity: FloatArray,
               strikes: Mapping[str, int]) -> None:
        """Append the round's line, then the checkpoint that names the file's new length."""
        size = self.append(record)
        if self.checkpoint_dir is not None:
            save_checkpoint(self.checkpoint_dir, self.agent_id, Checkpoint(
                round_index, weights, velocity, self.run.run_id, self.run.fingerprint, size, strikes))

    def append(self, record: dict[str, Any]) -> int:
        """Append one line, fsynced; the file's length after it (-1 without a metrics file)."""
        line = json.dumps(record)
        size = -1
        if self._file is not None:
            self._file.write((line + "\n").encode())
            self._file.flush()
            os.fsync(self._file.fileno())
            size = int(self._file.tell())
        with self._recent_lock:
            self._recent.append(line)
        return size

    def recent(self, limit: int = MAX_RECORDS) -> list[str]:
        """The last `limit` lines committed (those written before a restart it resumed from included),
        oldest first, exactly as written."""
        with self._recent_lock:
            lines = list(self._recent)
        return lines[-limit:] if limit > 0 else []

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def summary_path(metrics: Path) -> Path:
    """The summary file of a metrics file: its name with the suffix replaced by `.summary.json`."""
    return metrics.with_name(f"{metrics.stem}.summary.json")


def _check_writable_directory(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=directory):
        pass


class StopSignals:
    """SIGTERM, SIGINT and SIGHUP (its terminal closed) call `stop` (the round loop ends at its next check, the agent
    exits 0); a second signal raises KeyboardInterrupt, to stop at once."""

    def __init__(self, stop: Callable[[], None]) -> None:
        self._stop = stop
        self.received: str | None = None

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        self._stop()

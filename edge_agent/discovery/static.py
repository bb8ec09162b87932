"""Discovery without multicast: poll a fixed list of `host:port` peers and feed a Membership."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from edge_agent.discovery.membership import Membership
from edge_agent.discovery.peers import PeerRecord

log = logging.getLogger(__name__)

# (host, port) -> the peer's record, or None when it cannot be reached; it may also raise. The agent passes
# its PeerInfo RPC; it should carry its own timeout, since one slow call delays the polls behind it.
FetchInfo = Callable[[str, int], PeerRecord | None]


@dataclass(frozen=True)
class PollConfig:
    """How often peers are polled."""

    interval_s: float = 2.0  # between polls of a peer that answers, to follow its round
    backoff_initial_s: float = 0.5  # after the first failed poll; doubles per failure
    backoff_max_s: float = 30.0
    misses_before_removal: int = 3  # consecutive failed polls before a known peer leaves the membership


@dataclass
class _Target:
    host: str
    port: int
    due: float = 0.0
    failures: int = 0
    agent_id: str | None = None  # who answered at this address last


class StaticDiscovery:
    """Polls each address on a background thread and keeps the membership in step with the answers.

    The record of a peer gets the polled host and port (the address that worked), whatever it says itself.
    An address that answers with `exclude_id` (this agent, when every agent gets the same `--peers`) is dropped.
    """

    def __init__(
        self,
        peers: list[tuple[str, int]],
        membership: Membership,
        fetch_info: FetchInfo,
        *,
        exclude_id: str | None = None,
        config: PollConfig | None = None,
    ) -> None:
        self._targets = [_Target(host, port) for host, port in dict.fromkeys(peers)]
        self._membership = membership
        self._fetch_info = fetch_info
        self._exclude_id = exclude_id
        self._config = config or PollConfig()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Starts polling on a daemon thread; the first poll of every address happens at once."""
        if self._thread is not None:
            raise RuntimeError("StaticDiscovery.start() may be called once")
        self._thread = threading.Thread(target=self._run, name="edge-agent-static-discovery", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stops polling; idempotent. Waits up to `timeout` s for a call in flight, whose answer is then dropped."""
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            for target in list(self._targets):
                if self._stopping.is_set():
                    return
                if target.due <= time.monotonic():
                    self._poll(target)
            if not self._targets:
                return
            self._stopping.wait(max(0.0, min(t.due for t in self._targets) - time.monotonic()))

    def _poll(self, target: _Target) -> None:
        try:
            record = self._fetch_info(target.host, target.port)
            if record is not None:
                record = replace(record, host=target.host, port=target.port)
        except Exception as error:
            log.debug("peer %s:%d did not answer: %s", target.host, target.port, error)
            record = None
        if self._stopping.is_set():
            return
        if record is None:
            self._note_failure(target)
        elif record.agent_id == self._exclude_id:
            log.debug("peer %s:%d is this agent; no longer polled", target.host, target.port)
            self._targets.remove(target)
        else:
            target.failures, target.due = 0, time.monotonic() + self._config.interval_s
            if target.agent_id != record.agent_id:
                self._forget(target)  # another agent now answers at this address
            target.agent_id = record.agent_id
            self._membership.upsert(record)

    def _note_failure(self, target: _Target) -> None:
        config = self._config
        target.failures += 1
        delay = min(config.backoff_max_s, config.backoff_initial_s * 2 ** min(target.failures - 1, 30))
        target.due = time.monotonic() + delay
        if target.failures >= config.misses_before_removal:
            self._forget(target)

    def _forget(self, target: _Target) -> None:
        """Unlinks the agent last seen at `target`; it leaves the membership unless another address answers for it."""
        agent_id, target.agent_id = target.agent_id, None
        if agent_id is not None and all(t.agent_id != agent_id for t in self._targets):
            self._membership.remove(agent_id)

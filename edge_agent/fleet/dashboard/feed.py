"""The dashboard's live feed: find agents (mDNS sweeps, as `peers` does, or the `--peers` list), ask them every
interval, fold the answers into the fleet's state, and wake the pages waiting for the next refresh."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from zeroconf import InterfaceChoice

from edge_agent.discovery.mdns import MdnsBrowser
from edge_agent.fleet.dashboard.asking import FleetAsker
from edge_agent.fleet.dashboard.fleet_state import FleetState, Source
from edge_agent.fleet.dashboard.history import HISTORY_ROUNDS
from edge_agent.fleet.dial import Target
from edge_agent.fleet.query import FleetView
from edge_agent.transport.tls import ClusterTls


@dataclass(frozen=True)
class FeedConfig:
    """Which agents to watch and how often: `peers` (host, port) pairs, or mDNS sweeps of `sweep_s` seconds (one
    after the other while an agent is missing, else one every `rediscover_s` seconds); everyone known is asked every
    `interval_s` seconds."""

    run: str | None
    service_type: str
    peers: tuple[tuple[str, int], ...]
    sweep_s: float
    interval_s: float
    keep: int = HISTORY_ROUNDS
    # Every agent parses every packet of a sweep (queries, and the others' answers): sweeping without pause cost 7
    # idle agents about 7 ms of CPU a second, more than the Status calls did.
    rediscover_s: float = 60.0


class FleetFeed:
    """The fleet's state and a version that rises with every refresh; `run()` keeps it fresh until `close()`."""

    def __init__(self, config: FeedConfig, tls: ClusterTls | None) -> None:
        self.config = config
        self.state = FleetState(Source(config.run, "peers" if config.peers else "mdns", config.interval_s),
                                config.keep)
        self.version = 0
        self.closed = False
        self._asker = FleetAsker(tls, config.keep)
        self._view = FleetView(config.run)
        self._stop = threading.Event()  # ends an mDNS sweep in progress
        self._changed = asyncio.Condition()
        self._wake = asyncio.Event()  # the next refresh need not wait for the interval: new agents were found
        self._closing = asyncio.Event()

    def targets(self) -> list[Target]:
        """The `--peers` list, or every agent mDNS has shown this session (online, stale or offline: an agent gone
        from mDNS is asked until it answers again, and shown as gone meanwhile)."""
        if self.config.peers:
            return [Target(host, port) for host, port in self.config.peers]
        return [Target(a.record.host, a.record.port, a.record.agent_id) for a in self._view.agents()]

    async def run(self) -> None:
        """Refresh every interval (and browse mDNS alongside, without --peers) until closed."""
        tasks = [asyncio.create_task(self._refresh_forever())]
        if not self.config.peers:
            tasks.append(asyncio.create_task(self._discover_forever()))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.to_thread(self._asker.close)

    async def close(self) -> None:
        """End the refreshes and wake every waiting page, so each stream ends."""
        self.closed = True
        self._stop.set()
        self._wake.set()
        self._closing.set()
        async with self._changed:
            self._changed.notify_all()

    async def next_version(self, seen: int, timeout: float) -> int:
        """The version once it is above `seen` (or the feed closed), or `seen` again after `timeout` seconds."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(lambda: self.version > seen or self.closed), timeout)
            return self.version

    async def _refresh_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.closed:
            started = loop.time()
            self._wake.clear()
            answers = await asyncio.to_thread(self._asker.ask, self.targets(), self.state.last_rounds())
            if self.closed:
                return
            self.state.fold(answers, datetime.now(UTC))
            async with self._changed:
                self.version += 1
                self._changed.notify_all()
            wait = self.config.interval_s - (loop.time() - started)
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)

    async def _discover_forever(self) -> None:
        """mDNS sweeps folded as `peers --watch` folds them: one after the other while an agent is missing (none is
        known, the fleet names members not heard yet, or one is gone: it may be back at another address), else one
        every `rediscover_s` seconds; a newly found agent is asked at once."""
        loop = asyncio.get_running_loop()
        browser = MdnsBrowser(self.config.service_type, InterfaceChoice.All)
        await asyncio.to_thread(browser.start)
        try:
            while not self.closed:
                started = loop.time()
                sweep = await asyncio.to_thread(browser.sweep, self.config.sweep_s, self._stop)
                known = {a.name for a in self._view.agents()}
                agents = self._view.fold(sweep, datetime.now(UTC))
                if {a.name for a in agents} - known:
                    self._wake.set()
                pause = self.config.rediscover_s - (loop.time() - started)
                missing = not agents or self.state.unheard_members() or self.state.gone_count()
                if not missing and pause > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), pause)
        finally:
            await asyncio.to_thread(browser.stop)

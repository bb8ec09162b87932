"""mDNS discovery with python-zeroconf: advertise this agent, browse for the others, feed a Membership."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import replace

from zeroconf import (
    DNSQuestionType,
    InterfaceChoice,
    IPVersion,
    NonUniqueNameException,
    ServiceBrowser,
    ServiceInfo,
    ServiceStateChange,
    Zeroconf,
)

from edge_agent.discovery.membership import Membership
from edge_agent.discovery.peers import PeerRecord

log = logging.getLogger(__name__)

SERVICE_TYPE = "_edge-agent._tcp.local."
InterfacesType = InterfaceChoice | Sequence[str | int]  # zeroconf's choice or addresses (and IPv6 indexes)
# Interfaces for tests and single-host runs: multicast sent with IP_MULTICAST_IF=127.0.0.1 is looped back to
# every process on this host (even though `lo` has no MULTICAST flag) and never reaches the network.
LOOPBACK_ONLY: InterfacesType = ["127.0.0.1"]


MULTICAST = DNSQuestionType.QM
"""Every question asks for multicast answers. Zeroconf's first questions ask for unicast ones (QU), which the kernel
hands to only one of the sockets bound to port 5353 on a host; with several agents, or `peers` beside an agent, on
one host, the asker often never saw the answer and waited a second for its next, multicast question."""

TWIN_QUESTION_MS = 600  # how long start() waits for an agent that already holds its name: answers take milliseconds


def instance_name(record: PeerRecord) -> str:
    """The DNS-SD instance an agent registers: its id qualified by its run, so two runs may share ids."""
    return f"{record.agent_id}@{record.run}"


class MdnsDiscovery:
    """Advertises `record` as `<agent_id>@<run>.<service_type>` and keeps `membership` equal to the other services.

    `interfaces` is zeroconf's choice (default: every IPv4 interface; `LOOPBACK_ONLY` for one host).
    `record.host` must be an IP address the peers can reach; it is what the A record says.
    A peer that says goodbye (`stop()`) is removed within about a second. A peer that dies without one stays until
    its PTR record expires (75 min at zeroconf's default TTL; receivers hold any PTR at least 1125 s), so liveness
    is the caller's job: `membership.remove()` a peer whose RPCs fail; its next TXT update (a new round) re-adds it.
    """

    def __init__(
        self,
        record: PeerRecord,
        membership: Membership,
        service_type: str = SERVICE_TYPE,
        interfaces: InterfacesType = InterfaceChoice.All,
        resolve_timeout_ms: int = 1500,
    ) -> None:
        host = ipaddress.ip_address(record.host)  # ValueError for a name: A/AAAA records carry addresses
        if host.is_unspecified:
            raise ValueError(f"advertise a reachable address, not {record.host}")
        self._record = record
        self._membership = membership
        self._type = service_type
        self._interfaces = interfaces
        self._resolve_timeout_ms = resolve_timeout_ms
        self._name = f"{instance_name(record)}.{service_type}"
        self._lock = threading.Lock()
        self._zc: Zeroconf | None = None
        self._browser: ServiceBrowser | None = None
        self._registered = False
        self._announcing: asyncio.Future[None] | None = None  # the latest update's announcement, on zc.loop
        self._stopped = threading.Event()
        self._ids_by_name: dict[str, tuple[str, str]] = {}  # name -> (id, address); only on the browser thread

    @property
    def record(self) -> PeerRecord:
        """What this agent currently advertises."""
        return self._record

    def start(self) -> None:
        """Asks whether the name is taken, starts browsing, then registers this agent (about 2 s in all).

        Raises RuntimeError when an agent answers for this id and run. Before zeroconf's own probing (whose
        questions ask for unicast answers, which on a host with several mDNS sockets reach only one of them), a
        multicast question for the name itself gives the holder's answer to every socket. Both are best effort (a
        busy holder may answer too late), so ids must still be unique by configuration.
        """
        with self._lock:
            if self._zc is not None or self._stopped.is_set():
                raise RuntimeError("MdnsDiscovery.start() may be called once")
            version = IPVersion.V6Only if ":" in self._record.host else IPVersion.V4Only
            self._zc = Zeroconf(interfaces=self._interfaces, ip_version=version)
            try:
                if self._zc.get_service_info(self._type, self._name, timeout=TWIN_QUESTION_MS,
                                             question_type=MULTICAST) is not None:
                    raise NonUniqueNameException(self._name)
                self._browser = ServiceBrowser(self._zc, self._type, handlers=[self._on_change],
                                               question_type=MULTICAST)
                self._zc.register_service(self._service_info(self._record), allow_name_change=False)
                self._registered = True
            except BaseException as error:
                self._stopped.set()
                self._shutdown()
                if isinstance(error, NonUniqueNameException):
                    raise RuntimeError(f"agent id {self._record.agent_id!r} is already advertised in run "
                                       f"{self._record.run!r} on this network") from None
                raise

    def update(
        self,
        *,
        round: int | None = None,
        samples: int | None = None,
        algorithm: str | None = None,
        setting: str | None = None,
        profile: str | None = None,
    ) -> PeerRecord:
        """Re-advertises with the given fields changed and returns the new record; a no-op when nothing changed.

        Returns at once: the announcement (three packets over 0.45 s) goes on in zeroconf's loop, and replaces
        the one of an earlier update still in flight.
        """
        with self._lock:
            old = self._record
            record = replace(
                old,
                round=old.round if round is None else round,
                samples=old.samples if samples is None else samples,
                algorithm=old.algorithm if algorithm is None else algorithm,
                setting=old.setting if setting is None else setting,
                profile=old.profile if profile is None else profile,
            )
            if record != old:
                self._record = record
                if self._registered:
                    self._announce(self._service_info(record))
            return record

    def stop(self) -> None:
        """Unregisters (goodbye packets), stops browsing and closes zeroconf; idempotent, bounded by a few seconds."""
        self._stopped.set()  # first, so that a resolve in flight drops its result
        with self._lock:
            self._shutdown()

    def _shutdown(self) -> None:
        zc, browser, registered = self._zc, self._browser, self._registered
        self._zc, self._browser, self._registered = None, None, False
        if zc is None:
            return
        try:
            if self._announcing is not None and zc.loop is not None:  # else its packets could follow the goodbye
                zc.loop.call_soon_threadsafe(self._announcing.cancel)
            if browser is not None:
                browser.cancel()  # joins the browser thread; a resolve in flight ends within resolve_timeout_ms
            if registered:
                zc.unregister_service(self._service_info(self._record))
        except Exception:
            log.exception("mDNS shutdown of %s failed; closing anyway", self._name)
        finally:
            _close(zc)

    def _announce(self, info: ServiceInfo) -> None:
        """Updates the registry and starts announcing `info`, cancelling the previous announcement."""
        zc, previous = self._zc, self._announcing
        assert zc is not None and zc.loop is not None

        async def replace_announcement() -> asyncio.Future[None]:
            if previous is not None:
                previous.cancel()
            return asyncio.ensure_future(await zc.async_update_service(info))

        loop = zc.loop
        self._announcing = asyncio.run_coroutine_threadsafe(replace_announcement(), loop).result(timeout=5)

    def _service_info(self, record: PeerRecord) -> ServiceInfo:
        return ServiceInfo(
            self._type,
            self._name,
            port=record.port,
            properties=record.to_txt(),
            server=f"edge-agent-{record.agent_id}-{record.run}.local.",
            parsed_addresses=[record.host],
        )

    def _on_change(self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        """Browser-thread handler; never raises (an exception would end zeroconf's browser thread)."""
        if name.lower() == self._name.lower() or self._stopped.is_set():
            return
        try:
            if state_change is ServiceStateChange.Removed:
                self._forget(name)
            else:
                self._resolve(zeroconf, service_type, name)
        except Exception:
            log.exception("mDNS %s of %s failed", state_change.name, name)

    def _resolve(self, zeroconf: Zeroconf, service_type: str, name: str) -> None:
        try:
            record = resolve_record(zeroconf, service_type, name, self._resolve_timeout_ms)
        except ValueError as error:
            log.warning("ignoring mDNS service %s: %s", name, error)
            self._forget(name)  # a peer whose record turned invalid is no longer a usable peer
            return
        if record is None or self._stopped.is_set():
            return
        if record.agent_id == self._record.agent_id:
            return  # this agent's id in another run (a same-run twin cannot register the same name)
        self._ids_by_name[name.lower()] = (record.agent_id, record.address)
        self._membership.upsert(record)

    def _forget(self, name: str) -> None:
        """Forget the member this service stood for, unless the member is now known at another address."""
        known = self._ids_by_name.pop(name.lower(), None)
        if known is None:
            return
        agent_id, address = known
        current = self._membership.get(agent_id)
        if current is not None and current.address == address:
            self._membership.remove(agent_id)


class MdnsBrowser:
    """Browse only: which agents answer on `service_type` now. It advertises nothing and feeds no Membership.

    Each `sweep` opens zeroconf with an empty cache, so every agent found answered a query during the sweep (a
    crashed agent's cached records cannot make it look alive), and closes it again. Between `start()` and `stop()`
    a second, long-lived browser hears goodbyes at any moment, also between sweeps. `MdnsDiscovery` is the agent's
    side: advertise and browse for members.
    """

    def __init__(self, service_type: str = SERVICE_TYPE, interfaces: InterfacesType = InterfaceChoice.All,
                 resolve_timeout_ms: int = 1500) -> None:
        self._type = service_type
        self._interfaces = interfaces
        self._resolve_timeout_ms = resolve_timeout_ms
        self._lock = threading.Lock()
        self._goodbyes: dict[str, float] = {}  # name -> monotonic time of its goodbye, until the next sweep
        self._listener: tuple[Zeroconf, ServiceBrowser] | None = None

    def start(self) -> None:
        """Listen for goodbyes until `stop()`; OSError when the interfaces cannot be used."""
        def on_change(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
            if state_change is ServiceStateChange.Removed:
                with self._lock:
                    self._goodbyes[name] = time.monotonic()

        zc = Zeroconf(interfaces=self._interfaces, ip_version=IPVersion.V4Only)
        self._listener = (zc, ServiceBrowser(zc, self._type, handlers=[on_change], question_type=MULTICAST))

    def stop(self) -> None:
        if self._listener is not None:
            zc, browser = self._listener
            self._listener = None
            browser.cancel()
            _close(zc)

    def sweep(self, seconds: float, stop: threading.Event | None = None) -> dict[str, PeerRecord | None]:
        """Listen for `seconds` (less once `stop` is set): instance name -> the record it answered with, or None
        for one that said goodbye (the later of the two wins). Raises OSError when the interfaces cannot be used."""
        answered: dict[str, tuple[float, PeerRecord]] = {}
        lock = threading.Lock()

        def on_change(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
            try:
                if state_change is ServiceStateChange.Removed:
                    with self._lock:
                        self._goodbyes[name] = time.monotonic()
                    return
                record = self._resolve(zeroconf, service_type, name)
                if record is not None:
                    with lock:
                        answered[name] = (time.monotonic(), record)
            except Exception:  # an exception would end zeroconf's browser thread
                log.exception("mDNS %s of %s failed", state_change.name, name)

        zc = Zeroconf(interfaces=self._interfaces, ip_version=IPVersion.V4Only)
        try:
            browser = ServiceBrowser(zc, self._type, handlers=[on_change], question_type=MULTICAST)
            (stop or threading.Event()).wait(seconds)
            browser.cancel()
        finally:
            _close(zc)
        with self._lock:
            goodbyes, self._goodbyes = self._goodbyes, {}
        with lock:
            found: dict[str, PeerRecord | None] = {name: record for name, (_, record) in answered.items()}
            for name, when in goodbyes.items():
                if name not in answered or answered[name][0] < when:
                    found[name] = None
        return found

    def __enter__(self) -> MdnsBrowser:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
    def _resolve(self, zeroconf: Zeroconf, service_type: str, name: str) -> PeerRecord | None:
        try:
            return resolve_record(zeroconf, service_type, name, self._resolve_timeout_ms)
        except ValueError as error:
            log.warning("ignoring mDNS service %s: %s", name, error)
            return None


def resolve_record(zeroconf: Zeroconf, service_type: str, name: str, timeout_ms: int) -> PeerRecord | None:
    """The record the service `name` advertises; None when it does not resolve in time, has no address or claims
    another agent's name (logged); ValueError when its TXT is not an agent's record."""
    info = zeroconf.get_service_info(service_type, name, timeout=timeout_ms, question_type=MULTICAST)
    if info is None or info.port is None:
        log.debug("mDNS service %s did not resolve", name)
        return None
    addresses = info.parsed_addresses(IPVersion.V4Only) or info.parsed_addresses()
    if not addresses:
        log.debug("mDNS service %s has no address", name)
        return None
    record = PeerRecord.from_txt(info.properties, host=addresses[0], port=info.port)
    if f"{instance_name(record)}.{service_type}".lower() != name.lower():
        log.warning("ignoring mDNS service %s: it claims agent id %r in run %r", name, record.agent_id, record.run)
        return None
    return record


def _close(zc: Zeroconf) -> None:
    """Close zeroconf and the event loop it ran in a thread of its own: zeroconf 0.148 leaves that loop open, and
    the garbage collector's close of it at interpreter exit printed a traceback after a CLI command's output."""
    zc.close()
    loop = zc.loop
    if loop is not None and not loop.is_running() and not loop.is_closed():
        loop.close()

"""Wires one agent process together: its shard of the data, gRPC server, peer pool, discovery and round loop."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from zeroconf import InterfaceChoice

from edge_agent.agent.config import AgentConfig
from edge_agent.agent.prometheus import AgentMetrics
from edge_agent.agent.report import agent_status
from edge_agent.agent.runtime import Agent
from edge_agent.agent.shard import Evaluation
from edge_agent.discovery.mdns import MdnsDiscovery
from edge_agent.discovery.membership import Membership, Pending
from edge_agent.discovery.peers import PeerRecord
from edge_agent.discovery.static import StaticDiscovery
from edge_agent.learning.data import Dataset
from edge_agent.learning.mlp import MLPSpec
from edge_agent.learning.models.contract import Model
from edge_agent.transport.client import PeerPool
from edge_agent.transport.contract import PROTOCOL_VERSION, AgentStatus, PeerInfo, TransportError
from edge_agent.transport.ledger import TransportLedger
from edge_agent.transport.limits import MessageLimits
from edge_agent.transport.server import AgentServer, ServerConfig
from edge_agent.transport.stall import StallPolicy
from edge_agent.transport.throttle import LinkShaper
from edge_agent.transport.tls import ClusterTls, IdentityError, TlsFiles
from edge_agent.transport.wire import WireConfig

log = logging.getLogger(__name__)
# An agent of our run that already holds our shard answers our first browse within this window: we are the
# duplicate and refuse to start. One that appears later is the duplicate; it is ignored here and refuses itself.
CONFLICT_WINDOW_S = 5.0
TRAINING_IMAGES = 60_000  # with --partition, a shard may hold up to all of Fashion-MNIST's training set (default)
PROBE_TIMEOUT_S = 3.0


class Node:
    """A running agent process: start() serves and discovers, run() trains, close() stops everything."""

    def __init__(self, config: AgentConfig, data: Dataset, test: Evaluation, spec: Model | None = None,
                 train_size: int = TRAINING_IMAGES) -> None:
        """`spec`: the run's model (default MLPSpec(), Fashion-MNIST's); `train_size`: the training set the split
        cuts, which bounds a --partition shard's size."""
        self.config = config
        self.identity = config.identity
        self.ledger = TransportLedger()
        self.tls = cluster_tls(config)
        spec = spec or MLPSpec()
        self.limits = run_limits(config, len(data), spec, train_size)
        shaper = LinkShaper(config.link)
        wire = WireConfig(codecs=config.wire_codecs, chunk_size=config.chunk_size,
                          max_message_bytes=self.limits.max_message_bytes)
        self.pool = PeerPool(wire=wire, shaper=shaper, ledger=self.ledger, run=self.identity,
                             stall=StallPolicy(config.stall_s), tls=self.tls, limits=self.limits)
        self.conflicts: dict[str, str] = {}  # agents of our run that held our shard when we started: id -> address
        self._born = time.monotonic()  # uptime counts from here
        self._started = time.monotonic()  # reset when it starts advertising
        self._proven: set[tuple[str, str]] = set()  # (agent id, address) a TLS handshake proved
        self._probing: set[tuple[str, str]] = set()
        self._probe_lock = threading.Lock()
        self._prober = ThreadPoolExecutor(2, thread_name_prefix=f"{config.agent_id}-probe")
        self.membership = Membership(admit=self._admit)
        self.agent = Agent(config, data, test, self.membership, self.pool, self.ledger, spec=spec, limits=self.limits)
        self.server = AgentServer(ServerConfig(config.agent_id, config.bind_host, config.port, wire, run=self.identity,
                                               tls=self.tls, limits=self.limits, idle_s=config.stall_s),
                                  self.agent.handler, peer_info=self.peer_info, status=self.status,
                                  records=self.agent.journal.recent, shaper=shaper, ledger=self.ledger)
        self._discovery: list[Any] = []
        self.metrics = AgentMetrics(config.agent_id, self.identity.run_id, self.ledger,
                                    lambda: self.agent.next_round, lambda: len(self.agent.members()))
        self.prometheus_port: int | None = None  # bound by start() with --prometheus-port

    @property
    def security(self) -> str:
        return self.server.config.security

    def start(self) -> int:
        """Open the metrics file and checkpoint, bind the port (0: any), then start finding peers.

        Everything an operator can get wrong fails here, before the agent advertises: OSError or ValueError.
        """
        self.agent.prepare()
        port = self.server.start()
        if self.config.prometheus_port is not None:
            self.prometheus_port = self.metrics.serve(self.config.bind_host, self.config.prometheus_port)
        self._started = time.monotonic()
        record = self.peer_record()
        if self.config.mdns:
            loopback = ipaddress.ip_address(self.config.host).is_loopback
            mdns = MdnsDiscovery(record, self.membership, service_type=self.config.service_type,
                                 interfaces=[self.config.host] if loopback else InterfaceChoice.All)
            mdns.start()
            self._discovery.append(mdns)
        if self.config.peers:
            static = StaticDiscovery(list(self.config.peers), self.membership, self._fetch_record,
                                     exclude_id=self.config.agent_id)
            static.start()
            self._discovery.append(static)
        return port

    def run(self, on_round: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Train until the rounds are done or `stop()`, advertising each round committed (trained or skipped) and
        handing `on_round` the trained ones; ValueError if another agent of the run holds our shard."""
        def advertise(record: dict[str, Any]) -> None:
            self.metrics.observe(record)
            for discovery in self._discovery:
                if isinstance(discovery, MdnsDiscovery):
                    discovery.update(round=record["round"] + 1)
            if on_round is not None and record["status"] == "trained":
                on_round(record)
        self.agent.run(advertise, while_discovering=self._refuse_conflicts)

    def stop(self) -> None:
        """Ask the agent to stop at its next check; `run` then returns."""
        self.agent.stop()

    def close(self) -> None:
        """Leave the network (mDNS goodbye), finish calls in flight and stop serving; idempotent."""
        self.agent.stop()
        for discovery in reversed(self._discovery):
            discovery.stop()
        self._discovery.clear()
        self.server.stop(grace=2.0)
        self.metrics.close()
        self.pool.close()
        self._prober.shutdown(wait=False, cancel_futures=True)

    def peer_record(self) -> PeerRecord:
        return PeerRecord(agent_id=self.config.agent_id, host=self.config.host, port=self.server.port,
                          protocol=PROTOCOL_VERSION, algorithm=self.config.algorithm, setting=self.config.setting,
                          round=self.agent.next_round, samples=len(self.agent.data), profile=self.config.profile,
                          run=self.identity.run_id, fingerprint=self.identity.fingerprint, shard=self.config.shard)

    def peer_info(self) -> PeerInfo:
        record = self.peer_record()
        return PeerInfo(record.agent_id, record.protocol, record.algorithm, record.setting, record.round,
                        record.samples, record.profile, record.address, record.run, record.fingerprint,
                        record.shard, self.security)

    def status(self) -> AgentStatus:
        return agent_status(self.agent, self.security, time.monotonic() - self._born)

    def _admit(self, record: PeerRecord) -> str | None:
        """Why an advertised agent is not a member of our run, or None (then it is a hint until it answers)."""
        if record.protocol != PROTOCOL_VERSION:
            return f"it speaks {record.protocol}, this agent {PROTOCOL_VERSION}"
        claimed = record.identity
        if claimed is None:
            return f"its run {record.run!r:.40} is garbled"
        mismatch = self.identity.mismatch(claimed)
        if mismatch is not None:
            return mismatch
        if record.shard >= self.config.clients:
            return f"its shard {record.shard} is outside this run's {self.config.clients}"
        if record.shard == self.config.shard:
            if time.monotonic() - self._started < CONFLICT_WINDOW_S:  # it was there first: we are the duplicate
                self.conflicts[record.agent_id] = record.address
            return f"it claims shard {record.shard}/{self.config.clients}, this agent's"
        return self._unproven(record)

    def _unproven(self, record: PeerRecord) -> str | None:
        """Over mTLS, None once a handshake proved that the agent at the record's address holds a cluster
        certificate naming its id; until then Pending (a probe runs in the background and re-offers the record)."""
        if self.tls is None:
            return None
        key = (record.agent_id, record.address)
        with self._probe_lock:
            if key in self._proven:
                return None
            if key not in self._probing:
                self._probing.add(key)
                with contextlib.suppress(RuntimeError):  # closing
                    self._prober.submit(self._prove, record)
        return Pending("its identity is not yet proven by a TLS handshake")

    def _prove(self, record: PeerRecord) -> None:
        assert self.tls is not None
        key = (record.agent_id, record.address)
        try:
            shown = self.tls.probe(record.host, record.port, PROBE_TIMEOUT_S)
            if shown != record.agent_id:
                raise IdentityError(f"its certificate names {shown!r:.60}")
        except IdentityError as error:
            log.warning("not a member: %s at %s advertises our run but %s", record.agent_id, record.address, error)
            with self._probe_lock:
                self._probing.discard(key)  # a later advert (new round) tries again
            return
        with self._probe_lock:
            self._proven.add(key)
            self._probing.discard(key)
        self.membership.upsert(record)

    def _refuse_conflicts(self) -> None:
        """ValueError when another agent of our run held our shard before we started."""
        if self.conflicts:
            agent_id, address = sorted(self.conflicts.items())[0]
            raise ValueError(f"shard {self.config.shard}/{self.config.clients} is already served by {agent_id} at "
                             f"{address}; give each agent its own i of i/M")

    def _fetch_record(self, host: str, port: int) -> PeerRecord | None:
        try:
            proven = self.tls.probe(host, port, PROBE_TIMEOUT_S) if self.tls is not None else None
            info = self.pool.get(f"{host}:{port}", proven).peer_info(timeout=2.0)
        except (TransportError, IdentityError):
            return None
        if proven is not None:
            if info.agent_id != proven:
                log.warning("%s:%d proves to be %s but says it is %s; ignored", host, port, proven, info.agent_id)
                return None
            with self._probe_lock:
                self._proven.add((proven, f"{host}:{port}"))
        return PeerRecord(agent_id=info.agent_id, host=host, port=port, protocol=info.protocol_version,
                          algorithm=info.algorithm, setting=info.setting, round=info.round, samples=info.samples,
                          profile=info.profile or "generic", run=info.run, fingerprint=info.fingerprint,
                          shard=info.shard)


def cluster_tls(config: AgentConfig) -> ClusterTls | None:
    """This board's mTLS credentials from the certs folder (ValueError, one line, if they do not name it)."""
    if config.certs is None:
        return None
    tls = ClusterTls(TlsFiles.in_folder(config.certs, config.agent_id))
    if tls.identity != config.agent_id:
        raise IdentityError(f"{tls.files.cert} names {tls.identity!r:.60}, not this agent ({config.agent_id})")
    if not tls.board:
        raise IdentityError(f"{tls.files.cert} is an operator certificate, which may read status but not train; "
                            f"a board needs its own: `edge-agent certs issue {config.agent_id} --dir DIR`")
    return tls


def run_limits(config: AgentConfig, own_samples: int, spec: Model | None = None,
               train_size: int = TRAINING_IMAGES) -> MessageLimits:
    """The largest messages any agent of this run sends: what this agent accepts before allocating."""
    spec = spec or MLPSpec()
    spark = config.algorithm == "spark"
    taus = (config.spark.ntk if spark else config.ntk).evolution.taus
    samples = train_size if config.partition_file is not None else config.samples_per_client
    width = config.spark.projection.dim if spark else spec.num_params
    reply = config.spark.kernel_dim if spark and config.spark.kernel_dim else width
    return MessageLimits(num_params=spec.num_params, max_samples=max(samples, own_samples),
                         classes=spec.num_classes, reply_width=reply, max_candidates=len(taus), update_width=width)

"""Wires one agent process together: its shard of the data, gRPC server, peer pool, discovery and round loop."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Any

from zeroconf import InterfaceChoice

from edge_agent.agent.config import AgentConfig
from edge_agent.agent.prometheus import AgentMetrics
from edge_agent.agent.runtime import Agent
from edge_agent.agent.shard import EvaluationImages
from edge_agent.discovery.mdns import MdnsDiscovery
from edge_agent.discovery.membership import Membership
from edge_agent.discovery.peers import PeerRecord
from edge_agent.discovery.static import StaticDiscovery
from edge_agent.learning.data import Dataset
from edge_agent.transport.client import PeerPool
from edge_agent.transport.contract import PROTOCOL_VERSION, AgentStatus, PeerInfo, TransportError
from edge_agent.transport.ledger import TransportLedger
from edge_agent.transport.server import AgentServer, ServerConfig
from edge_agent.transport.stall import StallPolicy
from edge_agent.transport.throttle import LinkShaper
from edge_agent.transport.wire import WireConfig

log = logging.getLogger(__name__)
# An agent of our run that already holds our shard answers our first browse within this window: we are the
# duplicate and refuse to start. One that appears later is the duplicate; it is ignored here and refuses itself.
CONFLICT_WINDOW_S = 5.0


class Node:
    """A running agent process: start() serves and discovers, run() trains, close() stops everything."""

    def __init__(self, config: AgentConfig, data: Dataset, test: EvaluationImages) -> None:
        self.config = config
        self.identity = config.identity
        self.ledger = TransportLedger()
        shaper = LinkShaper(config.link)
        wire = WireConfig(codecs=config.wire_codecs, chunk_size=config.chunk_size)
        self.pool = PeerPool(wire=wire, shaper=shaper, ledger=self.ledger, run=self.identity,
                             stall=StallPolicy(config.stall_s))
        self.conflicts: dict[str, str] = {}  # agents of our run that held our shard when we started: id -> address
        self._started = time.monotonic()  # reset when it starts advertising
        self.membership = Membership(admit=self._admit)
        self.agent = Agent(config, data, test, self.membership, self.pool, self.ledger)
        self.server = AgentServer(ServerConfig(config.agent_id, config.host, config.port, wire, run=self.identity),
                                  self.agent.handler, peer_info=self.peer_info, status=self.status, shaper=shaper,
                                  ledger=self.ledger)
        self._discovery: list[Any] = []
        self.metrics = AgentMetrics(config.agent_id, self.identity.run_id, self.ledger,
                                    lambda: self.agent.next_round, lambda: len(self.agent.members()))
        self.prometheus_port: int | None = None  # bound by start() with --prometheus-port

    def start(self) -> int:
        """Open the metrics file and checkpoint, bind the port (0: any), then start finding peers.

        Everything an operator can get wrong fails here, before the agent advertises: OSError or ValueError.
        """
        self.agent.prepare()
        port = self.server.start()
        if self.config.prometheus_port is not None:
            self.prometheus_port = self.metrics.serve(self.config.host, self.config.prometheus_port)
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
        """Train until the rounds are done or `stop()`; ValueError if another agent of the run holds our shard."""
        def advertise(record: dict[str, Any]) -> None:
            self.metrics.observe(record)
            for discovery in self._discovery:
                if isinstance(discovery, MdnsDiscovery):
                    discovery.update(round=record["round"] + 1)
            if on_round is not None:
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

    def peer_record(self) -> PeerRecord:
        return PeerRecord(agent_id=self.config.agent_id, host=self.config.host, port=self.server.port,
                          protocol=PROTOCOL_VERSION, algorithm=self.config.algorithm, setting=self.config.setting,
                          round=self.agent.next_round, samples=len(self.agent.data), profile=self.config.profile,
                          run=self.identity.run_id, fingerprint=self.identity.fingerprint, shard=self.config.shard)

    def peer_info(self) -> PeerInfo:
        record = self.peer_record()
        return PeerInfo(record.agent_id, record.protocol, record.algorithm, record.setting, record.round,
                        record.samples, record.profile, self.server.address, record.run, record.fingerprint,
                        record.shard)

    def status(self) -> AgentStatus:
        totals = self.ledger.totals()
        return AgentStatus(round=self.agent.next_round, state=self.agent.state,
                           members=tuple(self.agent.members()), bytes_sent=totals.wire_sent,
                           bytes_received=totals.wire_received, last_round_seconds=self.agent.last_round_seconds,
                           run=self.identity.run_id)

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
        return None

    def _refuse_conflicts(self) -> None:
        """ValueError when another agent of our run held our shard before we started."""
        if self.conflicts:
            agent_id, address = sorted(self.conflicts.items())[0]
            raise ValueError(f"shard {self.config.shard}/{self.config.clients} is already served by {agent_id} at "
                             f"{address}; give each agent its own i of i/M")

    def _fetch_record(self, host: str, port: int) -> PeerRecord | None:
        try:
            info = self.pool.get(f"{host}:{port}").peer_info(timeout=2.0)
        except TransportError:
            return None
        return PeerRecord(agent_id=info.agent_id, host=host, port=port, protocol=info.protocol_version,
                          algorithm=info.algorithm, setting=info.setting, round=info.round, samples=info.samples,
                          profile=info.profile or "generic", run=info.run, fingerprint=info.fingerprint,
                          shard=info.shard)

"""Wires one agent process together: its shard of the data, gRPC server, peer pool, discovery and round loop."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from typing import Any

from zeroconf import InterfaceChoice

from edge_agent.agent.config import AgentConfig
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
from edge_agent.transport.throttle import LinkShaper
from edge_agent.transport.wire import WireConfig

log = logging.getLogger(__name__)


class Node:
    """A running agent process: start() serves and discovers, run() trains, close() stops everything."""

    def __init__(self, config: AgentConfig, data: Dataset, test: EvaluationImages) -> None:
        self.config = config
        self.ledger = TransportLedger()
        shaper = LinkShaper(config.link)
        wire = WireConfig(codecs=config.wire_codecs, chunk_size=config.chunk_size)
        self.pool = PeerPool(wire=wire, shaper=shaper, ledger=self.ledger)
        self.membership = Membership()
        self.agent = Agent(config, data, test, self.membership, self.pool, self.ledger)
        self.server = AgentServer(ServerConfig(config.agent_id, config.host, config.port, wire), self.agent.handler,
                                  peer_info=self.peer_info, status=self.status, shaper=shaper, ledger=self.ledger)
        self._discovery: list[Any] = []

    def start(self) -> int:
        """Serve on the configured port (0: any) and start finding peers; returns the bound port."""
        port = self.server.start()
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
        def advertise(record: dict[str, Any]) -> None:
            for discovery in self._discovery:
                if isinstance(discovery, MdnsDiscovery):
                    discovery.update(round=record["round"] + 1)
            if on_round is not None:
                on_round(record)
        self.agent.run(advertise)

    def close(self) -> None:
        """Leave the network (mDNS goodbye), finish calls in flight and stop serving; idempotent."""
        self.agent.stop()
        for discovery in reversed(self._discovery):
            discovery.stop()
        self._discovery.clear()
        self.server.stop(grace=2.0)
        self.pool.close()

    def peer_record(self) -> PeerRecord:
        return PeerRecord(agent_id=self.config.agent_id, host=self.config.host, port=self.server.port,
                          protocol=PROTOCOL_VERSION, algorithm=self.config.algorithm, setting=self.config.setting,
                          round=self.agent.next_round, samples=len(self.agent.data), profile=self.config.profile)

    def peer_info(self) -> PeerInfo:
        record = self.peer_record()
        return PeerInfo(record.agent_id, record.protocol, record.algorithm, record.setting, record.round,
                        record.samples, record.profile, self.server.address)

    def status(self) -> AgentStatus:
        totals = self.ledger.totals()
        return AgentStatus(round=self.agent.next_round, state=self.agent.state,
                           members=tuple(self.agent.members()), bytes_sent=totals.wire_sent,
                           bytes_received=totals.wire_received)

    def _fetch_record(self, host: str, port: int) -> PeerRecord | None:
        try:
            info = self.pool.get(f"{host}:{port}").peer_info(timeout=2.0)
        except TransportError:
            return None
        return PeerRecord(agent_id=info.agent_id, host=host, port=port, protocol=info.protocol_version,
                          algorithm=info.algorithm, setting=info.setting, round=info.round, samples=info.samples,
                          profile=info.profile or "generic")

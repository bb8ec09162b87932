"""Prometheus metrics of one agent (`run --prometheus-port`): bytes per peer and direction, seconds per phase,
round, accuracy, members, memory, and the neighbours its --robust rule bounded or left out, on a registry of its
own served over HTTP (docs/operator.md).

Byte counters are read from the transport ledger at scrape time, so they are exact whenever Prometheus asks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from edge_agent.agent.memory import peak_rss_mb, rss_bytes
from edge_agent.transport.ledger import TransportLedger

LABELS = ("agent", "run")
PHASES = ("average", "jacobian", "transfer", "evolve", "score", "total")
PHASE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)  # seconds


class LedgerCollector(Collector):
    """edge_agent_bytes_{sent,received}_total{peer, layer}: wire and payload bytes of every link, from the ledger."""

    def __init__(self, ledger: TransportLedger, labels: Mapping[str, str]) -> None:
        self._ledger, self._labels = ledger, dict(labels)

    def collect(self) -> Iterator[CounterMetricFamily]:
        names = [*self._labels, "peer", "layer"]
        sent = CounterMetricFamily("edge_agent_bytes_sent", "Bytes sent to a peer: layer wire (gRPC messages) or "
                                   "payload (encoded tensors inside them).", labels=names)
        received = CounterMetricFamily("edge_agent_bytes_received", "Bytes received from a peer: layer wire (gRPC "
                                       "messages) or payload (encoded tensors inside them).", labels=names)
        fixed = list(self._labels.values())
        for peer, counters in sorted(self._ledger.links().items()):
            for layer in ("wire", "payload"):
                sent.add_metric([*fixed, peer, layer], getattr(counters, f"{layer}_sent"))
                received.add_metric([*fixed, peer, layer], getattr(counters, f"{layer}_received"))
        yield sent
        yield received


class AgentMetrics:
    """The metrics of one agent; `observe(record)` after each committed round, `serve(host, port)` to expose them."""

    def __init__(self, agent_id: str, run: str, ledger: TransportLedger, next_round: Callable[[], int],
                 members: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        labels = {"agent": agent_id, "run": run}
        self._labels = labels
        self.registry.register(LedgerCollector(ledger, labels))
        self._phase = Histogram("edge_agent_phase_seconds", "Seconds per phase of each trained round.",
                                [*LABELS, "phase"], buckets=PHASE_BUCKETS, registry=self.registry)
        self._rounds = Counter("edge_agent_rounds", "Rounds recorded, by status (trained or skipped).",
                               [*LABELS, "status"], registry=self.registry)
        self._clipped = Counter("edge_agent_robust_clipped", "Rounds in which the --robust rule bounded a "
                                "neighbour's message, by neighbour and message (weights, jacobian, scores).",
                                [*LABELS, "peer", "message"], registry=self.registry)
        self._refused = Counter("edge_agent_robust_refused", "Rounds in which the --robust rule left a neighbour "
                                "out, by neighbour.", [*LABELS, "peer"], registry=self.registry)
        self._accuracy = Gauge("edge_agent_test_accuracy", "Test accuracy after the last trained round (0..1).",
                               LABELS, registry=self.registry).labels(**labels)
        gauges: dict[str, tuple[str, Callable[[], float]]] = {
            "edge_agent_round": ("The round the agent runs next = rounds completed (as mDNS and Status say).",
                                 lambda: float(next_round())),
            "edge_agent_members": ("Agents of the run this agent knows, itself included.", lambda: float(members())),
            "edge_agent_rss_bytes": ("Resident memory of the agent process now, bytes.", _rss_bytes),
            "edge_agent_peak_rss_bytes": ("Peak resident memory of the agent process so far, bytes.",
                                          lambda: peak_rss_mb() * (1 << 20)),
        }
        for name, (text, read) in gauges.items():
            Gauge(name, text, LABELS, registry=self.registry).labels(**labels).set_function(read)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def observe(self, record: Mapping[str, Any]) -> None:
        """Count a committed round record; a trained one adds its phase seconds and sets the accuracy."""
        status = str(record.get("status", "trained"))
        self._rounds.labels(**self._labels, status=status).inc()
        if status != "trained":
            return
        for phase in PHASES:
            self._phase.labels(**self._labels, phase=phase).observe(float(record["seconds"][phase]))
        robust = record.get("robust", {})
        for peer, kinds in robust.get("clipped", {}).items():
            for kind in kinds:
                self._clipped.labels(**self._labels, peer=peer, message=kind).inc()
        for peer in robust.get("refused", {}):
            self._refused.labels(**self._labels, peer=peer).inc()
        self._accuracy.set(float(record["test_accuracy"]))

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics on host:port (0: any free port) and return the port; OSError naming the flag if bound."""
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as error:
            raise OSError(f"--prometheus-port {port}: cannot listen on {host}:{port}: {error.strerror or error}") \
                from None
        return int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _rss_bytes() -> float:
    now = rss_bytes()
    return float("nan") if now is None else float(now)

"""The agent's Prometheus metrics count, per neighbour, the rounds its --robust rule left it out or bounded it."""

from __future__ import annotations

from prometheus_client import generate_latest

from edge_agent.agent.prometheus import AgentMetrics
from edge_agent.transport.ledger import TransportLedger

PHASES = dict.fromkeys(("average", "jacobian", "transfer", "evolve", "score", "total"), 0.1)


def _record(refused: dict[str, str], clipped: dict[str, dict[str, float]]) -> dict[str, object]:
    return {"status": "trained", "seconds": PHASES, "test_accuracy": 0.5,
            "robust": {"rule": "screen", "refused": refused, "clipped": clipped, "seconds": 0.001}}


def test_refused_and_clipped_neighbours_are_counted_by_peer_and_message() -> None:
    metrics = AgentMetrics("client-0", "lab", TransportLedger(), lambda: 3, lambda: 4)
    metrics.observe(_record({"client-3": "weights beyond the radius"}, {}))
    metrics.observe(_record({"client-3": "weights beyond the radius"}, {"client-1": {"jacobian": 0.5}}))
    metrics.observe({"status": "skipped", "reason": "behind the fleet"})
    text = generate_latest(metrics.registry).decode()
    assert 'edge_agent_robust_refused_total{agent="client-0",peer="client-3",run="lab"} 2.0' in text
    assert ('edge_agent_robust_clipped_total{agent="client-0",message="jacobian",peer="client-1",run="lab"} 1.0'
            in text)

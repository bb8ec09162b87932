"""What an agent says about itself over Status: progress, this round's neighbours, bytes per link, its last round."""

from __future__ import annotations

from edge_agent import __version__
from edge_agent.agent.memory import peak_rss_mb
from edge_agent.agent.runtime import Agent
from edge_agent.transport.contract import AgentStatus, LinkBytes, NeighbourState
from edge_agent.transport.ledger import LinkCounters


def agent_status(agent: Agent, security: str, uptime_s: float) -> AgentStatus:
    """A snapshot of `agent` now. `round` is the round it runs next; `last_round` its last record's 0-based round."""
    config, totals = agent.config, agent.ledger.totals()
    with agent.progress_lock:  # a round's end is seen whole, not its record without its next round
        next_round, state, phase = agent.next_round, agent.state, agent.phase
        last, trained = agent.last_record, agent.last_trained
    return AgentStatus(
        round=next_round, state=state, members=tuple(agent.members()), bytes_sent=totals.wire_sent,
        bytes_received=totals.wire_received, last_round_seconds=agent.last_round_seconds,
        run=config.identity.run_id, security=security, agent_id=config.agent_id, version=__version__,
        profile=config.profile, backend=config.backend, algorithm=config.algorithm, shard=config.shard,
        clients=config.clients, rounds=config.rounds, phase=phase,
        neighbours=tuple(NeighbourState(peer, state, why) for peer, (state, why) in agent.neighbour_states().items()),
        links=link_bytes(agent.ledger.links(), agent.round_links, trained),
        uplink_bits_per_s=config.link.uplink_bits, downlink_bits_per_s=config.link.downlink_bits,
        latency_s=config.link.latency_s,
        last_round_phase_seconds={k: float(v) for k, v in trained["seconds"].items()} if trained else {},
        last_accuracy=float(trained["test_accuracy"]) if trained else None,
        uptime_s=uptime_s, peak_rss_mb=peak_rss_mb(), last_round=int(last["round"]) if last else -1,
        best_round=-1 if agent.best.round is None else agent.best.round,
        best_accuracy=None if agent.best.round is None else agent.best.accuracy)


def link_bytes(now: dict[str, LinkCounters], round_start: dict[str, LinkCounters],
               trained: dict[str, object] | None) -> tuple[LinkBytes, ...]:
    """Wire bytes per peer: since the round began (ledger now minus its snapshot then), in the last trained
    round (its record's `links`), and over the process's life; peers ordered by id."""
    last = trained.get("links", {}) if trained else {}
    assert isinstance(last, dict)
    links = []
    for peer in sorted(set(now) | set(last)):
        counters, start = now.get(peer, LinkCounters()), round_start.get(peer, LinkCounters())
        previous = last.get(peer, {})
        links.append(LinkBytes(peer, counters.wire_sent - start.wire_sent,
                               counters.wire_received - start.wire_received, int(previous.get("wire_sent", 0)),
                               int(previous.get("wire_received", 0)), counters.wire_sent, counters.wire_received))
    return tuple(links)

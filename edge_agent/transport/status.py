"""An agent's status snapshot to and from its wire form (StatusReply), and the bound on round records served."""

from __future__ import annotations

from edge_agent.transport.contract import AgentStatus, LinkBytes, NeighbourState
from edge_agent.v1 import agent_pb2 as pb

MAX_RECORDS = 1000  # the most recent round records an agent keeps in memory and serves over Records


def status_reply(s: AgentStatus, security: str) -> pb.StatusReply:
    """The StatusReply of a snapshot; `security` is what the server actually speaks."""
    reply = pb.StatusReply(
        round=s.round, state=s.state, members=s.members, bytes_sent=s.bytes_sent, bytes_received=s.bytes_received,
        last_round_seconds=s.last_round_seconds, run=s.run, security=security, agent_id=s.agent_id,
        version=s.version, profile=s.profile, backend=s.backend, algorithm=s.algorithm, shard=s.shard,
        clients=s.clients, rounds=s.rounds, phase=s.phase,
        neighbours=[pb.NeighbourState(agent_id=n.agent_id, state=n.state, reason=n.reason) for n in s.neighbours],
        links=[pb.LinkBytes(peer=k.peer, round_sent=k.round_sent, round_received=k.round_received,
                            last_round_sent=k.last_round_sent, last_round_received=k.last_round_received,
                            total_sent=k.total_sent, total_received=k.total_received) for k in s.links],
        uplink_bits_per_s=s.uplink_bits_per_s, downlink_bits_per_s=s.downlink_bits_per_s, latency_s=s.latency_s,
        last_round_phase_seconds=s.last_round_phase_seconds, uptime_s=s.uptime_s, peak_rss_mb=s.peak_rss_mb,
        last_round=s.last_round, best_round=s.best_round)
    if s.last_accuracy is not None:
        reply.last_accuracy = s.last_accuracy
    if s.best_accuracy is not None:
        reply.best_accuracy = s.best_accuracy
    return reply


def agent_status(r: pb.StatusReply) -> AgentStatus:
    """The snapshot a StatusReply carries (an older agent's reply leaves the newer fields at their defaults)."""
    return AgentStatus(
        round=r.round, state=r.state, members=tuple(r.members), bytes_sent=r.bytes_sent,
        bytes_received=r.bytes_received, last_round_seconds=r.last_round_seconds, run=r.run, security=r.security,
        agent_id=r.agent_id, version=r.version, profile=r.profile, backend=r.backend, algorithm=r.algorithm,
        shard=r.shard, clients=r.clients, rounds=r.rounds, phase=r.phase,
        neighbours=tuple(NeighbourState(n.agent_id, n.state, n.reason) for n in r.neighbours),
        links=tuple(LinkBytes(k.peer, k.round_sent, k.round_received, k.last_round_sent, k.last_round_received,
                              k.total_sent, k.total_received) for k in r.links),
        uplink_bits_per_s=r.uplink_bits_per_s, downlink_bits_per_s=r.downlink_bits_per_s, latency_s=r.latency_s,
        last_round_phase_seconds=dict(r.last_round_phase_seconds),
        last_accuracy=r.last_accuracy if r.HasField("last_accuracy") else None,
        uptime_s=r.uptime_s, peak_rss_mb=r.peak_rss_mb,
        last_round=r.last_round if r.agent_id else -1,  # an old agent sends no last_round: unknown
        best_round=r.best_round if r.HasField("best_accuracy") else -1,
        best_accuracy=r.best_accuracy if r.HasField("best_accuracy") else None)

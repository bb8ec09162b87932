"""What `edge-agent status` prints about agents: a JSON document with stable keys (docs/operator.md) or one block
of text per agent.

Round numbers as docs/records.md says: `next_round` is the round the agent runs next (= rounds completed, what mDNS
and `peers` call `round`); `last_round` is the 0-based `round` of its last record (null before its first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edge_agent.fleet.dial import Connection, Target
from edge_agent.transport.contract import AgentStatus, LinkBytes
from edge_agent.transport.tls import ClusterTls

PHASES = ("average", "jacobian", "transfer", "evolve", "score", "total")
AGENT_KEYS = ("address", "id", "run", "version", "profile", "backend", "algorithm", "shard", "clients", "security",
              "state", "phase", "next_round", "last_round", "rounds", "members", "neighbours", "link", "links",
              "total_sent_bytes", "total_received_bytes", "last_round_seconds", "last_accuracy", "best", "uptime_s",
              "peak_rss_mb")


def status_json(target: Target, s: AgentStatus) -> dict[str, Any]:
    """One agent's status under AGENT_KEYS."""
    seconds = s.last_round_phase_seconds.get("total", 0.0)
    return {
        "address": target.address, "id": s.agent_id, "run": s.run, "version": s.version, "profile": s.profile,
        "backend": s.backend, "algorithm": s.algorithm, "shard": s.shard, "clients": s.clients,
        "security": s.security, "state": s.state, "phase": s.phase or None, "next_round": s.round,
        "last_round": s.last_round if s.last_round >= 0 else None, "rounds": s.rounds, "members": list(s.members),
        "neighbours": [{"id": n.agent_id, "state": n.state, "reason": n.reason or None} for n in s.neighbours],
        "link": {"uplink_bits_per_s": s.uplink_bits_per_s, "downlink_bits_per_s": s.downlink_bits_per_s,
                 "latency_s": s.latency_s},
        "links": [_link_json(link, seconds) for link in s.links],
        "total_sent_bytes": s.bytes_sent, "total_received_bytes": s.bytes_received,
        "last_round_seconds": {phase: s.last_round_phase_seconds[phase] for phase in PHASES
                               if phase in s.last_round_phase_seconds} or None,
        "last_accuracy": s.last_accuracy,
        "best": None if s.best_accuracy is None else {"round": s.best_round, "accuracy": s.best_accuracy},
        "uptime_s": round(s.uptime_s, 3), "peak_rss_mb": s.peak_rss_mb}


def ask_status(target: Target, tls: ClusterTls | None, connections: dict[str, Connection]) -> dict[str, Any]:
    """One agent's status under AGENT_KEYS, over a connection kept in `connections` (by address) for the next ask;
    UnansweredError, one line, when it does not answer."""
    connection = connections.get(target.address)
    if connection is None:
        connection = connections[target.address] = Connection(target, tls)
    return status_json(connection.target, connection.ask(lambda client: client.status(timeout=connection.timeout)))


@dataclass(frozen=True)
class Gone:
    """An agent that answered before and no longer does (`status --all --watch`, the dashboard): since when, and
    how it failed."""

    target: Target
    since: datetime
    reason: str

    def json(self) -> dict[str, Any]:
        return {"id": self.target.agent_id, "address": self.target.address,
                "since": self.since.isoformat(timespec="seconds").replace("+00:00", "Z"), "reason": self.reason}

    def line(self) -> str:
        return f"{self.target.name}: gone since {self.since:%H:%M:%S}Z ({self.reason})"


def _link_json(link: LinkBytes, seconds: float) -> dict[str, Any]:
    return {"peer": link.peer, "round_sent_bytes": link.round_sent, "round_received_bytes": link.round_received,
            "last_round_sent_bytes": link.last_round_sent, "last_round_received_bytes": link.last_round_received,
            "total_sent_bytes": link.total_sent, "total_received_bytes": link.total_received,
            "last_round_sent_bits_per_s": _rate(link.last_round_sent, seconds),
            "last_round_received_bits_per_s": _rate(link.last_round_received, seconds)}


def _rate(nbytes: int, seconds: float) -> float | None:
    """Mean bits/s over the last round's wall time (None before a trained round)."""
    return round(8 * nbytes / seconds, 1) if seconds > 0 else None


def report_json(agents: Sequence[dict[str, Any]], now: datetime) -> dict[str, Any]:
    return {"time": now.isoformat(timespec="seconds").replace("+00:00", "Z"), "agents": list(agents)}


def status_text(agent: dict[str, Any]) -> str:
    """One agent's block: who it is, where it stands, its neighbours, last round and links."""
    a = agent
    security = "mutual TLS" if a["security"] == "mtls" else "plaintext (--insecure)"
    rounds = f"of {a['rounds']}" if a["rounds"] else "(runs until stopped)"
    last = f"round {a['last_round']}" if a["last_round"] is not None else "none yet"
    accuracy = f"{a['last_accuracy']:.3f}" if a["last_accuracy"] is not None else "-"
    best = f" (best {a['best']['accuracy']:.3f}, round {a['best']['round']})" if a.get("best") else ""
    neighbours = ", ".join(n["id"] + ("" if n["state"] == "ok" else f" {n['state']} ({n['reason']})")
                           for n in a["neighbours"]) or "-"
    link = a["link"]
    lines = [
        f"{a['id']} at {a['address']}: run {a['run']}, {a['algorithm']}, shard {a['shard']}/{a['clients']}, "
        f"profile {a['profile']}, backend {a['backend']}, edge-agent {a['version']}, {security}",
        f"  state       {a['state']}{', phase ' + a['phase'] if a['phase'] else ''}",
        f"  rounds      next round {a['next_round']} = {a['next_round']} done {rounds}; last record: {last}",
        f"  members     {' '.join(a['members'])}",
        f"  neighbours  {neighbours}",
        f"  last round  accuracy {accuracy}{best}; seconds " + (" ".join(
            f"{phase} {value:.2f}" for phase, value in a["last_round_seconds"].items())
            if a["last_round_seconds"] else "-"),
        f"  process     up {_duration(a['uptime_s'])}, peak RSS {a['peak_rss_mb']:.1f} MiB",
        f"  access link uplink {_bits(link['uplink_bits_per_s'])}, downlink {_bits(link['downlink_bits_per_s'])}, "
        f"latency {link['latency_s'] * 1000:.0f} ms",
        f"  wire bytes  sent {_mb(a['total_sent_bytes'])}, received {_mb(a['total_received_bytes'])} in total",
    ]
    rows = [("  PEER", "ROUND SENT", "ROUND RECV", "LAST SENT", "LAST RECV", "LAST OUT", "LAST IN", "TOTAL SENT",
             "TOTAL RECV")]
    for k in a["links"]:
        rows.append((f"  {k['peer']}", _mb(k["round_sent_bytes"]), _mb(k["round_received_bytes"]),
                     _mb(k["last_round_sent_bytes"]), _mb(k["last_round_received_bytes"]),
                     _rate_text(k["last_round_sent_bits_per_s"]), _rate_text(k["last_round_received_bits_per_s"]),
                     _mb(k["total_sent_bytes"]), _mb(k["total_received_bytes"])))
    if len(rows) > 1:
        lines.append(_table(rows))
    return "\n".join(lines)


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _mb(nbytes: int) -> str:
    return f"{nbytes / 1e6:.3f} MB"


def _bits(rate: float) -> str:
    return "unlimited" if rate <= 0 else f"{rate / 1e6:g} Mbit/s"


def _rate_text(rate: float | None) -> str:
    return "-" if rate is None else f"{rate / 1e6:.2f} Mbit/s"


def _duration(seconds: float) -> str:
    whole = int(seconds)
    if whole < 120:
        return f"{whole} s"
    if whole < 7200:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"

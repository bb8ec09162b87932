"""The fleet as a graph and its totals, from the agents' status answers (`status --json`'s keys): who is there,
this round's neighbour links with their bytes and rates, and the boards that are gone."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from edge_agent.fleet.status import Gone


def graph_json(agents: Sequence[dict[str, Any]], gone: Sequence[Gone]) -> dict[str, Any]:
    """Nodes (answering, gone since when, or only named as a member) and this round's neighbour links."""
    nodes: dict[str, dict[str, Any]] = {}
    for agent in agents:
        nodes[agent["id"]] = {"id": agent["id"], "state": "online", "address": agent["address"], "since": None,
                              "reason": None}
    for lost in gone:
        entry = lost.json()
        name = entry["id"] or entry["address"]
        nodes.setdefault(name, {"id": name, "state": "gone", "address": entry["address"], "since": entry["since"],
                                "reason": entry["reason"]})
    for agent in agents:
        for member in agent["members"]:
            nodes.setdefault(member, {"id": member, "state": "unseen", "address": None, "since": None,
                                      "reason": "named a member by the fleet, not heard by the dashboard"})
    return {"nodes": sorted(nodes.values(), key=lambda n: _order(n["id"])), "edges": _edges(agents)}


def _edges(agents: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One edge per pair of this round's neighbours, its bytes as the lower id of the two that answers counts them
    (sent + received); `missing` when either end leaves the other out."""
    edges: dict[tuple[str, str], dict[str, Any]] = {}
    for agent in sorted(agents, key=lambda a: _order(a["id"])):
        links = {link["peer"]: link for link in agent["links"]}
        for neighbour in agent["neighbours"]:
            pair = tuple(sorted((agent["id"], neighbour["id"]), key=_order))
            key = (pair[0], pair[1])
            if key in edges:
                if neighbour["state"] != "ok":
                    edges[key].update(state=neighbour["state"], reason=neighbour["reason"])
                continue
            link = links.get(neighbour["id"], {})
            edges[key] = {
                "a": key[0], "b": key[1], "state": neighbour["state"], "reason": neighbour["reason"],
                "round_bytes": link.get("round_sent_bytes", 0) + link.get("round_received_bytes", 0),
                "last_round_bytes": link.get("last_round_sent_bytes", 0) + link.get("last_round_received_bytes", 0),
                "total_bytes": link.get("total_sent_bytes", 0) + link.get("total_received_bytes", 0),
                "last_round_bits_per_s": _sum_rates(link.get("last_round_sent_bits_per_s"),
                                                    link.get("last_round_received_bits_per_s"))}
    return [edges[key] for key in sorted(edges, key=lambda k: (_order(k[0]), _order(k[1])))]


def totals_json(agents: Sequence[dict[str, Any]], gone_last: Sequence[dict[str, Any]], gone: int) -> dict[str, Any]:
    """The run's totals: agents answering and gone, the round the fleet is in, wire bytes, mean accuracy.

    Bytes are summed over the agents' processes (`total_sent_bytes`, a process's life), the gone ones' last answers
    included."""
    accuracies = [a["last_accuracy"] for a in agents if a["last_accuracy"] is not None]
    rounds = [a["next_round"] for a in agents]
    everyone = [*agents, *gone_last]
    return {
        "agents": len(agents), "gone": gone,
        "members": len({m for a in agents for m in a["members"]} | {a["id"] for a in agents}),
        "next_round": max(rounds) if rounds else None,
        "wire_sent_bytes": sum(a["total_sent_bytes"] for a in everyone),
        "wire_received_bytes": sum(a["total_received_bytes"] for a in everyone),
        "mean_accuracy": round(statistics.fmean(accuracies), 6) if accuracies else None,
        "uptime_s": max((a["uptime_s"] for a in agents), default=None)}


def _sum_rates(sent: float | None, received: float | None) -> float | None:
    return None if sent is None and received is None else round((sent or 0.0) + (received or 0.0), 1)


def _order(agent_id: str) -> tuple[str, int, str]:
    """client-2 before client-10: ids ordered by their text, then by a trailing number."""
    stem, _, number = agent_id.rpartition("-")
    return (stem, int(number), "") if number.isdigit() else (agent_id, -1, agent_id)

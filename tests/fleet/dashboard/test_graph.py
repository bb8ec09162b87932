"""The fleet as a graph from `status --json` answers: this round's links with bytes and rates, gone and unheard
boards, and the run's totals."""

from datetime import UTC, datetime
from typing import Any

from edge_agent.fleet.dashboard.graph import graph_json, totals_json
from edge_agent.fleet.dial import Target
from edge_agent.fleet.status import Gone

IDS = ["client-0", "client-1", "client-2", "client-10"]


def _link(peer: str, last_sent: int, rate: float | None = 8e6) -> dict[str, Any]:
    return {"peer": peer, "round_sent_bytes": 10, "round_received_bytes": 20, "last_round_sent_bytes": last_sent,
            "last_round_received_bytes": 1000, "total_sent_bytes": 5000, "total_received_bytes": 6000,
            "last_round_sent_bits_per_s": rate, "last_round_received_bits_per_s": rate}


def _agent(agent: str, neighbours: dict[str, str], accuracy: float | None = 0.5, round_: int = 4) -> dict[str, Any]:
    return {"id": agent, "address": f"127.0.0.1:{5000 + IDS.index(agent)}", "members": IDS,
            "neighbours": [{"id": n, "state": state, "reason": None if state == "ok" else "stalled"}
                           for n, state in neighbours.items()],
            "links": [_link(n, 3000 + IDS.index(agent)) for n in neighbours], "next_round": round_,
            "last_accuracy": accuracy, "total_sent_bytes": 100, "total_received_bytes": 90, "uptime_s": 12.5}


def test_each_neighbour_pair_is_one_edge_with_the_lower_ids_bytes_and_missing_wins() -> None:
    agents = [_agent("client-1", {"client-0": "ok", "client-10": "ok"}),
              _agent("client-0", {"client-1": "ok", "client-10": "ok"}),
              _agent("client-10", {"client-0": "missing", "client-1": "ok"})]
    edges = graph_json(agents, [])["edges"]
    assert [(e["a"], e["b"], e["state"]) for e in edges] == [
        ("client-0", "client-1", "ok"), ("client-0", "client-10", "missing"), ("client-1", "client-10", "ok")]
    first = edges[0]  # client-0's view: sent 3000 + received 1000 last round
    assert (first["last_round_bytes"], first["round_bytes"], first["total_bytes"]) == (4000, 30, 11000)
    assert first["last_round_bits_per_s"] == 16e6 and edges[1]["reason"] == "stalled"


def test_gone_boards_are_grey_nodes_with_since_and_members_not_heard_are_unseen() -> None:
    since = datetime(2026, 12, 3, 19, 40, 5, tzinfo=UTC)
    gone = [Gone(Target("127.0.0.1", 5002, "client-2"), since, "nothing answers on 127.0.0.1:5002")]
    nodes = graph_json([_agent("client-0", {"client-1": "missing"})], gone)["nodes"]
    assert [(n["id"], n["state"]) for n in nodes] == [
        ("client-0", "online"), ("client-1", "unseen"), ("client-2", "gone"), ("client-10", "unseen")]
    assert nodes[2]["since"] == "2026-12-03T19:40:05Z" and nodes[2]["reason"].startswith("nothing answers")


def test_totals_count_agents_and_gone_the_fleets_round_bytes_and_mean_accuracy() -> None:
    agents = [_agent("client-0", {}, 0.5, 6), _agent("client-1", {}, 0.7, 7), _agent("client-2", {}, None, 2)]
    totals = totals_json(agents, [_agent("client-10", {})], gone=1)
    assert totals == {"agents": 3, "gone": 1, "members": 4, "next_round": 7, "wire_sent_bytes": 400,
                      "wire_received_bytes": 360, "mean_accuracy": 0.6, "uptime_s": 12.5}
    assert totals_json([], [], 0)["next_round"] is None

"""Round records as the dashboard plots them: one point per record, MB per link, the latest rounds kept."""

import json

from edge_agent.fleet.dashboard.history import AgentHistory, parse_records, round_point


def _record(round_: int, accuracy: float = 0.5) -> dict[str, object]:
    """A trained round's record as an agent writes it (docs/records.md), the fields the dashboard reads."""
    return {"schema": 1, "kind": "agent_round", "time": f"2026-12-03T19:40:{round_:02d}.000Z", "round": round_,
            "status": "trained", "test_accuracy": accuracy, "rss_mb": 101.5, "round_peak_rss_mb": 140.0,
            "seconds": {"average": 0.2, "jacobian": 1.1, "transfer": 0.6, "evolve": 0.4, "score": 0.1, "total": 2.4},
            "wire_sent_bytes": 9_000_000, "wire_received_bytes": 8_000_000,
            "links": {"client-1": {"wire_sent": 4_600_000, "wire_received": 4_000_000, "payload_sent": 4_500_000,
                                   "payload_received": 3_900_000},
                      "client-2": {"wire_sent": 4_400_000, "wire_received": 4_000_000, "payload_sent": 1,
                                   "payload_received": 1}}}


def test_a_record_becomes_accuracy_seconds_rss_and_wire_mb_per_link() -> None:
    point = round_point(_record(7, 0.61))
    assert (point.round, point.status, point.accuracy, point.rss_mb) == (7, "trained", 0.61, 101.5)
    assert point.seconds["total"] == 2.4 and point.seconds["jacobian"] == 1.1
    assert point.links_mb == {"client-1": 8.6, "client-2": 8.4}  # wire bytes sent + received, in MB
    assert point.json()["links_mb"] == point.links_mb


def test_a_skipped_round_has_no_accuracy_and_lines_that_are_not_records_are_left_out() -> None:
    skipped = {"schema": 1, "kind": "agent_round", "time": "t", "round": 3, "status": "skipped", "reason": "behind"}
    points = parse_records([json.dumps(_record(2)), "not json", json.dumps({"kind": "summary"}), json.dumps(skipped),
                            json.dumps({"round": "x"})])
    assert [(p.round, p.status, p.accuracy, p.links_mb) for p in points] == [
        (2, "trained", 0.5, {"client-1": 8.6, "client-2": 8.4}), (3, "skipped", None, {})]


def test_a_history_keeps_the_latest_rounds_and_a_round_seen_again_replaces_it() -> None:
    history = AgentHistory(keep=3)
    assert history.last_round is None and history.points() == []
    history.add(round_point(_record(r)) for r in range(5))
    assert [p.round for p in history.points()] == [2, 3, 4] and history.last_round == 4
    history.add([round_point(_record(4, accuracy=0.9))])
    assert [p.accuracy for p in history.points(after=3)] == [0.9]

"""The record envelope (docs/records.md) and reading agent and simulator records back into curves."""

import json
from datetime import UTC, datetime
from pathlib import Path

from edge_agent.round_records import (
    AGENT_ROUND,
    AGENT_SUMMARY,
    SCHEMA_VERSION,
    SIM_ROUND,
    find_curves,
    read_jsonl,
    record_kind,
    stamped,
)


def test_stamped_records_lead_with_schema_kind_and_utc_time() -> None:
    record = stamped(AGENT_ROUND, {"round": 3, "time": "ignored", "schema": 0})
    assert list(record)[:3] == ["schema", "record", "time"] and record["round"] == 3
    assert (record["schema"], record["record"]) == (SCHEMA_VERSION, AGENT_ROUND)
    when = datetime.fromisoformat(record["time"])
    assert when.utcoffset() is not None and when.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert abs((datetime.now(UTC) - when).total_seconds()) < 5
    assert record["time"].endswith("Z")


def test_lines_without_an_envelope_are_told_apart_by_their_fields() -> None:
    assert record_kind({"summary": True, "agent": "a"}) == AGENT_SUMMARY
    assert record_kind({"round": 0, "agg_accuracy": 0.5}) == SIM_ROUND
    assert record_kind({"round": 0, "agent": "client-0"}) == AGENT_ROUND
    assert record_kind({"whatever": 1}) is None


def test_a_line_cut_short_ends_the_records(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"round": 0}\n{"round": 1}\n{"rou')
    assert read_jsonl(path) == [{"round": 0}, {"round": 1}]
    assert read_jsonl(tmp_path / "missing.jsonl") == []


def test_fleet_curve_averages_agents_and_accumulates_payload_per_agent(tmp_path: Path) -> None:
    rows = {0: [(0.5, 1e6), (0.7, 3e6)], 1: [(0.3, 1e6), (0.5, 1e6)]}  # agent -> (accuracy, payload sent) per round
    for agent, values in rows.items():
        lines = [stamped(AGENT_ROUND, {"round": k, "agent": f"client-{agent}", "status": "trained",
                                       "test_accuracy": acc, "payload_sent_bytes": sent})
                 for k, (acc, sent) in enumerate(values)]
        lines.append({"summary": True, "agent": f"client-{agent}", "rounds": 2})  # an old file's summary line
        (tmp_path / f"agent-{agent}.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    [curve] = find_curves(tmp_path)
    assert curve.rounds == [0, 1]
    assert curve.accuracy == [0.4, 0.6]
    assert curve.megabytes == [1.0, 3.0]  # agent 0: 1, 4; agent 1: 1, 2 -> means 1, 3


def test_simulation_runs_give_one_curve_per_variant_and_nothing_for_empty_files(tmp_path: Path) -> None:
    for variant in ("spark", "dfedavg"):
        (tmp_path / variant).mkdir()
        line = {"round": 0, "agg_accuracy": 0.6, "cumulative_bytes_per_client": 5e6}  # schema 0: no envelope
        (tmp_path / variant / "rounds.jsonl").write_text(json.dumps(line) + "\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "rounds.jsonl").write_text("")
    curves = find_curves(tmp_path)
    assert [(c.label, c.rounds, c.megabytes) for c in curves] == [
        (f"dfedavg ({tmp_path.name})", [0], [5.0]), (f"spark ({tmp_path.name})", [0], [5.0])]
    assert find_curves(tmp_path / "empty") == []
    assert find_curves(tmp_path / "empty" / "rounds.jsonl") == []

"""FleetView: how sweeps of mDNS answers fold into online, stale and offline, and the stable JSON of `peers`."""

from datetime import UTC, datetime, timedelta

from edge_agent.discovery.peers import PeerRecord
from edge_agent.fleet.query import JSON_KEYS, FleetView, listing_json, listing_table

T0 = datetime(2026, 12, 3, 19, 0, tzinfo=UTC)


def _record(agent: str, run: str = "kitchen", round_: int = 0) -> PeerRecord:
    return PeerRecord(agent_id=agent, host="127.0.0.1", port=5000, protocol="v1", algorithm="spark",
                      setting="smoke", round=round_, samples=10, profile="generic", run=run,
                      fingerprint="abcdef123456", shard=int(agent[-1]))


def _states(view: FleetView) -> dict[str, tuple[str, datetime]]:
    return {a.record.agent_id: (a.state, a.since) for a in view.agents()}


def test_an_agent_that_stops_answering_turns_stale_and_one_that_says_goodbye_offline() -> None:
    view = FleetView()
    view.fold({"a-0@kitchen": _record("a-0"), "a-1@kitchen": _record("a-1"), "a-2@kitchen": _record("a-2")}, T0)
    t1 = T0 + timedelta(seconds=3)
    view.fold({"a-0@kitchen": _record("a-0", round_=1), "a-2@kitchen": None}, t1)
    assert _states(view) == {"a-0": ("online", T0), "a-1": ("stale", t1), "a-2": ("offline", t1)}
    assert view.agents()[0].record.round == 1 and view.agents()[0].last_seen == t1
    t2 = t1 + timedelta(seconds=3)
    view.fold({"a-0@kitchen": _record("a-0"), "a-1@kitchen": _record("a-1")}, t2)  # a-1 answers again
    assert _states(view) == {"a-0": ("online", T0), "a-1": ("online", t2), "a-2": ("offline", t1)}


def test_a_run_filter_keeps_other_runs_out_and_an_unknown_goodbye_is_ignored() -> None:
    view = FleetView(run="kitchen")
    agents = view.fold({"a-0@kitchen": _record("a-0"), "a-1@garage": _record("a-1", run="garage"),
                        "a-5@kitchen": None}, T0)
    assert [a.record.agent_id for a in agents] == ["a-0"]


def test_json_has_the_documented_keys_and_utc_times() -> None:
    view = FleetView()
    agents = view.fold({"a-0@kitchen": _record("a-0", round_=4)}, T0)
    listing = listing_json(agents, "_edge-agent._tcp.local.", None, T0)
    assert listing["time"] == "2026-12-03T19:00:00Z" and listing["run"] is None
    [agent] = listing["agents"]
    assert tuple(agent) == JSON_KEYS
    assert (agent["id"], agent["address"], agent["round"], agent["state"], agent["since"]) == (
        "a-0", "127.0.0.1:5000", 4, "online", "2026-12-03T19:00:00Z")


def test_the_table_has_a_header_and_one_line_per_agent_with_its_state_age() -> None:
    view = FleetView()
    agents = view.fold({"a-0@kitchen": _record("a-0"), "a-1@kitchen": _record("a-1")}, T0)
    lines = listing_table(agents, T0 + timedelta(seconds=5)).splitlines()
    assert lines[0].split() == ["ID", "RUN", "ADDRESS", "SHARD", "PROTOCOL", "ALGORITHM", "PROFILE", "ROUND",
                                "STATE", "SINCE"]
    assert [line.split()[:2] for line in lines[1:]] == [["a-0", "kitchen"], ["a-1", "kitchen"]]
    assert all(line.endswith("19:00:00Z (5 s ago)") for line in lines[1:])

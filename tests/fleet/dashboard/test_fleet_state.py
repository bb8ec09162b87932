"""How refreshes fold into what the dashboard shows: an agent that stops answering is gone with since when and
its last answer, and back when it answers again; its rounds are kept across, and a stream gets only new ones."""

from datetime import UTC, datetime, timedelta
from typing import Any

from edge_agent.fleet.dashboard.asking import Answer
from edge_agent.fleet.dashboard.fleet_state import FleetState, Source
from edge_agent.fleet.dashboard.history import RoundPoint
from edge_agent.fleet.dial import Target
from edge_agent.fleet.status import AGENT_KEYS

T0 = datetime(2026, 12, 3, 19, 0, tzinfo=UTC)
TARGETS = [Target("127.0.0.1", 5000 + i, f"client-{i}") for i in range(2)]


def _status(index: int, last_round: int) -> dict[str, Any]:
    values: dict[str, Any] = dict.fromkeys(AGENT_KEYS)
    values.update(address=TARGETS[index].address, id=f"client-{index}", run="kitchen", shard=index,
                  members=["client-0", "client-1"], neighbours=[], links=[], next_round=last_round + 1,
                  last_round=last_round, last_accuracy=0.5, total_sent_bytes=10, total_received_bytes=10, uptime_s=1.0)
    return values


def _points(*rounds: int) -> list[RoundPoint]:
    return [RoundPoint(r, "trained", "t", 0.5, {"total": 1.0}, 100.0, {}) for r in rounds]


def test_an_agent_that_stops_answering_is_gone_with_its_last_answer_until_it_answers_again() -> None:
    state = FleetState(Source("kitchen", "mdns", 2.0))
    state.fold([Answer(TARGETS[0], _status(0, 1), None, _points(0, 1)),
                Answer(TARGETS[1], _status(1, 1), None, _points(0, 1))], T0)
    assert [a["id"] for a in state.document(T0)["agents"]] == ["client-0", "client-1"]
    assert state.unheard_members() == set()
    t1, t2 = T0 + timedelta(seconds=2), T0 + timedelta(seconds=4)
    refused = Answer(TARGETS[1], None, "nothing answers on 127.0.0.1:5001 (Connection refused)", [])
    state.fold([Answer(TARGETS[0], _status(0, 2), None, _points(2)), refused], t1)
    state.fold([Answer(TARGETS[0], _status(0, 2), None, []), refused], t2)
    document = state.document(t2)
    assert [a["id"] for a in document["agents"]] == ["client-0"]
    assert document["gone"] == [{"id": "client-1", "address": "127.0.0.1:5001", "since": "2026-12-03T19:00:02Z",
                                 "reason": "nothing answers on 127.0.0.1:5001 (Connection refused)"}]
    assert document["last_answers"]["client-1"]["last_round"] == 1  # the page keeps showing its last state
    assert state.gone_count() == 1
    assert document["totals"]["gone"] == 1 and document["totals"]["wire_sent_bytes"] == 20
    assert [p["round"] for p in document["history"]["client-1"]] == [0, 1]
    state.fold([Answer(TARGETS[0], _status(0, 3), None, _points(3)),
                Answer(TARGETS[1], _status(1, 3), None, _points(2, 3))], t2 + timedelta(seconds=2))
    again = state.document(t2)
    assert again["gone"] == [] and [p["round"] for p in again["history"]["client-1"]] == [0, 1, 2, 3]


def test_a_stream_gets_only_the_rounds_after_those_it_holds_and_a_new_life_starts_over() -> None:
    state = FleetState(Source(None, "peers", 1.0))
    state.fold([Answer(TARGETS[0], _status(0, 4), None, _points(2, 3, 4))], T0)
    assert state.last_rounds() == {"client-0": 4}
    state.fold([Answer(TARGETS[0], _status(0, 5), None, _points(5))], T0)
    assert [p["round"] for p in state.document(T0, after={"client-0": 4})["history"]["client-0"]] == [5]
    state.fold([Answer(TARGETS[0], _status(0, 0), None, _points(0))], T0)  # restarted from scratch
    assert [p["round"] for p in state.document(T0)["history"]["client-0"]] == [0]


def test_members_the_fleet_names_but_the_dashboard_has_not_heard_are_unheard() -> None:
    state = FleetState(Source(None, "mdns", 1.0))
    assert state.unheard_members() == set()
    state.fold([Answer(TARGETS[0], _status(0, 1), None, [])], T0)
    assert state.unheard_members() == {"client-1"}


def test_a_target_never_heard_is_gone_under_its_address() -> None:
    state = FleetState(Source(None, "peers", 1.0))
    state.fold([Answer(Target("127.0.0.1", 9), None, "nothing answers on 127.0.0.1:9", [])], T0)
    document = state.document(T0)
    assert document["gone"] == [{"id": None, "address": "127.0.0.1:9", "since": "2026-12-03T19:00:00Z",
                                 "reason": "nothing answers on 127.0.0.1:9"}]
    assert document["graph"]["nodes"][0]["id"] == "127.0.0.1:9"

"""The link bench's summary maths on hand-made agent records: accuracy, MB per agent and seconds by round, the cost
to an accuracy level, byte totals, the phase stack, and what the report says of a fleet that ran out of budget."""

from typing import Any

import pytest

from edge_agent.linkbench.report import markdown
from edge_agent.linkbench.summary import PHASES, byte_totals, curve, fleet_summary, phase_seconds, round_parts, to_level
from edge_agent.linkbench.verdict import stop_sentence


def record(agent: int, k: int, accuracy: float, sent: int, time: str, total: float, **phases: float) -> dict[str, Any]:
    return {"schema": 1, "record": "agent-round", "time": time, "round": k, "agent": f"client-{agent}",
            "status": "trained", "test_accuracy": accuracy, "payload_sent_bytes": sent,
            "payload_received_bytes": sent + 1, "wire_sent_bytes": sent + 10, "wire_received_bytes": sent + 11,
            "seconds": {"total": total, **phases}}


# Two agents, three rounds. Round 0 began at 12:00:00 (agent 0's record at :10 less its 10 s round).
FLEET = [
    [record(0, 0, 0.40, 2_000_000, "2026-12-03T12:00:10.000Z", 10.0, average=1.0, jacobian=6.0, transfer=4.0,
            evolve=2.0, score=1.0),
     record(0, 1, 0.70, 2_000_000, "2026-12-03T12:00:20.000Z", 10.0),
     record(0, 2, 0.80, 2_000_000, "2026-12-03T12:00:30.000Z", 10.0)],
    [record(1, 0, 0.50, 4_000_000, "2026-12-03T12:00:11.000Z", 10.5),
     {"schema": 1, "record": "agent-round", "time": "2026-12-03T12:00:12.000Z", "round": 1, "agent": "client-1",
      "status": "skipped", "reason": "behind the fleet"},
     record(1, 2, 0.90, 4_000_000, "2026-12-03T12:00:32.500Z", 10.0)],
]


def test_curve_is_mean_accuracy_cumulative_mb_per_agent_and_seconds_since_the_first_round_began() -> None:
    fleet = curve(FLEET)
    assert fleet.rounds == [0, 1, 2]
    assert fleet.accuracy == pytest.approx([0.45, 0.70, 0.85])  # round 1: only agent 0 trained it
    assert fleet.megabytes == pytest.approx([3.0, 4.0, 7.0])  # agent 0: 2, 4, 6 MB; agent 1: 4, -, 8 MB
    assert fleet.seconds == pytest.approx([11.0, 20.0, 32.5])  # the last agent's record of the round


def test_to_level_gives_rounds_mb_and_seconds_when_first_reached_and_none_when_never() -> None:
    fleet = curve(FLEET)
    assert to_level(fleet, 0.7) == pytest.approx({"round": 1, "rounds": 2, "megabytes": 4.0, "seconds": 20.0})
    assert to_level(fleet, 0.45) == pytest.approx({"round": 0, "rounds": 1, "megabytes": 3.0, "seconds": 11.0})
    assert to_level(fleet, 0.86) is None
    assert to_level(curve([[], []]), 0.1) is None


def test_byte_totals_add_every_trained_round_of_every_agent() -> None:
    assert byte_totals(FLEET) == {"payload_sent": 14_000_000, "payload_received": 14_000_005,
                                  "wire_sent": 14_000_050, "wire_received": 14_000_055}


def test_phase_stack_counts_the_wait_on_neighbours_once_and_adds_up_to_the_total() -> None:
    parts = round_parts({"average": 1.0, "jacobian": 6.0, "transfer": 4.0, "evolve": 2.0, "score": 1.0,
                         "total": 10.0})
    assert parts == pytest.approx({"train": 0.0, "average": 1.0, "transfer": 4.0, "jacobian+score": 3.0,
                                   "evolve": 2.0, "other": 0.0})
    assert set(parts) == set(PHASES)
    dfedavg = round_parts({"train": 0.5, "average": 1.0, "total": 2.0})
    assert dfedavg["other"] == pytest.approx(0.5) and sum(dfedavg.values()) == pytest.approx(2.0)
    means = phase_seconds(FLEET)  # 5 trained records
    assert means["average"] == pytest.approx(0.2) and sum(means.values()) == pytest.approx(50.5 / 5)


def test_a_fleet_that_finished_no_round_within_its_budget_says_so() -> None:
    numbers = fleet_summary([[], [], []], [0.5])
    assert numbers["rounds_done"] == 0 and numbers["final_accuracy"] is None and numbers["to_level"] == {"0.5": None}
    fleet = {"fleet": "ntk-dfl-1mbit", "algorithm": "ntk-dfl", "rate": "1mbit", "latency": "20ms", "agents": 3,
             "rounds_planned": 30, "budget_s": 1800.0, "stopped_by": "budget", "failed_agents": [], **numbers}
    assert stop_sentence(fleet) == "could not finish a round within the 30 min budget"
    text = markdown({"command": {"argv": "edge-agent bench link", "agents": 3, "setting": "edge",
                                 "shaping": "the agents' own throttle", "budget_s": 1800.0},
                     "levels": [0.5], "fleets": [fleet]})
    assert "| ntk-dfl | 1mbit 20ms | 0 | - | 0.00 |" in text and "could not finish a round" in text
    later = {**fleet, **fleet_summary(FLEET, [0.5])}
    assert stop_sentence(later) == "ran out of its 30 min budget after 3 of 30 rounds"


@pytest.mark.parametrize(("exits", "said"), [
    ([-9, -9], "killed by SIGKILL, as the kernel's out-of-memory killer does (dmesg says)"),
    ([1], "exit status 1"),
    ([-15, 2], "killed by SIGTERM, exit status 2"),
])
def test_a_fleet_whose_agents_failed_says_how_they_ended(exits: list[int], said: str) -> None:
    fleet = {"rounds_done": 0, "rounds_planned": 30, "budget_s": 480.0, "stopped_by": "failed",
             "failed_agents": list(range(len(exits))), "failed_exits": exits}
    assert stop_sentence(fleet) == f"agents {list(range(len(exits)))} failed after 0 rounds ({said}): see their logs"
    told = {**fleet, "failure": "agent 0: Error: the torch backend needs torch"}
    assert stop_sentence(told) == (f"agents {list(range(len(exits)))} failed after 0 rounds ({said}): agent 0: Error: "
                                   "the torch backend needs torch")

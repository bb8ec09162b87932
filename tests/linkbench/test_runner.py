"""The fleet runner's stop rules on stand-in agents (processes that write one round record and then hang): a fleet
out of budget is stopped with SIGTERM and keeps its records; one that reaches --until stops; a failed one says so."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.agent.launcher import LocalRun
from edge_agent.linkbench.runner import FleetPlan, Link, Progress, run_fleet

# Writes agent-i.jsonl's round 0 (accuracy from argv), then sleeps until SIGTERM, or says why on its log and exits
# with argv's status.
STAND_IN = """
import json, signal, sys, time
path, accuracy, status = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
record = {"schema": 1, "record": "agent-round", "time": "2026-12-03T12:00:10.000Z", "round": 0, "agent": "a",
          "status": "trained", "test_accuracy": accuracy, "payload_sent_bytes": 5, "payload_received_bytes": 5,
          "wire_sent_bytes": 6, "wire_received_bytes": 6, "seconds": {"total": 1.0}}
open(path, "w").write(json.dumps(record) + "\\n")
signal.signal(signal.SIGTERM, lambda *_: open(path + ".stopped", "w").close() or sys.exit(0))
if status:
    open(path.replace(".jsonl", ".log"), "w").write("starting\\nError: the torch backend needs torch\\nbye\\n")
    sys.exit(status)
time.sleep(60)
"""


def stand_ins(accuracy: float, status: int = 0):  # type: ignore[no-untyped-def]
    def launch(plan: FleetPlan, out: Path, certs: Path) -> LocalRun:
        return LocalRun(out, [subprocess.Popen([sys.executable, "-c", STAND_IN, str(out / f"agent-{i}.jsonl"),
                                                str(accuracy), str(status if i == 1 else 0)])
                              for i in range(plan.agents)])
    return launch


def plan(budget_s: float, until: float | None = None) -> FleetPlan:
    return FleetPlan("ntk-dfl", Link("1mbit", "20ms"), agents=3, setting="smoke", rounds=5, budget_s=budget_s,
                     until=until)


def test_a_fleet_out_of_budget_gets_sigterm_and_keeps_its_records(tmp_path: Path) -> None:
    seen: list[Progress] = []
    result = run_fleet(plan(budget_s=3.0), tmp_path, seen.append, launch=stand_ins(0.3), poll_s=0.1)
    assert result.stopped_by == "budget" and result.failed_agents == ()
    assert 3.0 <= result.elapsed_s < 15
    assert all((tmp_path / f"agent-{i}.jsonl.stopped").exists() for i in range(3))  # SIGTERM, not a kill
    assert [len(agent) for agent in result.records()] == [1, 1, 1]
    assert seen[-1].line() == ("ntk-dfl 1mbit 20ms: 1 of 5 rounds done (last: round 0), accuracy 0.3000, "
                               "0.00 MB per agent, 1.0 s since its first round")
    assert seen[0].line().startswith("ntk-dfl 1mbit 20ms: no round recorded yet, ")
    assert (tmp_path / "certs" / "ca.crt").exists()


def test_a_fleet_that_reaches_the_target_accuracy_stops(tmp_path: Path) -> None:
    result = run_fleet(plan(budget_s=30.0, until=0.6), tmp_path, lambda _: None, launch=stand_ins(0.65), poll_s=0.1)
    assert result.stopped_by == "target" and result.elapsed_s < 15


def test_a_fleet_with_a_failed_agent_stops_and_names_it(tmp_path: Path) -> None:
    result = run_fleet(plan(budget_s=30.0), tmp_path, lambda _: None, launch=stand_ins(0.3, status=3), poll_s=0.1)
    assert result.stopped_by == "failed" and result.failed_agents == (1,) and result.failed_exits == (3,)
    assert result.failure == "agent 1: Error: the torch backend needs torch"  # its first error line
    assert json.loads((tmp_path / "agent-1.jsonl").read_text())["round"] == 0


def test_a_spark_fleet_asked_for_a_preset_runs_it_and_names_it_other_fleets_run_as_they_are(tmp_path: Path) -> None:
    link = Link("1mbit", "20ms")
    lean = FleetPlan("spark", link, agents=3, setting="smoke", rounds=5, budget_s=60, preset="lean")
    assert (lean.name, lean.label) == ("spark-lean-1mbit-20ms", "spark-lean 1mbit 20ms")
    flags = lean.agent_flags(tmp_path)
    assert flags[flags.index("--preset") + 1] == "lean" and flags[flags.index("--algorithm") + 1] == "spark"
    baseline = FleetPlan("dfedavg", link, agents=3, setting="smoke", rounds=5, budget_s=60, preset="lean")
    assert baseline.name == "dfedavg-1mbit-20ms" and "--preset" not in baseline.agent_flags(tmp_path)
    published = FleetPlan("spark", link, agents=3, setting="smoke", rounds=5, budget_s=60)
    assert published.name == "spark-1mbit-20ms"


@pytest.mark.parametrize(("option", "value"), [("data", "digits"), ("model", "cnn")])
def test_a_fleet_on_other_data_or_another_model_passes_it_to_every_agent(tmp_path: Path, option: str,
                                                                         value: str) -> None:
    link = Link("1mbit", "20ms")
    other = FleetPlan("spark", link, agents=3, setting="smoke", rounds=5, budget_s=60, **{option: value})
    flags = other.agent_flags(tmp_path)
    assert flags[flags.index(f"--{option}") + 1] == value
    assert f"--{option}" not in FleetPlan("spark", link, agents=3, setting="smoke", rounds=5,
                                          budget_s=60).agent_flags(tmp_path)

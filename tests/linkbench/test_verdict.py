"""The report's verdict: per link, who reached each level first and by how much, and where each method's rounds go."""

from __future__ import annotations

from typing import Any

from edge_agent.linkbench.report import fleet_line, markdown
from edge_agent.linkbench.verdict import level_sentence, stop_sentence, verdict, why_sentence


def fleet(algorithm: str, rate: str, to_level: dict[str, dict[str, float] | None], **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "fleet": f"{algorithm}-{rate}", "algorithm": algorithm, "rate": rate, "latency": "20ms", "agents": 4,
        "rounds_planned": 10, "budget_s": 600.0, "stopped_by": "rounds", "failed_agents": [], "failed_exits": [],
        "failure": "", "rounds_done": 10, "final_accuracy": 0.61, "best_accuracy": 0.62, "megabytes_per_agent": 50.0,
        "seconds": 40.0, "seconds_per_round": {"train": 0.0, "average": 0.5, "transfer": 3.0, "jacobian+score": 0.2,
                                               "evolve": 0.3, "other": 0.0},
        "to_level": to_level}
    return {**base, **extra}


def reached(round_index: int, megabytes: float, seconds: float) -> dict[str, float]:
    return {"round": round_index, "rounds": round_index + 1, "megabytes": megabytes, "seconds": seconds}


SPARK = fleet("spark", "1mbit", {"0.5": reached(3, 20.0, 16.0), "0.6": reached(8, 40.0, 36.0), "0.7": None})
DFEDAVG = fleet("dfedavg", "1mbit", {"0.5": reached(5, 6.0, 9.0), "0.6": None, "0.7": None},
                seconds_per_round={"train": 0.3, "average": 1.2, "transfer": 0.0, "jacobian+score": 0.0,
                                   "evolve": 0.0, "other": 0.0}, megabytes_per_agent=9.0)
FAILED = fleet("ntk-dfl", "1mbit", {"0.5": None, "0.6": None, "0.7": None}, stopped_by="failed",
               failed_agents=[1], failed_exits=[-9], failure="agent 1: Error: out of memory", rounds_done=0,
               final_accuracy=None, megabytes_per_agent=0.0, seconds=0.0, seconds_per_round={})


def test_the_first_to_a_level_is_named_with_its_lead_in_seconds_and_megabytes() -> None:
    assert level_sentence("0.5", [SPARK, DFEDAVG, FAILED]) == (
        "0.5: dfedavg first, at round 5 after 9.0 s and 6.00 MB per agent, 7.0 s sooner than spark (round 3, "
        "16.0 s, 20.00 MB) with 14.00 MB less per agent; ntk-dfl never reached it.")
    assert level_sentence("0.6", [SPARK, DFEDAVG]) == (
        "0.6: spark first, at round 8 after 36.0 s and 40.00 MB per agent; dfedavg never reached it.")


def test_the_first_in_seconds_may_send_more_and_the_sentence_says_so() -> None:
    cheap = fleet("dfedavg", "1mbit", {"0.5": reached(9, 4.0, 30.0)})
    assert level_sentence("0.5", [SPARK, cheap]).endswith("14.0 s sooner than dfedavg (round 9, 30.0 s, 4.00 MB) "
                                                          "though dfedavg sent 16.00 MB less per agent.")


def test_why_names_the_largest_part_of_a_round_or_why_there_was_none() -> None:
    assert why_sentence(SPARK) == ("spark: an agent's round takes 4.00 s on average, 3.00 s of it waiting on its "
                                   "neighbours' Jacobian replies and scores; it sends 5.00 MB per agent per round.")
    assert why_sentence(DFEDAVG).startswith("dfedavg: an agent's round takes 1.50 s on average, 1.20 s of it "
                                            "exchanging and averaging weights")
    assert why_sentence(FAILED) == ("ntk-dfl recorded no round: agents [1] failed after 0 rounds (killed by SIGKILL, "
                                    "as the kernel's out-of-memory killer does (dmesg says)): agent 1: Error: out of "
                                    "memory.")


def test_the_verdict_groups_by_link_and_folds_levels_nobody_reached() -> None:
    other = fleet("spark", "10mbit", {"0.5": reached(3, 20.0, 5.0), "0.6": None, "0.7": None})
    lines = verdict({"levels": [0.5, 0.6, 0.7], "fleets": [SPARK, DFEDAVG, other]})
    assert lines[:3] == ["## Verdict", "", "**1mbit 20ms**"]
    assert "- 0.7: no method reached it." in lines
    assert "- 0.6, 0.7: no method reached them." in lines  # the 10 Mbit/s link
    assert lines.index("**10mbit 20ms**") > lines.index("- 0.7: no method reached it.")


def test_the_console_line_and_the_report_row_carry_the_same_figures() -> None:
    data = {"command": {"argv": "edge-agent bench link", "agents": 4, "setting": "smoke", "shaping": "tc",
                        "budget_s": 600.0}, "levels": [0.5], "fleets": [SPARK, FAILED]}
    report = markdown(data)
    assert "| spark | 1mbit 20ms | 10 | 0.6100 | 50.00 | 40.0 | 4.0 | ran all 10 rounds |" in report
    assert fleet_line(SPARK) == ("spark 1mbit 20ms: 10 rounds done, accuracy 0.6100, 50.00 MB per agent, 40.0 s; "
                                 "ran all 10 rounds")
    assert stop_sentence(FAILED) in fleet_line(FAILED) and stop_sentence(FAILED) in report

"""The link bench's answer in words, per link: which method reached each level first, by how much, and why.

Pure functions over summary.json's fleets (linkbench.report.summary), so every figure in a sentence is one the
report's tables and the console give too: seconds from the fleet's first round, MB sent per agent, 0-based rounds.
"why" names, for each fleet of the link, the part of its round (linkbench.summary.PHASES) that takes the longest.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from typing import Any

Fleet = Mapping[str, Any]  # one fleet of summary.json

# What each part of a round is, as a sentence says it: "an agent's round takes Y s, X s of it <on what>".
PHASE_WORDS = {
    "train": "in local SGD",
    "average": "exchanging and averaging weights",
    "transfer": "waiting on its neighbours' Jacobian replies and scores",
    "jacobian+score": "computing Jacobians and scores",
    "evolve": "in the function-space evolution",
    "other": "outside the measured phases",
}


def link_label(fleet: Fleet) -> str:
    return fleet["rate"] if fleet["latency"] in ("0", "") else f"{fleet['rate']} {fleet['latency']}"


def by_link(fleets: Sequence[Fleet]) -> dict[str, list[Fleet]]:
    """The fleets grouped by link, in the order the links first appear."""
    groups: dict[str, list[Fleet]] = {}
    for fleet in fleets:
        groups.setdefault(link_label(fleet), []).append(fleet)
    return groups


def level_sentence(level: str, fleets: Sequence[Fleet]) -> str:
    """Who reached `level` first (in seconds since its first round), and by how many seconds and MB per agent."""
    reached = sorted(((fleet, fleet["to_level"][level]) for fleet in fleets if fleet["to_level"].get(level)),
                     key=lambda item: item[1]["seconds"])
    if not reached:
        return f"{level}: no method reached it."
    first, cost = reached[0]
    said = (f"{level}: {first['algorithm']} first, at round {cost['round']} after {cost['seconds']:.1f} s and "
            f"{cost['megabytes']:.2f} MB per agent")
    if len(reached) == 1:
        others = ", ".join(fleet["algorithm"] for fleet in fleets if fleet is not first)
        return said + (f"; {others} never reached it." if others else ".")
    runner, later = reached[1]
    said += (f", {later['seconds'] - cost['seconds']:.1f} s sooner than {runner['algorithm']} (round {later['round']}, "
             f"{later['seconds']:.1f} s, {later['megabytes']:.2f} MB)")
    saved = later["megabytes"] - cost["megabytes"]
    said += (f" with {saved:.2f} MB less per agent" if saved >= 0 else
             f" though {runner['algorithm']} sent {-saved:.2f} MB less per agent")
    missing = [fleet["algorithm"] for fleet in fleets if not fleet["to_level"].get(level)]
    return said + (f"; {', '.join(missing)} never reached it." if missing else ".")


def why_sentence(fleet: Fleet) -> str:
    """Where the fleet's rounds went: its largest phase, its seconds and MB per round; or why it has no rounds."""
    rounds = fleet["rounds_done"]
    if not rounds or not fleet["seconds_per_round"]:
        return f"{fleet['algorithm']} recorded no round: {stop_sentence(fleet)}."
    phases = fleet["seconds_per_round"]
    total = sum(phases.values())
    phase = max(phases, key=lambda name: phases[name])
    per_round_mb = fleet["megabytes_per_agent"] / rounds
    return (f"{fleet['algorithm']}: an agent's round takes {total:.2f} s on average, {phases[phase]:.2f} s of it "
            f"{PHASE_WORDS[phase]}; it sends {per_round_mb:.2f} MB per agent per round.")


def verdict(data: Mapping[str, Any]) -> list[str]:
    """The report's opening section: per link, one line per accuracy level and one per fleet on why."""
    lines = ["## Verdict", ""]
    levels = [f"{level:g}" for level in data["levels"]]
    for link, fleets in by_link(data["fleets"]).items():
        lines.append(f"**{link}**")
        lines.append("")
        unreached = []
        for level in levels:
            if any(fleet["to_level"].get(level) for fleet in fleets):
                lines.append(f"- {level_sentence(level, fleets)}")
            else:
                unreached.append(level)
        if unreached:
            lines.append(f"- {', '.join(unreached)}: no method reached {'it' if len(unreached) == 1 else 'them'}.")
        lines += [f"- Why: {why_sentence(fleet)}" for fleet in fleets]
        lines.append("")
    return lines


def stop_sentence(fleet: Fleet) -> str:
    """Why the fleet stopped, as the report and the console say it: a sentence, with the agents' own error line
    when they failed."""
    rounds, planned, budget = fleet["rounds_done"], fleet["rounds_planned"], fleet["budget_s"]
    if fleet["stopped_by"] == "budget" and rounds == 0:
        return f"could not finish a round within the {duration(budget)} budget"
    failure = fleet.get("failure") or "see their logs"
    return {
        "rounds": f"ran all {planned} rounds",
        "target": f"reached the target after {rounds} rounds",
        "budget": f"ran out of its {duration(budget)} budget after {rounds} of {planned} rounds",
        "failed": f"agents {fleet['failed_agents']} failed after {rounds} rounds "
                  f"({_exits(fleet.get('failed_exits', []))}): {failure}",
    }[fleet["stopped_by"]]


def _exits(codes: list[int]) -> str:
    """How the failed agents ended: exit statuses, or the signals that killed them (SIGKILL named for what it
    usually is when nobody sent it: the kernel's out-of-memory killer, whose victim writes no last log line)."""
    if not codes:
        return "exit status unknown"
    said = []
    for code in dict.fromkeys(codes):
        if code == -signal.SIGKILL:
            said.append("killed by SIGKILL, as the kernel's out-of-memory killer does (dmesg says)")
        elif code < 0:
            said.append(f"killed by {signal.Signals(-code).name}")
        else:
            said.append(f"exit status {code}")
    return ", ".join(said)


def duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"

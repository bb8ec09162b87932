"""A simulated round in the link model's terms: its messages by link and phase, and the compute it measured."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge_agent.round_records import read_jsonl
from edge_agent.sim.link_model import Compute, Exchange, Pair, RoundWork, Step
from edge_agent.sim.network import TrafficLedger
from edge_agent.sim.rounds import ComputeLog

# A round's phases after the weights exchange, in the order an agent runs them: request/answer exchanges named by
# their message kinds, and the requester's own compute between them.
EXCHANGES = {"jacobian": ("JacobianRequest", "JacobianReply"), "pullback": ("PullBackRequest", "PullBackReply"),
             "score": ("CandidateRequest", "CandidateScores")}
ORDER = ("jacobian", "evolve", "pullback", "score")


def round_work(clients: Sequence[str], ledger: TrafficLedger, compute: ComputeLog, trained: bool) -> RoundWork:
    """What the round moved (from `ledger`) and computed (from `compute`); `trained`: it began with local SGD."""
    by_kind: dict[str, dict[Pair, int]] = {}
    for (sender, receiver, kind), size in ledger.bytes_by_link.items():
        by_kind.setdefault(kind, {})[(sender, receiver)] = size
    steps: list[Step] = []
    for phase in ORDER:
        if phase not in EXCHANGES:
            seconds = {requester: s for (requester, name), s in compute.own.items() if name == phase}
            if seconds:
                steps.append(Compute(phase, seconds))
            continue
        request, reply = EXCHANGES[phase]
        service = {(requester, member): s for (requester, member, kind), s in compute.served.items() if kind == request}
        if service:
            replies = {(requester, member): size for (member, requester), size in by_kind.get(reply, {}).items()}
            steps.append(Exchange(phase, by_kind.get(request, {}), replies, service))
    return RoundWork(tuple(clients), by_kind.get("WeightsMessage", {}), compute.train if trained else None, steps)


def work_to_json(round_index: int, work: RoundWork) -> dict[str, Any]:
    """One line of work.jsonl: the round's messages and compute, enough to model it on any link and board later."""
    steps: list[dict[str, Any]] = []
    for step in work.steps:
        if isinstance(step, Compute):
            steps.append({"phase": step.phase, "compute": dict(step.seconds)})
        else:
            steps.append({"phase": step.phase, "exchange": [
                [requester, member, step.request_bytes.get((requester, member), 0),
                 step.reply_bytes.get((requester, member), 0), seconds]
                for (requester, member), seconds in sorted(step.service_seconds.items())]})
    return {"round": round_index, "clients": list(work.clients),
            "weights": [[sender, receiver, size] for (sender, receiver), size in sorted(work.weights_bytes.items())],
            "train": None if work.train_seconds is None else dict(work.train_seconds), "steps": steps}


def work_from_json(line: dict[str, Any]) -> RoundWork:
    """The RoundWork a work.jsonl line holds (`work_to_json`'s inverse)."""
    steps: list[Step] = []
    for step in line["steps"]:
        if "compute" in step:
            steps.append(Compute(step["phase"], step["compute"]))
            continue
        links = step["exchange"]
        steps.append(Exchange(step["phase"], {(r, m): req for r, m, req, _, _ in links},
                              {(r, m): rep for r, m, _, rep, _ in links}, {(r, m): s for r, m, _, _, s in links}))
    return RoundWork(tuple(line["clients"]), {(s, r): size for s, r, size in line["weights"]}, line["train"], steps)


def read_work(path: Path) -> dict[int, RoundWork]:
    """Each round's work in a work.jsonl (the last line of a round wins: a resumed run may have repeated it)."""
    return {int(line["round"]): work_from_json(line) for line in read_jsonl(path)}

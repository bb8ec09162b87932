"""A simulated round in the link model's terms: its messages by link and phase, and the compute it measured."""

from __future__ import annotations

from collections.abc import Sequence

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

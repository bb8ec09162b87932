"""Modelled wall-clock seconds of a simulated round on a link: what the round would take between boards.

A pure function of the round's own messages, the compute the simulator measured, and a link. Messages cross links
of one rate and one-way latency, every link between two clients in parallel and each direction on its own (as
`bench link` shapes them); a round's phases follow each other as an agent runs them (local training, the weights
exchange, then each request/answer exchange with the requester's own compute between them); every compute step takes
the seconds it was measured to take here on one core, times the board's `compute_scale`; and a client computes one
thing at a time: the requests it is sent are answered first come first served, as the agent's handler does, and its
own steps (local training, the evolution) wait for the processor too, as they do in an agent process.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

Pair = tuple[str, str]  # (requester, member) for an exchange; (sender, receiver) for the weights


@dataclass(frozen=True)
class ModelledLink:
    """A link between two clients (bits per second each way, one-way latency) and the board's speed."""

    rate_bits_per_s: float
    latency_s: float = 0.0
    compute_scale: float = 1.0  # board seconds per second of compute measured on this machine (one core)

    def __post_init__(self) -> None:
        if not self.rate_bits_per_s > 0:
            raise ValueError(f"link rate must be positive, got {self.rate_bits_per_s} bit/s")
        if self.latency_s < 0:
            raise ValueError(f"link latency must be >= 0, got {self.latency_s} s")
        if not self.compute_scale > 0:
            raise ValueError(f"compute scale must be positive, got {self.compute_scale}")

    def transfer(self, payload_bytes: int) -> float:
        """Seconds from the first byte leaving to the last arriving: one latency plus the bytes at the rate."""
        return self.latency_s + 8.0 * payload_bytes / self.rate_bits_per_s


@dataclass(frozen=True)
class Compute:
    """A requester's own compute step (the NTK evolution): seconds per requester."""

    phase: str
    seconds: Mapping[str, float]


@dataclass(frozen=True)
class Exchange:
    """Requests from each requester to the members of its neighbourhood, each answered after the member's compute.

    A member that is the requester itself answers without crossing a link."""

    phase: str
    request_bytes: Mapping[Pair, int]
    reply_bytes: Mapping[Pair, int]
    service_seconds: Mapping[Pair, float]


Step = Compute | Exchange


@dataclass(frozen=True)
class RoundWork:
    """One round as the simulator ran it: local training (DFedAvg), the weights exchange, then the NTK steps."""

    clients: tuple[str, ...]
    weights_bytes: Mapping[Pair, int]  # (sender, receiver) -> payload bytes of the weights sent for averaging
    train_seconds: Mapping[str, float] | None = None  # local SGD before the weights go out; None: no training
    steps: Sequence[Step] = ()


@dataclass(frozen=True)
class ModelledRound:
    """The round's modelled seconds: until its last client is done, and each phase's mean over the clients."""

    seconds: float
    phase_seconds: dict[str, float]


def model_round(work: RoundWork, link: ModelledLink) -> ModelledRound:
    """Modelled seconds of `work` on `link` (see the module docstring for what is and is not modelled)."""
    clients = work.clients
    scale = link.compute_scale
    ready = {c: scale * (work.train_seconds or {}).get(c, 0.0) for c in clients}
    busy = dict(ready)  # when each client's processor is next free
    now = dict(ready)
    for (sender, receiver), size in work.weights_bytes.items():  # averaging waits for every neighbour's weights
        now[receiver] = max(now[receiver], ready[sender] + link.transfer(size))
    phases: dict[str, float] = {}
    if work.train_seconds is not None:
        phases["train"] = _mean(ready.values())
    phases["average"] = _mean(now[c] - ready[c] for c in clients)
    for step in work.steps:
        before = dict(now)
        if isinstance(step, Compute):
            for c in clients:
                busy[c] = now[c] = max(now[c], busy[c]) + scale * step.seconds.get(c, 0.0)
        else:
            now = _exchange(step, now, busy, link)
        phases[step.phase] = phases.get(step.phase, 0.0) + _mean(now[c] - before[c] for c in clients)
    return ModelledRound(max(now.values(), default=0.0), phases)


def _exchange(step: Exchange, start: Mapping[str, float], busy: dict[str, float], link: ModelledLink
              ) -> dict[str, float]:
    """When each requester holds all its answers: requests arrive, each member serves them in arrival order once its
    processor is free (`busy`, updated)."""
    arrivals: dict[str, list[tuple[float, str]]] = {}
    for requester, member in step.service_seconds:
        sent = start[requester]
        arrives = sent if member == requester else sent + link.transfer(step.request_bytes.get((requester, member), 0))
        arrivals.setdefault(member, []).append((arrives, requester))
    done = dict(start)
    for member, queue in arrivals.items():
        free = busy[member]
        for arrives, requester in sorted(queue):
            free = max(free, arrives) + link.compute_scale * step.service_seconds[(requester, member)]
            back = free if member == requester else free + link.transfer(step.reply_bytes.get((requester, member), 0))
            done[requester] = max(done[requester], back)
        busy[member] = free
    return done


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items) if items else 0.0

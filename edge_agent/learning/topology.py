"""Per-round communication graphs drawn from (seed, round, member ids), so every process draws the same one."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

TopologyKind = Literal["random-regular", "ring", "static"]
TOPOLOGY_KINDS: tuple[TopologyKind, ...] = ("random-regular", "ring", "static")

Graph = dict[str, tuple[str, ...]]
Edge = tuple[int, int]


@dataclass(frozen=True)
class TopologyConfig:
    """Which graph family, its degree kappa, and the seed every member shares."""

    kind: TopologyKind = "random-regular"
    degree: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in TOPOLOGY_KINDS:
            raise ValueError(f"topology must be one of {', '.join(TOPOLOGY_KINDS)}, got {self.kind!r}")
        if self.degree < 1:
            raise ValueError(f"topology degree must be at least 1, got {self.degree}")
        if self.seed < 0:
            raise ValueError(f"topology seed must be non-negative, got {self.seed}")
        if self.kind == "ring" and self.degree % 2:
            raise ValueError(f"a ring links degree/2 members on each side, so degree must be even, got {self.degree}")

    def validate(self, members: int) -> None:
        """ValueError with a one-line reason if no graph of this kind exists on `members` members."""
        if self.degree >= members:
            raise ValueError(f"degree {self.degree} needs more than {self.degree} members, have {members}")
        if self.kind != "ring" and (members * self.degree) % 2:
            raise ValueError(
                f"no {self.degree}-regular graph on {members} members exists (members x degree must be even)"
            )


def neighbours(config: TopologyConfig, members: Sequence[str], round_index: int) -> Graph:
    """Each member's neighbours in round `round_index` (tuples sorted), a pure function of the sorted ids."""
    ids = _sorted_unique(members)
    config.validate(len(ids))
    if round_index < 0:
        raise ValueError(f"round index must be non-negative, got {round_index}")
    if config.kind == "ring":
        edges = ring_edges(len(ids), config.degree)
    else:
        graph_round = 0 if config.kind == "static" else round_index
        edges = random_regular_edges(len(ids), config.degree, np.random.default_rng([config.seed, graph_round]))
    return _graph_from_edges(ids, edges)


def client_ids(count: int) -> list[str]:
    """The ids of clients 0..count-1, zero-padded so sorting keeps their order; the simulator names its clients so
    and an agent for shard i takes the i-th, so both draw the same graphs."""
    width = len(str(count - 1))
    return [f"client-{i:0{width}d}" for i in range(count)]


def neighbourhood(graph: Mapping[str, Sequence[str]], member: str) -> tuple[str, ...]:
    """S_i: the member's neighbours plus itself, sorted."""
    return tuple(sorted((*graph[member], member)))


def ring_edges(n: int, degree: int) -> set[Edge]:
    """Node i linked to i +- 1 .. i +- degree/2 (mod n)."""
    return {_ordered(i, (i + k) % n) for i in range(n) for k in range(1, degree // 2 + 1)}


def random_regular_edges(n: int, degree: int, rng: np.random.Generator) -> set[Edge]:
    """A random simple `degree`-regular graph on n nodes by stub pairing with restarts (Steger-Wormald)."""
    while True:
        edges = _try_stub_pairing(n, degree, rng)
        if edges is not None:
            return edges


def _try_stub_pairing(n: int, degree: int, rng: np.random.Generator) -> set[Edge] | None:
    """Pair shuffled stubs, keep the legal pairs, re-pair the rest; None when the rest cannot be paired."""
    edges: set[Edge] = set()
    stubs = np.repeat(np.arange(n), degree)
    while len(stubs):
        rng.shuffle(stubs)
        leftover: Counter[int] = Counter()
        for a, b in stubs.reshape(-1, 2).tolist():
            edge = _ordered(a, b)
            if a != b and edge not in edges:
                edges.add(edge)
            else:
                leftover[a] += 1
                leftover[b] += 1
        if leftover and not _pairable(edges, leftover):
            return None
        stubs = np.repeat(np.array(sorted(leftover), dtype=np.int64), [leftover[v] for v in sorted(leftover)])
    return edges


def _pairable(edges: set[Edge], leftover: Counter[int]) -> bool:
    """Does some pair of distinct leftover nodes still lack an edge?"""
    nodes = sorted(leftover)
    return any(_ordered(a, b) not in edges for i, a in enumerate(nodes) for b in nodes[i + 1 :])


def _ordered(a: int, b: int) -> Edge:
    return (a, b) if a < b else (b, a)


def _graph_from_edges(ids: list[str], edges: set[Edge]) -> Graph:
    adjacent: list[list[str]] = [[] for _ in ids]
    for a, b in edges:
        adjacent[a].append(ids[b])
        adjacent[b].append(ids[a])
    return {member: tuple(sorted(adjacent[i])) for i, member in enumerate(ids)}


def _sorted_unique(members: Sequence[str]) -> list[str]:
    ids = sorted(members)
    duplicates = sorted({m for m, count in Counter(ids).items() if count > 1})
    if duplicates:
        raise ValueError(f"member ids must be unique, repeated: {', '.join(duplicates)}")
    return ids

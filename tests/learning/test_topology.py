"""Tests for edge_agent.learning.topology: regular, symmetric, seeded per-round graphs over member ids."""

from __future__ import annotations

import random

import pytest

from edge_agent.learning.topology import Graph, TopologyConfig, neighbourhood, neighbours


def member_ids(count: int) -> list[str]:
    return [f"agent-{i:03d}" for i in range(count)]


def assert_simple_regular(graph: Graph, degree: int) -> None:
    for member, adjacent in graph.items():
        assert len(adjacent) == degree
        assert len(set(adjacent)) == degree
        assert member not in adjacent
        assert list(adjacent) == sorted(adjacent)
        assert all(member in graph[other] for other in adjacent)


@pytest.mark.parametrize(("members", "degree"), [(300, 5), (20, 3), (6, 5), (10, 4), (4, 1)])
def test_random_regular_graph_is_simple_symmetric_and_regular(members: int, degree: int) -> None:
    config = TopologyConfig("random-regular", degree=degree, seed=1)
    for round_index in range(5):
        graph = neighbours(config, member_ids(members), round_index)
        assert sorted(graph) == member_ids(members)
        assert_simple_regular(graph, degree)


def test_same_seed_and_round_give_the_same_graph_whatever_the_member_order() -> None:
    ids = member_ids(50)
    shuffled = ids.copy()
    random.Random(0).shuffle(shuffled)
    config = TopologyConfig(degree=5, seed=3)
    assert neighbours(config, ids, 7) == neighbours(config, shuffled, 7) == neighbours(config, ids, 7)


def test_rounds_and_seeds_give_different_graphs() -> None:
    ids = member_ids(50)
    graphs = [neighbours(TopologyConfig(seed=0), ids, k) for k in range(4)]
    assert all(graphs[i] != graphs[j] for i in range(4) for j in range(i + 1, 4))
    assert neighbours(TopologyConfig(seed=1), ids, 0) != graphs[0]


def test_static_topology_repeats_round_zero() -> None:
    ids = member_ids(30)
    static = TopologyConfig("static", degree=4, seed=2)
    round_zero = neighbours(TopologyConfig("random-regular", degree=4, seed=2), ids, 0)
    assert all(neighbours(static, ids, k) == round_zero for k in range(5))


def test_ring_links_half_the_degree_on_each_side_in_sorted_order() -> None:
    ids = ["e", "a", "d", "b", "f", "c"]
    plain = neighbours(TopologyConfig("ring", degree=2), ids, 0)
    assert plain == {
        "a": ("b", "f"),
        "b": ("a", "c"),
        "c": ("b", "d"),
        "d": ("c", "e"),
        "e": ("d", "f"),
        "f": ("a", "e"),
    }
    wide = neighbours(TopologyConfig("ring", degree=4), member_ids(10), 3)
    assert wide["agent-000"] == ("agent-001", "agent-002", "agent-008", "agent-009")
    assert_simple_regular(wide, 4)
    assert neighbours(TopologyConfig("ring", degree=4), member_ids(10), 9) == wide


def test_neighbourhood_adds_the_member_itself_sorted() -> None:
    graph = {"b": ("a", "c"), "a": ("b",), "c": ("b",)}
    assert neighbourhood(graph, "b") == ("a", "b", "c")
    assert neighbourhood(graph, "c") == ("b", "c")


@pytest.mark.parametrize(
    ("kind", "degree", "members", "message"),
    [
        ("random-regular", 5, 5, "more than 5 members"),
        ("random-regular", 8, 3, "more than 8 members"),
        ("random-regular", 5, 7, "must be even"),
        ("static", 3, 9, "must be even"),
        ("ring", 4, 4, "more than 4 members"),
    ],
)
def test_impossible_graph_for_member_count_raises(kind: str, degree: int, members: int, message: str) -> None:
    config = TopologyConfig(kind, degree=degree)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        config.validate(members)
    with pytest.raises(ValueError, match=message):
        neighbours(config, member_ids(members), 0)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"degree": 0}, "at least 1"),
        ({"kind": "ring", "degree": 3}, "degree must be even"),
        ({"kind": "torus"}, "topology must be one of"),
        ({"seed": -1}, "non-negative"),
    ],
)
def test_invalid_config_raises(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TopologyConfig(**settings)  # type: ignore[arg-type]


def test_duplicate_members_and_negative_rounds_raise() -> None:
    with pytest.raises(ValueError, match="unique"):
        neighbours(TopologyConfig(degree=2), ["a", "b", "a", "c"], 0)
    with pytest.raises(ValueError, match="non-negative"):
        neighbours(TopologyConfig(degree=2), member_ids(4), -1)


def test_three_hundred_members_degree_five_for_ten_rounds() -> None:
    ids = member_ids(300)
    graphs = [neighbours(TopologyConfig(degree=5, seed=0), ids, k) for k in range(10)]
    for graph in graphs:
        assert_simple_regular(graph, 5)
    assert len({tuple(sorted(graph.items())) for graph in graphs}) == 10

"""The roster: round graphs over all M slots, neighbours filled by the members that hold them, the dead skipped."""

from edge_agent.agent.liveness import Liveness
from edge_agent.discovery.peers import PeerRecord
from edge_agent.learning.topology import TopologyConfig, neighbours


def _member(agent_id: str, shard: int, round_: int = 0) -> PeerRecord:
    return PeerRecord(agent_id, "127.0.0.1", 5000 + shard, "edge_agent.v1", "spark", "smoke", round_, 100, "generic",
                      "lab", "0123456789ab", shard)


def test_neighbours_come_from_the_roster_and_absent_or_down_slots_are_recorded_missing() -> None:
    liveness = Liveness(clients=6, shard=0)
    slots = neighbours(TopologyConfig(degree=3, seed=0), liveness.roster, 4)[liveness.slot]
    members = {f"client-{i}": _member(f"client-{i}", i) for i in range(1, 6) if f"client-{i}" != slots[0]}
    liveness.mark_down(slots[1], "stalled")
    picked = liveness.neighbours(slots, members)
    assert picked.live == (slots[2],)
    assert picked.missing == {slots[0]: "absent", slots[1]: "down: stalled"}
    liveness.mark_up(slots[1])  # it showed life again
    assert liveness.neighbours(slots, members).live == (slots[1], slots[2])


def test_a_member_with_its_own_id_fills_the_slot_of_its_shard() -> None:
    liveness = Liveness(clients=3, shard=0)
    picked = liveness.neighbours(["client-1", "client-2"], {"pi-kitchen": _member("pi-kitchen", 2)})
    assert picked.live == ("pi-kitchen",) and picked.missing == {"client-1": "absent"}


def test_the_fleet_round_is_the_median_of_members_so_one_straggler_or_racer_does_not_move_it() -> None:
    liveness = Liveness(clients=5, shard=0)
    members = {f"client-{i}": _member(f"client-{i}", i, r) for i, r in ((1, 7), (2, 7), (3, 8), (4, 30))}
    assert liveness.fleet_round(members) == 7
    assert liveness.fleet_round({}) is None


def test_an_agent_that_woke_from_a_pause_and_marked_everyone_down_still_sees_the_fleets_round() -> None:
    liveness = Liveness(clients=4, shard=3)
    members = {f"client-{i}": _member(f"client-{i}", i, 9) for i in range(3)}
    for agent_id in members:
        liveness.mark_down(agent_id, "no weights within the 3 s stall window")
    assert liveness.fleet_round(members) == 9


def test_the_live_fleets_round_counts_only_members_heard_from_and_one_of_two_behind_is_not_the_fleet() -> None:
    liveness = Liveness(clients=4, shard=0)
    members = {"client-1": _member("client-1", 1, 9), "client-2": _member("client-2", 2, 9),
               "client-3": _member("client-3", 3, 2)}  # client-3 froze at round 2
    assert liveness.alive_round(members, 60.0) is None  # nobody heard from yet
    for agent_id in members:
        liveness.mark_up(agent_id)
    assert liveness.alive_round(members, 60.0) == 9 and liveness.heard_within("client-3", 60.0)
    assert liveness.alive_round({k: members[k] for k in ("client-1", "client-3")}, 60.0) == 9  # upper median
    assert not liveness.heard_within("client-3", 0.0) and liveness.alive_round(members, -1.0) is None

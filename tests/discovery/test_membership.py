"""Membership: changes, listeners, waiting, and thread safety."""

import threading
import time

from edge_agent.discovery.membership import Membership, PeerChange
from edge_agent.discovery.peers import PeerRecord


def _record(agent_id: str, round_: int = 0) -> PeerRecord:
    return PeerRecord(agent_id, "10.0.0.1", 50051, "edge_agent.v1", "ntk-dfl", "edge", round_, 100, "rpi4",
                      "lab", "0123456789ab", 0)


def test_upsert_and_remove_report_what_changed() -> None:
    members = Membership()
    assert members.upsert(_record("a")) is PeerChange.ADDED
    assert members.upsert(_record("a")) is None
    assert members.upsert(_record("a", round_=1)) is PeerChange.UPDATED
    assert members.get("a") == _record("a", round_=1)
    assert members.remove("a") == _record("a", round_=1)
    assert members.remove("a") is None
    assert len(members) == 0


def test_snapshot_is_a_copy() -> None:
    members = Membership()
    members.upsert(_record("a"))
    snapshot = members.snapshot()
    members.upsert(_record("b"))
    assert sorted(snapshot) == ["a"]
    assert sorted(members.snapshot()) == ["a", "b"]


def test_listeners_see_changes_in_order_and_a_failing_listener_does_not_stop_others() -> None:
    members = Membership()
    seen: list[tuple[PeerChange, str, int]] = []

    def failing(change: PeerChange, record: PeerRecord) -> None:
        raise RuntimeError("listener bug")

    def recording(change: PeerChange, record: PeerRecord) -> None:
        assert (record.agent_id in members.snapshot()) == (change is not PeerChange.REMOVED)  # map already updated
        seen.append((change, record.agent_id, record.round))

    members.add_listener(failing)
    members.add_listener(recording)
    members.upsert(_record("a"))
    members.upsert(_record("a"))
    members.upsert(_record("a", round_=2))
    members.remove("a")
    members.remove_listener(recording)
    members.upsert(_record("b"))
    assert seen == [(PeerChange.ADDED, "a", 0), (PeerChange.UPDATED, "a", 2), (PeerChange.REMOVED, "a", 2)]


def test_wait_for_returns_false_after_timeout() -> None:
    members = Membership()
    members.upsert(_record("a"))
    start = time.monotonic()
    assert not members.wait_for(2, timeout=0.1)
    assert 0.09 <= time.monotonic() - start < 1.0
    assert members.wait_for(1, timeout=0)


def test_wait_for_wakes_when_another_thread_adds_peers() -> None:
    members = Membership()
    timer = threading.Timer(0.05, lambda: [members.upsert(_record(f"p{i}")) for i in range(3)])
    timer.start()
    try:
        assert members.wait_for(3, timeout=5)
        assert members.wait_until(lambda peers: "p2" in peers, timeout=0)
    finally:
        timer.cancel()


def test_concurrent_writers_leave_a_consistent_map_and_one_event_per_change() -> None:
    members = Membership()
    events: list[PeerChange] = []
    members.add_listener(lambda change, record: events.append(change))

    def writer(worker: int) -> None:
        for i in range(200):
            members.upsert(_record(f"w{worker}-{i % 20}", round_=i))
            if i % 3 == 0:
                members.remove(f"w{worker}-{(i + 7) % 20}")

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    snapshot = members.snapshot()
    added, removed = events.count(PeerChange.ADDED), events.count(PeerChange.REMOVED)
    assert added - removed == len(snapshot)
    assert all(record.agent_id == agent_id for agent_id, record in snapshot.items())

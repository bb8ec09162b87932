"""StaticDiscovery against a fake PeerInfo call: polling, backoff, removal, self-exclusion."""

import itertools
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from edge_agent.discovery.membership import Membership
from edge_agent.discovery.peers import PeerRecord
from edge_agent.discovery.static import PollConfig, StaticDiscovery

FAST = PollConfig(interval_s=0.02, backoff_initial_s=0.02, backoff_max_s=0.16, misses_before_removal=2)


def _record(agent_id: str, round_: int = 0, host: str = "0.0.0.0", port: int = 9) -> PeerRecord:
    return PeerRecord(agent_id, host, port, "edge_agent.v1", "ntk-dfl", "edge", round_, 100, "rpi4",
                      "lab", "0123456789ab", 0)


class FakeNetwork:
    """What each address answers: a record, None (unreachable), or an exception to raise; logs every call."""

    def __init__(self, answers: dict[tuple[str, int], PeerRecord | None | Exception]) -> None:
        self.answers = answers
        self.calls: list[tuple[float, tuple[str, int]]] = []
        self._lock = threading.Lock()

    def fetch_info(self, host: str, port: int) -> PeerRecord | None:
        with self._lock:
            self.calls.append((time.monotonic(), (host, port)))
            answer = self.answers[(host, port)]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def set(self, address: tuple[str, int], answer: PeerRecord | None | Exception) -> None:
        with self._lock:
            self.answers[address] = answer

    def call_times(self, address: tuple[str, int]) -> list[float]:
        with self._lock:
            return [t for t, a in self.calls if a == address]


Start = Callable[..., tuple[Membership, FakeNetwork, StaticDiscovery]]


@pytest.fixture
def start_static() -> Iterator[Start]:
    started: list[StaticDiscovery] = []

    def start(
        answers: dict[tuple[str, int], PeerRecord | None | Exception],
        exclude_id: str | None = None,
        config: PollConfig = FAST,
    ) -> tuple[Membership, FakeNetwork, StaticDiscovery]:
        members, network = Membership(), FakeNetwork(answers)
        discovery = StaticDiscovery(list(answers), members, network.fetch_info, exclude_id=exclude_id, config=config)
        started.append(discovery)
        discovery.start()
        return members, network, discovery

    yield start
    for discovery in started:
        discovery.stop()


def test_answering_peers_join_with_the_polled_address(start_static: Start) -> None:
    members, _, _ = start_static({("10.0.0.2", 50051): _record("a"), ("pi-b.local", 7000): _record("b")})
    assert members.wait_for(2, timeout=2)
    assert members.snapshot() == {
        "a": _record("a", host="10.0.0.2", port=50051),
        "b": _record("b", host="pi-b.local", port=7000),
    }


def test_unreachable_peer_is_retried_with_growing_backoff_and_joins_when_it_comes_up(start_static: Start) -> None:
    address = ("10.0.0.3", 1)
    config = PollConfig(backoff_initial_s=0.05, backoff_max_s=0.1)
    members, network, _ = start_static({address: None}, config=config)
    deadline = time.monotonic() + 5
    while len(network.call_times(address)) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    gaps = [b - a for a, b in itertools.pairwise(network.call_times(address)[:6])]
    assert len(gaps) == 5
    assert gaps[0] >= 0.045 and gaps[1] >= 0.095  # doubles after each miss
    assert sum(gaps[2:]) < 1.0  # capped at 0.1 s (uncapped: 0.2 + 0.4 + 0.8)
    assert len(members) == 0
    network.set(address, _record("c"))
    assert members.wait_for(1, timeout=2)


def test_round_updates_are_followed(start_static: Start) -> None:
    address = ("10.0.0.2", 1)
    members, network, _ = start_static({address: _record("a", round_=1)})
    assert members.wait_for(1, timeout=2)
    network.set(address, _record("a", round_=2))
    assert members.wait_until(lambda peers: peers["a"].round == 2, timeout=2)


def test_peer_that_stops_answering_is_removed_after_consecutive_misses(start_static: Start) -> None:
    address = ("10.0.0.2", 1)
    members, network, _ = start_static({address: _record("a"), ("10.0.0.9", 1): _record("b")})
    assert members.wait_for(2, timeout=2)
    network.set(address, ConnectionError("refused"))  # a raising call counts as a miss and does not kill the thread
    assert members.wait_until(lambda peers: sorted(peers) == ["b"], timeout=2)
    network.set(address, _record("a"))
    assert members.wait_for(2, timeout=2)


def test_address_now_answered_by_another_agent_replaces_the_old_one(start_static: Start) -> None:
    address = ("10.0.0.2", 1)
    members, network, _ = start_static({address: _record("old")})
    assert members.wait_for(1, timeout=2)
    network.set(address, _record("new"))
    assert members.wait_until(lambda peers: sorted(peers) == ["new"], timeout=2)


def test_own_address_is_excluded_and_no_longer_polled(start_static: Start) -> None:
    me, other = ("10.0.0.1", 1), ("10.0.0.2", 1)
    members, network, _ = start_static({me: _record("me"), other: _record("a")}, exclude_id="me")
    assert members.wait_for(1, timeout=2)
    time.sleep(0.2)
    assert sorted(members.snapshot()) == ["a"]
    assert len(network.call_times(me)) == 1
    assert len(network.call_times(other)) >= 2


def test_stop_is_idempotent_and_ends_polling(start_static: Start) -> None:
    address = ("10.0.0.2", 1)
    members, network, discovery = start_static({address: _record("a")})
    assert members.wait_for(1, timeout=2)
    discovery.stop()
    discovery.stop()
    calls = len(network.call_times(address))
    time.sleep(0.1)
    assert len(network.call_times(address)) == calls

"""MdnsDiscovery over real multicast on this host's loopback, with a service type of its own per test."""

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from zeroconf import IPVersion, ServiceInfo, Zeroconf

from edge_agent.discovery.mdns import LOOPBACK_ONLY, MdnsDiscovery
from edge_agent.discovery.membership import Membership
from edge_agent.discovery.peers import PeerRecord

REPO = Path(__file__).resolve().parents[2]
SEEN_S = 10.0  # a peer is seen about 1.5 s after start (registration probing); this is a generous bound


def _record(agent_id: str, port: int, round_: int = 0) -> PeerRecord:
    return PeerRecord(agent_id, "127.0.0.1", port, "edge_agent.v1", "ntk-dfl", "edge", round_, 100 + port, "rpi4",
                      "lab", "0123456789ab", 0)


@pytest.fixture
def service_type() -> str:
    """A type no other test or host uses: every process here sees every other's services."""
    return f"_ea-{uuid.uuid4().hex[:8]}._tcp.local."


Start = Callable[..., list[tuple[MdnsDiscovery, Membership]]]


@pytest.fixture
def start_agents(service_type: str) -> Iterator[Start]:
    """Starts discoveries in parallel (each start probes for ~1.5 s); stops every one at teardown."""
    started: list[MdnsDiscovery] = []

    def start(*records: PeerRecord) -> list[tuple[MdnsDiscovery, Membership]]:
        memberships = [Membership() for _ in records]
        discoveries = [
            MdnsDiscovery(record, members, service_type, LOOPBACK_ONLY)
            for record, members in zip(records, memberships, strict=True)
        ]
        started.extend(discoveries)
        with ThreadPoolExecutor(len(discoveries)) as pool:
            list(pool.map(MdnsDiscovery.start, discoveries))
        return list(zip(discoveries, memberships, strict=True))

    yield start
    with ThreadPoolExecutor(max(1, len(started))) as pool:
        list(pool.map(MdnsDiscovery.stop, started))


def test_agents_see_each_other_with_their_txt_fields_but_not_themselves(start_agents: Start) -> None:
    records = [_record("a", 5001), _record("b", 5002), _record("c", 5003)]
    agents = start_agents(*records)
    for (discovery, members), own in zip(agents, records, strict=True):
        assert members.wait_for(2, timeout=SEEN_S)
        assert members.snapshot() == {r.agent_id: r for r in records if r is not own}
        assert discovery.record == own


def test_round_update_propagates(start_agents: Start) -> None:
    (a, _), (_, b_members) = start_agents(_record("a", 5001), _record("b", 5002))
    assert b_members.wait_for(1, timeout=SEEN_S)
    assert a.update(round=3, samples=42) == replace(_record("a", 5001), round=3, samples=42)
    assert b_members.wait_until(lambda p: (p["a"].round, p["a"].samples) == (3, 42), timeout=SEEN_S)
    a.update(round=4)
    a.update(round=5)  # replaces the announcement of round 4 still in flight
    assert b_members.wait_until(lambda p: p["a"].round == 5, timeout=SEEN_S)


def test_stopped_agent_leaves_the_others_membership(start_agents: Start) -> None:
    (a, _), (_, b_members), (_, c_members) = start_agents(_record("a", 5001), _record("b", 5002), _record("c", 5003))
    assert b_members.wait_for(2, timeout=SEEN_S) and c_members.wait_for(2, timeout=SEEN_S)
    a.stop()
    a.stop()
    for members in (b_members, c_members):
        assert members.wait_until(lambda p: "a" not in p, timeout=SEEN_S)
        assert len(members) == 1


def test_hostile_txt_records_are_ignored_and_browsing_goes_on(
    start_agents: Start, service_type: str, caplog: pytest.LogCaptureFixture
) -> None:
    hostile: dict[str, dict[bytes, bytes] | dict[str, str]] = {
        "evil": {b"id": b"evil", b"round": b"\xff" * 40, b"samples": b"-1"},
        "liar": {**_record("b", 5002).to_txt(), "id": "b"},  # claims b's id under another name
    }
    infos = [
        ServiceInfo(
            service_type,
            f"{name}.{service_type}",
            port=1,
            properties=txt,
            server=f"{name}.local.",
            parsed_addresses=["127.0.0.1"],
        )
        for name, txt in hostile.items()
    ]
    zc = Zeroconf(interfaces=LOOPBACK_ONLY, ip_version=IPVersion.V4Only)
    try:
        with ThreadPoolExecutor(len(infos)) as pool:
            list(pool.map(zc.register_service, infos))
        (_, members), _ = start_agents(_record("a", 5001), _record("b", 5002))
        assert members.wait_for(1, timeout=SEEN_S)
        ignored = [f"ignoring mDNS service {name}.{service_type}" for name in hostile]
        assert members.wait_until(lambda _: all(i in caplog.text for i in ignored), timeout=SEEN_S)
        assert members.snapshot() == {"b": _record("b", 5002)}
    finally:
        zc.close()


def test_peer_in_another_process_is_discovered_and_removed_when_it_stops(
    start_agents: Start, service_type: str
) -> None:
    script = textwrap.dedent(f"""
        import sys
        from edge_agent.discovery.mdns import LOOPBACK_ONLY, MdnsDiscovery
        from edge_agent.discovery.membership import Membership
        from edge_agent.discovery.peers import PeerRecord
        record = PeerRecord("far", "127.0.0.1", 6000, "edge_agent.v1", "spark", "edge", 9, 500, "jetson",
                            "lab", "0123456789ab", 3)
        discovery = MdnsDiscovery(record, Membership(), {service_type!r}, LOOPBACK_ONLY)
        discovery.start()
        sys.stdin.read()  # until the test closes our stdin
        discovery.stop()
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, env=env)
    try:
        ((_, members),) = start_agents(_record("near", 5001))
        assert members.wait_for(1, timeout=SEEN_S)
        assert members.snapshot() == {
            "far": PeerRecord("far", "127.0.0.1", 6000, "edge_agent.v1", "spark", "edge", 9, 500, "jetson",
                            "lab", "0123456789ab", 3)
        }
        assert child.stdin is not None
        child.stdin.close()
        assert child.wait(timeout=SEEN_S) == 0
        assert members.wait_until(lambda p: not p, timeout=SEEN_S)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=5)


def test_unspecified_or_named_host_is_refused() -> None:
    with pytest.raises(ValueError, match="reachable"):
        MdnsDiscovery(replace(_record("a", 1), host="0.0.0.0"), Membership())
    with pytest.raises(ValueError):
        MdnsDiscovery(replace(_record("a", 1), host="pi.local"), Membership())

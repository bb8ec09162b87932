"""Real agent processes on loopback converge after a member is frozen (SIGSTOP) mid-round and thawed: nobody trains
alone once all run again, and all are within two rounds of each other within three stall windows.

The fleet has a service type and a run name of its own and is always stopped (the fleets fixture).
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fleet import Fleet, rounds_of

from edge_agent.deploy import certs
from edge_agent.transport.client import PeerClient
from edge_agent.transport.contract import TransportError
from edge_agent.transport.tls import ClusterTls, TlsFiles

STALL_S = 3.0
PAUSE_S = 4 * STALL_S


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    """Four agents, rounds of about 2 s (m = 256 through 8 Mbit/s), training until stopped."""
    made = Fleet(tmp_path, 4, ["--rounds", "0", "--proj-dim", "256", "--uplink", "8mbit",
                               "--stall-window", str(STALL_S), "--wait-peers", "60"])
    certs.issue(made.certs_dir(), "operator", operator=True)
    try:
        made.start_all()
        yield made
    finally:
        made.stop()


def _status_client(fleet: Fleet, index: int) -> PeerClient:
    fleet.wait_until(lambda: "serving on" in fleet.log(index), 60, f"agent {index} to serve")
    port = re.search(r"serving on 127\.0\.0\.1:(\d+)", fleet.log(index))
    assert port is not None
    return PeerClient(f"127.0.0.1:{port.group(1)}", f"client-{index}",
                      tls=ClusterTls(TlsFiles.in_folder(fleet.certs_dir(), "operator")))


def _freeze_in(fleet: Fleet, index: int, phases: set[str], client: PeerClient) -> None:
    """SIGSTOP agent `index` as soon as its Status says it is in one of `phases` of a round."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if client.status(timeout=2).phase in phases:
                fleet.signal(index, signal.SIGSTOP)
                return
        except TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"agent {index} never reached {phases}")


def _trained_alone_since(fleet: Fleet, since: float) -> list[dict[str, Any]]:
    """Trained records written after `since` (epoch seconds) with no neighbour in them."""
    return [r for i in range(fleet.size) for r in fleet.records(i)
            if r["status"] == "trained" and not r["neighbours"]
            and datetime.fromisoformat(r["time"].replace("Z", "+00:00")).timestamp() > since]


def test_an_agent_frozen_twice_mid_round_rejoins_and_nobody_trains_alone(fleet: Fleet) -> None:
    for index in range(4):
        fleet.wait_for_rounds(index, 2, timeout=180)
    client = _status_client(fleet, 3)
    spreads, alone = [], []
    for phases in ({"average"}, {"jacobian", "evolve", "score"}):  # in its weights exchange; waiting on Jacobians
        _freeze_in(fleet, 3, phases, client)
        time.sleep(PAUSE_S)
        fleet.signal(3, signal.SIGCONT)
        thawed = time.time()
        time.sleep(3 * STALL_S)
        done = [len(fleet.records(i)) for i in range(4)]
        spreads.append(max(done) - min(done))
        target = max(done) + 2
        fleet.wait_until(lambda: min(len(fleet.records(i)) for i in range(4)) >= target, 120,  # noqa: B023
                         "two more rounds from every agent")
        alone += _trained_alone_since(fleet, thawed)
    client.close()
    for index in range(4):
        fleet.signal(index, signal.SIGTERM)
    assert fleet.wait_all(timeout=60) == {0: 0, 1: 0, 2: 0, 3: 0}, [fleet.log(i) for i in range(4)]
    assert spreads[0] <= 2 and spreads[1] <= 2, spreads  # within two rounds, three stall windows after the thaw
    assert not alone, alone
    for index in range(4):
        records = fleet.records(index)
        assert rounds_of(records) == list(range(len(records)))
    frozen = fleet.records(3)
    assert sum(r["status"] == "skipped" for r in frozen) >= 2, frozen  # it adopted the fleet's round each time
    assert any("client-3" in r["missing"] for i in range(3) for r in fleet.records(i))
    assert "Traceback" not in "".join(fleet.log(i) for i in range(4))

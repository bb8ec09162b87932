"""Tests for edge_agent.transport.ledger: per-link counters, totals, and the overhead ratio."""

from __future__ import annotations

import math
import threading

from edge_agent.transport.ledger import LinkCounters, TransportLedger


def test_counts_are_kept_per_link_and_direction() -> None:
    ledger = TransportLedger()
    ledger.add_sent("b", wire=110, payload=100, messages=1)
    ledger.add_received("b", wire=15, payload=0, messages=1)
    ledger.add_sent("c", wire=5)
    assert ledger.link("b") == LinkCounters(110, 15, 100, 0, 1, 1)
    assert ledger.link("c") == LinkCounters(wire_sent=5)
    assert ledger.link("nobody") == LinkCounters()
    assert ledger.totals() == LinkCounters(115, 15, 100, 0, 1, 1)


def test_overhead_is_wire_over_payload_minus_one() -> None:
    assert LinkCounters(wire_sent=101, payload_sent=100).overhead == 0.010000000000000009
    assert math.isinf(LinkCounters(wire_sent=5).overhead)


def test_readers_get_copies() -> None:
    ledger = TransportLedger()
    ledger.add_sent("b", 1)
    ledger.link("b").wire_sent = 99
    ledger.links()["b"].wire_sent = 99
    assert ledger.link("b").wire_sent == 1


def test_concurrent_updates_are_not_lost() -> None:
    ledger = TransportLedger()

    def add() -> None:
        for _ in range(2000):
            ledger.add_sent("b", 1, 1)
            ledger.add_received("b", 2)

    threads = [threading.Thread(target=add) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ledger.link("b") == LinkCounters(wire_sent=8000, wire_received=16000, payload_sent=8000)

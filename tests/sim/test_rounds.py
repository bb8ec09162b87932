"""The simulator's rounds: a neighbour the robust rule's strikes bar is left out of the mean and the exchange."""

from __future__ import annotations

from dataclasses import replace
from itertools import islice

import numpy as np
import pytest

from edge_agent.learning import exchange
from edge_agent.learning.datasets import load_data
from edge_agent.learning.messages import JacobianReply, Message
from edge_agent.learning.robust import STRIKES, RobustConfig, Strikes
from edge_agent.sim.config import SimulationConfig
from edge_agent.sim.engine import Simulation
from edge_agent.sim.network import InMemoryNetwork
from edge_agent.sim.rounds import Client, exchange_and_average


def test_a_barred_neighbours_weights_cross_the_wire_but_stay_out_of_the_mean_and_the_exchange() -> None:
    clients = [Client(f"client-{i}", np.zeros((1, 2), np.float32), np.zeros(1, int)) for i in range(3)]
    weights = np.array([[1.0, 1.0], [3.0, 3.0], [5.0, 5.0]], np.float32)
    graph = {"client-0": ("client-1", "client-2"), "client-1": ("client-0",), "client-2": ("client-0",)}
    strikes = {client.id: Strikes() for client in clients}
    strikes["client-0"].add(["client-2"] * STRIKES)  # only client-0 bars client-2
    network = InMemoryNetwork()
    averaged, kept = exchange_and_average(clients, weights, graph, network, 0, RobustConfig("screen"), strikes)
    np.testing.assert_allclose(averaged[0], [2.0, 2.0])  # itself and client-1
    assert kept["client-0"] == ("client-1",) and kept["client-2"] == ("client-0",)
    np.testing.assert_allclose(averaged[2], [3.0, 3.0])  # client-2 still hears client-0
    unbarred = InMemoryNetwork()
    exchange_and_average(clients, weights, graph, unbarred, 0, RobustConfig("screen"))
    assert network.ledger.total_bytes == unbarred.ledger.total_bytes


def test_a_client_that_flips_its_replies_labels_is_barred_and_a_resumed_run_keeps_the_bar(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """client-3's Jacobian replies carry labels 9 - y (bench_robust's flip); every other message is honest."""
    handle = exchange.Responder.handle

    def flipped(self: exchange.Responder, message: Message) -> Message | None:
        reply = handle(self, message)
        if self.client_id == "client-3" and isinstance(reply, JacobianReply):
            reply = replace(reply, labels=9 - reply.labels)
        return reply
    monkeypatch.setattr(exchange.Responder, "handle", flipped)
    data = load_data("fashion-mnist")
    config = SimulationConfig.from_setting("smoke", "spark", clients=4, rounds=4, samples_per_client=60)
    whole = Simulation(config, data.train, data.test)
    list(whole.run())
    barred_by = {cid for cid, strikes in whole.strikes.items() if "client-3" in strikes.barred()}
    assert barred_by and all(strikes.barred() <= {"client-3"} for strikes in whole.strikes.values())
    halves = Simulation(config, data.train, data.test)
    list(islice(halves.run(), 2))
    resumed = Simulation(config, data.train, data.test)
    resumed.restore(halves.state())
    list(resumed.run())
    np.testing.assert_array_equal(resumed.weights, whole.weights)
    assert {cid: s.counts for cid, s in resumed.strikes.items()} == {cid: s.counts for cid, s in whole.strikes.items()}

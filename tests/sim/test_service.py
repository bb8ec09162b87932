"""A service (`run --rounds 0`) trains past SPARK's schedule; three times the smoke setting's rounds, simulated.

Measured cause of the decay a service showed: Nesterov momentum kept on past the schedule goes on carrying the
first stages' large steps, the weights drift and test accuracy falls. A service trains past its schedule without
momentum, and keeps its accuracy. Three clients of the smoke setting, as the agents that showed it.
"""

from __future__ import annotations

from dataclasses import replace

from edge_agent.learning.algorithms.spark import SparkConfig
from edge_agent.learning.data import load_fashion_mnist
from edge_agent.learning.settings import SETTINGS
from edge_agent.sim.config import SimulationConfig
from edge_agent.sim.engine import Simulation

SCHEDULE = SETTINGS["smoke"].rounds  # what `run --rounds 0` spreads SPARK's stages over
ROUNDS = 3 * SCHEDULE


def service_curve(momentum_after_schedule: bool) -> list[float]:
    train, test = load_fashion_mnist()
    config = SimulationConfig.from_setting("smoke", "spark", clients=3, rounds=ROUNDS)
    spark = replace(SparkConfig(), schedule_rounds=SCHEDULE, momentum_after_schedule=momentum_after_schedule)
    return [record.mean_client_accuracy for record in Simulation(replace(config, spark=spark), train, test).run()]


def test_a_service_ends_three_schedules_within_a_point_of_its_best_where_momentum_kept_on_loses_more() -> None:
    service, kept_on = service_curve(False), service_curve(True)
    assert service[:SCHEDULE] == kept_on[:SCHEDULE]  # the same run until the schedule ends
    assert max(service) - service[-1] <= 0.01
    assert max(kept_on) - kept_on[-1] > 0.01

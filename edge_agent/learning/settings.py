"""The named experiment settings of SPEC section 7."""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    """Clients, samples per client, Dirichlet alpha, neighbours per round (kappa) and rounds of a named setting."""

    name: str
    clients: int
    samples_per_client: int
    alpha: float
    kappa: int
    rounds: int


SETTINGS: Mapping[str, Setting] = types.MappingProxyType({
    "paper": Setting("paper", clients=300, samples_per_client=200, alpha=0.1, kappa=5, rounds=50),
    "edge": Setting("edge", clients=8, samples_per_client=200, alpha=0.1, kappa=3, rounds=30),
    "smoke": Setting("smoke", clients=10, samples_per_client=100, alpha=0.1, kappa=2, rounds=5),
})

TARGET_ACCURACY = 0.85

"""Opens the engine a configuration names; the ray engine's module (and Ray) is imported only when it is asked for."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

from edge_agent.sim.engines.base import RAY_EXTRA, Engine, EngineConfig, EngineError, EngineHooks
from edge_agent.sim.engines.local import InProcessMapper, ProcessMapper
from edge_agent.sim.rounds import Client


def require_engine(config: EngineConfig) -> None:
    """Fail before any work when the engine's package is missing: Ray is an optional extra."""
    if config.kind == "ray" and not _importable("ray"):
        raise EngineError(f"--engine ray needs Ray, which is not installed here: {RAY_EXTRA}")


def open_engine(config: EngineConfig, clients: Sequence[Client], hooks: EngineHooks | None = None) -> Engine:
    """The engine of `config` over `clients`, started; close it when the run ends."""
    require_engine(config)
    if config.kind == "ray":
        from edge_agent.sim.engines.ray_engine import RayMapper

        return RayMapper(clients, config, hooks)
    if config.workers > 1:
        return ProcessMapper(clients, config.workers, hooks)
    return InProcessMapper(clients, hooks)


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False

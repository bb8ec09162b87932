"""The resolved configuration of one simulation run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from edge_agent.learning.algorithms.ntk_dfl import NTKDFLConfig
from edge_agent.learning.algorithms.spark import SparkConfig, wire_codecs_for
from edge_agent.learning.codec import CodecConfig
from edge_agent.learning.datasets import DEFAULT_SOURCE, fashion_mnist
from edge_agent.learning.messages import FP32, WireCodecs
from edge_agent.learning.robust import RobustConfig
from edge_agent.learning.settings import SETTINGS, TARGET_ACCURACY
from edge_agent.sim.link_model import ModelledLink

Algorithm = Literal["spark", "ntk-dfl", "dfedavg", "dfedavgm", "dpsgd"]
ALGORITHMS: tuple[Algorithm, ...] = ("spark", "ntk-dfl", "dfedavg", "dfedavgm", "dpsgd")


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that determines a simulation: setting values after overrides, seeds and method options."""

    algorithm: Algorithm
    setting: str
    clients: int
    samples_per_client: int
    alpha: float
    kappa: int
    rounds: int
    seed: int = 0
    topology: Literal["random-regular", "ring", "static"] = "random-regular"
    partition_file: Path | None = None
    data: str = DEFAULT_SOURCE  # the data's name (fashion-mnist, digits, npz) and content digest: a resumed run
    data_digest: str = fashion_mnist.DIGEST  # continues only on the same data
    ntk: NTKDFLConfig = field(default_factory=NTKDFLConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)
    weights_codec: CodecConfig = FP32  # every algorithm's weights on the wire (exchange and Jacobian request)
    robust: RobustConfig = field(default_factory=RobustConfig)  # how far one neighbour can move a client
    target_accuracy: float = TARGET_ACCURACY
    link: ModelledLink | None = None  # rounds get modelled seconds on this link (None: no model)
    model: str = "mlp"  # --model: mlp, cnn or a factory (path/to/file.py:factory, package.module:factory)

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {self.algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
        if self.rounds < 1:
            raise ValueError(f"rounds must be at least 1, got {self.rounds}")
        if self.clients < 2:
            raise ValueError(f"a decentralized run needs at least 2 clients, got {self.clients}")

    @property
    def wire_codecs(self) -> WireCodecs:
        return wire_codecs_for(self.algorithm, self.spark, self.weights_codec)

    @classmethod
    def from_setting(cls, name: str, algorithm: Algorithm, **overrides: Any) -> SimulationConfig:
        """The named setting's values, with any non-None override applied."""
        if name not in SETTINGS:
            raise ValueError(f"unknown setting {name!r}; choose one of {', '.join(SETTINGS)}")
        base = SETTINGS[name]
        values: dict[str, Any] = {
            "clients": base.clients, "samples_per_client": base.samples_per_client, "alpha": base.alpha,
            "kappa": base.kappa, "rounds": base.rounds,
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(algorithm=algorithm, setting=name, **values)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the resolved configuration."""
        values = asdict(self, dict_factory=lambda items: {k: _jsonable(v) for k, v in items})
        if values["model"] == "mlp":  # runs saved before models could be chosen resume as they were
            del values["model"]
        return values


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value

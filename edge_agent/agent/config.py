"""The resolved configuration of one agent process."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.discovery.mdns import SERVICE_TYPE
from edge_agent.learning.algorithms.ntk_dfl import NTKDFLConfig
from edge_agent.learning.algorithms.spark import SparkConfig, wire_codecs_for
from edge_agent.learning.codec import CodecConfig
from edge_agent.learning.messages import FP32, WireCodecs
from edge_agent.transport.throttle import LinkModel

AGENT_ALGORITHMS = ("spark", "ntk-dfl")


@dataclass(frozen=True)
class AgentConfig:
    """Who the agent is, which shard of which setting it trains, how it talks and where it writes."""

    agent_id: str
    shard: int  # i of i/M
    clients: int  # M
    setting: str
    algorithm: str
    rounds: int
    samples_per_client: int
    alpha: float
    kappa: int
    seed: int = 0
    partition_file: Path | None = None
    host: str = "127.0.0.1"
    port: int = 0
    link: LinkModel = field(default_factory=LinkModel)
    chunk_size: int = 1 << 20
    peers: tuple[tuple[str, int], ...] = ()
    mdns: bool = True
    service_type: str = SERVICE_TYPE
    wait_peers_s: float = 120.0
    metrics: Path | None = None
    checkpoint_dir: Path | None = None
    profile: str = "generic"
    backend: str = "numpy"  # kernel backend of the neighbour side: numpy, torch or onnxruntime
    providers: tuple[str, ...] = ()
    threads: int | None = None
    jacobian_chunk: int | None = None
    ntk: NTKDFLConfig = field(default_factory=NTKDFLConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)
    weights_codec: CodecConfig = FP32  # the weights on the wire (exchange and Jacobian request)

    @property
    def wire_codecs(self) -> WireCodecs:
        return wire_codecs_for(self.algorithm, self.spark, self.weights_codec)

    def __post_init__(self) -> None:
        if self.algorithm not in AGENT_ALGORITHMS:
            raise ValueError(f"the agent runs {' or '.join(AGENT_ALGORITHMS)}, not {self.algorithm!r} "
                             "(baselines run in `edge-agent simulate`)")
        if not 0 <= self.shard < self.clients:
            raise ValueError(f"shard {self.shard}/{self.clients} is out of range: use i/M with 0 <= i < M")
        if self.rounds < 1:
            raise ValueError(f"rounds must be at least 1, got {self.rounds}")
        if not self.mdns and not self.peers:
            raise ValueError("with --no-mdns the agent needs --peers host:port,... to find its neighbours")

"""The resolved configuration of one agent process."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from edge_agent.discovery.mdns import SERVICE_TYPE
from edge_agent.learning.algorithms.ntk_dfl import NTKDFLConfig
from edge_agent.learning.algorithms.spark import SparkConfig, wire_codecs_for
from edge_agent.learning.codec import CodecConfig
from edge_agent.learning.datasets import DEFAULT_SOURCE, source_name
from edge_agent.learning.messages import FP32, WireCodecs
from edge_agent.learning.robust import RobustConfig
from edge_agent.learning.topology import TopologyConfig
from edge_agent.run_identity import RunIdentity, agreed_settings, run_identity
from edge_agent.transport.contract import PROTOCOL_VERSION
from edge_agent.transport.throttle import LinkModel

AGENT_ALGORITHMS = ("spark", "ntk-dfl", "dfedavg")


@dataclass(frozen=True)
class AgentConfig:
    """Who the agent is, which shard of which setting it trains, how it talks and where it writes."""

    agent_id: str
    shard: int  # i of i/M
    clients: int  # M
    setting: str
    algorithm: str
    rounds: int  # 0: train until stopped
    samples_per_client: int
    alpha: float
    kappa: int
    seed: int = 0
    schedule_rounds: int = 0  # SPARK's stages, when --rounds is 0 and --schedule-rounds is not given: the setting's
    run_name: str | None = None  # --run; default: the fingerprint of the agreed settings
    stall_s: float = 20.0  # a transfer or a neighbour that shows no progress this long is cut and counted missing
    partition_file: Path | None = None
    data: str = DEFAULT_SOURCE  # --data: fashion-mnist, digits or a path to an npz file
    data_digest: str = ""  # the loaded data's content digest (learning/datasets); empty for Fashion-MNIST
    host: str = "127.0.0.1"  # the address peers are told (mDNS, PeerInfo) and dial
    port: int = 0  # the port bound (0: any free port), which peers are told too
    listen_host: str | None = None  # the address bound, e.g. 0.0.0.0 (None: host)
    prometheus_port: int | None = None  # serve Prometheus metrics on host:port (0: any free port); None: off
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
    overlap: bool = True  # a Jacobian reply leaves chunk by chunk as it is computed (False: computed whole first)
    ntk: NTKDFLConfig = field(default_factory=NTKDFLConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)
    weights_codec: CodecConfig = FP32  # the weights on the wire (exchange and Jacobian request)
    certs: Path | None = None  # the cluster certs folder (mutual TLS); None: plaintext (--insecure)
    robust: RobustConfig = field(default_factory=RobustConfig)  # how far one neighbour can move this agent
    model: str = "mlp"  # --model: mlp, cnn or a factory (path/to/file.py:factory, package.module:factory)
    model_identity: str | None = None  # the model's identity as canonical JSON (None: the published MLP)

    @property
    def wire_codecs(self) -> WireCodecs:
        return wire_codecs_for(self.algorithm, self.spark, self.weights_codec)

    @property
    def schedule_span(self) -> int:
        """The rounds SPARK's stages are spread over: the run's rounds, or for an open-ended run the setting's."""
        return self.rounds or self.schedule_rounds

    @cached_property
    def identity(self) -> RunIdentity:
        """This agent's run: only agents with the same identity are members and may call it (hashed once: it reads
        the partition file)."""
        settings = agreed_settings(
            protocol=PROTOCOL_VERSION, algorithm=self.algorithm, setting=self.setting, clients=self.clients,
            samples_per_client=self.samples_per_client, alpha=self.alpha, kappa=self.kappa, seed=self.seed,
            rounds=self.schedule_span, ntk=self.ntk, spark=self.spark, partition_file=self.partition_file,
            robust=self.robust, data_name=source_name(self.data), data_digest=self.data_digest,
            model=self.model_identity)
        return run_identity(settings, self.run_name)

    @property
    def bind_host(self) -> str:
        return self.host if self.listen_host is None else self.listen_host

    @property
    def topology(self) -> TopologyConfig:
        return TopologyConfig(degree=self.kappa, seed=self.seed)

    def __post_init__(self) -> None:
        if self.algorithm not in AGENT_ALGORITHMS:
            raise ValueError(f"the agent runs {' or '.join(AGENT_ALGORITHMS)}, not {self.algorithm!r} "
                             "(the other baselines run in `edge-agent simulate`)")
        if not 0 <= self.shard < self.clients:
            raise ValueError(f"shard {self.shard}/{self.clients} is out of range: use i/M with 0 <= i < M")
        if self.rounds < 0 or (self.rounds == 0 and self.schedule_rounds < 1):
            raise ValueError(f"rounds must be at least 0 (0: until stopped, with a schedule span), got {self.rounds}")
        try:
            self.topology.validate(self.clients)  # the graph is drawn over all M shards, present or not
        except ValueError as error:
            raise ValueError(f"{self.clients} agents cannot form the {self.setting} setting's round graphs "
                             f"(kappa {self.kappa}): {error}") from None
        if self.stall_s <= 0:
            raise ValueError(f"the stall window must be positive, got {self.stall_s} s")
        if source_name(self.data) != DEFAULT_SOURCE and not self.data_digest:
            raise ValueError(f"data {self.data} needs its content digest (load it first): agents with other data "
                             "must never join this run")
        if not self.mdns and not self.peers:
            raise ValueError("with --no-mdns the agent needs --peers host:port,... to find its neighbours")

"""What must agree across one run, hashed into the run id that mDNS adverts and every call carry.

Two fleets on one LAN must never mix: an agent takes as members, and answers calls from, only agents whose run id
and fingerprint equal its own. The fingerprint hashes every setting that changes what the method computes
(protocol, algorithm, setting, M, seed, split, the data, NTK and SPARK constants, the robust rule). What each board
chooses for itself and its peers can read whatever it picks (wire precision, which Jacobian rows it sends, its link, its
backend) is left out, so a fleet of different boards is still one run. The run id is `--run NAME`, or the
fingerprint itself.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edge_agent.learning.algorithms.baselines import BASELINES
from edge_agent.learning.algorithms.ntk_dfl import NTKDFLConfig
from edge_agent.learning.algorithms.spark import SparkConfig
from edge_agent.learning.datasets import DEFAULT_SOURCE
from edge_agent.learning.robust import OFF, RobustConfig

RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
FINGERPRINT_HEX = 12
METADATA_KEY = "edge-agent-run"  # gRPC metadata of every round call: "<run id>/<fingerprint>"
# Per-board choices a peer decodes whatever they are; they stay out of the fingerprint.
_BOARD_CHOICES = ("codec", "candidates_codec", "residual_share", "tail_rate")


@dataclass(frozen=True)
class RunIdentity:
    """A run's name and the hash of its agreed settings; equal identities may exchange round messages."""

    run_id: str
    fingerprint: str

    def __post_init__(self) -> None:
        if not RUN_ID_PATTERN.fullmatch(self.run_id):
            raise ValueError(f"run id {self.run_id!r:.40} must be 1-32 letters, digits, '-' or '_', "
                             "starting with a letter or digit")
        if not re.fullmatch(rf"[0-9a-f]{{{FINGERPRINT_HEX}}}", self.fingerprint):
            raise ValueError(f"run fingerprint {self.fingerprint!r:.40} is not {FINGERPRINT_HEX} hex digits")

    @property
    def token(self) -> str:
        """The form calls carry in their metadata."""
        return f"{self.run_id}/{self.fingerprint}"

    @classmethod
    def from_token(cls, token: str) -> RunIdentity:
        """The identity a call's metadata names; ValueError when it is garbled."""
        run_id, sep, fingerprint = token.partition("/")
        if not sep:
            raise ValueError(f"run token {token!r:.60} is not <run id>/<fingerprint>")
        return cls(run_id, fingerprint)

    def mismatch(self, other: RunIdentity) -> str | None:
        """Why `other` is not this run (one line), or None when it is."""
        if other.run_id != self.run_id:
            return f"it belongs to run {other.run_id!r}, this agent to {self.run_id!r}"
        if other.fingerprint != self.fingerprint:
            return (f"run {self.run_id!r} with other settings (fingerprint {other.fingerprint}, "
                    f"ours {self.fingerprint}): check --setting, --seed, --preset, --data, M and the method flags")
        return None


def agreed_settings(*, protocol: str, algorithm: str, setting: str, clients: int, samples_per_client: int,
                    alpha: float, kappa: int, seed: int, rounds: int, ntk: NTKDFLConfig, spark: SparkConfig,
                    partition_file: Path | None, robust: RobustConfig = OFF, data_name: str = DEFAULT_SOURCE,
                    data_digest: str = "", model: str | None = None) -> dict[str, Any]:
    """Every setting that must be equal on all agents of a run, as plain JSON values (`robust` only when on, the
    data only when it is not Fashion-MNIST, `model` (its identity as JSON) only when it is not the published MLP, so
    runs keep the fingerprints they had before these existed)."""
    settings: dict[str, Any] = {
        "protocol": protocol, "algorithm": algorithm, "setting": setting, "clients": clients,
        "samples_per_client": samples_per_client, "alpha": alpha, "kappa": kappa, "seed": seed,
        "partition_sha256": _file_sha256(partition_file) if partition_file is not None else None,
    }
    if algorithm == "spark":
        method = {k: v for k, v in asdict(spark).items() if k not in _BOARD_CHOICES}
        method["schedule_rounds"] = spark.schedule_rounds or rounds  # the stages follow it
        settings["spark"] = method
    elif algorithm in BASELINES:  # local SGD's constants; the NTK ones play no part
        settings["local_sgd"] = asdict(BASELINES[algorithm])
    else:
        settings["ntk"] = asdict(ntk)
    if robust.on:
        settings["robust"] = robust.rule
    if data_name != DEFAULT_SOURCE:
        settings["data"] = {"name": data_name, "digest": data_digest}
    if model is not None:
        settings["model"] = model
    return settings


def fingerprint(settings: dict[str, Any]) -> str:
    """A short stable hash of `settings` (canonical JSON, SHA-256)."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:FINGERPRINT_HEX]


def run_identity(settings: dict[str, Any], name: str | None = None) -> RunIdentity:
    """The run named `name` (default: its fingerprint) with the fingerprint of `settings`."""
    digest = fingerprint(settings)
    return RunIdentity(name or digest, digest)


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()

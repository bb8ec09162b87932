"""The run identity: what must agree is hashed, what each board picks for itself is not, and calls of another run
are refused with a gRPC status."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.learning.algorithms.ntk_dfl import NTKDFLConfig
from edge_agent.learning.algorithms.spark import SparkConfig
from edge_agent.learning.codec import CodecConfig
from edge_agent.learning.messages import Message, WeightsMessage
from edge_agent.learning.mlp import MLPSpec
from edge_agent.learning.models.select import load_model
from edge_agent.learning.robust import RobustConfig
from edge_agent.run_identity import RunIdentity, agreed_settings, fingerprint, run_identity
from edge_agent.transport.client import PeerClient
from edge_agent.transport.contract import TransportError
from edge_agent.transport.server import AgentServer, ServerConfig

BASE: dict[str, Any] = {"protocol": "edge_agent.v1", "algorithm": "spark", "setting": "edge", "clients": 8,
                        "samples_per_client": 200, "alpha": 0.1, "kappa": 3, "seed": 0, "rounds": 30,
                        "ntk": NTKDFLConfig(), "spark": SparkConfig(), "partition_file": None}


def _fingerprint(**changes: Any) -> str:
    return fingerprint(agreed_settings(**{**BASE, **changes}))


@pytest.mark.parametrize("change", [
    {"seed": 1}, {"clients": 9}, {"algorithm": "ntk-dfl"}, {"setting": "smoke"}, {"kappa": 4}, {"rounds": 20},
    {"spark": SparkConfig(momentum=False)}, {"spark": replace(SparkConfig(), ntk=NTKDFLConfig(gamma=0.07))},
])
def test_every_setting_that_changes_the_method_changes_the_fingerprint(change: dict[str, Any]) -> None:
    assert _fingerprint(**change) != _fingerprint()


def test_the_robust_rule_is_agreed_and_off_keeps_the_fingerprint_of_runs_before_it() -> None:
    assert _fingerprint(robust=RobustConfig("off")) == _fingerprint()  # BASE names no rule: as before --robust
    assert _fingerprint(robust=RobustConfig("screen")) != _fingerprint()
    assert _fingerprint(robust=RobustConfig("clip")) != _fingerprint(robust=RobustConfig("screen"))


def test_what_a_board_picks_for_itself_leaves_the_fingerprint_alone() -> None:
    lean = SparkConfig(codec=CodecConfig("int4"), candidates_codec=CodecConfig("int8"), residual_share=0.9,
                       tail_rate=0.25)
    assert _fingerprint(spark=lean) == _fingerprint()
    assert _fingerprint() == _fingerprint()  # stable


def test_a_named_run_keeps_the_fingerprint_and_garbled_names_are_refused() -> None:
    named = run_identity(agreed_settings(**BASE), "lab-1")
    assert named.run_id == "lab-1" and named.fingerprint == _fingerprint()
    assert run_identity(agreed_settings(**BASE)).run_id == _fingerprint()
    for bad in ("", "has space", "a/b", "x" * 33):
        with pytest.raises(ValueError, match="run id"):
            RunIdentity(bad, _fingerprint())
    with pytest.raises(ValueError, match="<run id>/<fingerprint>"):
        RunIdentity.from_token("no-slash")


class Inbox:
    def __init__(self) -> None:
        self.received: list[str] = []

    def handle(self, message: Message, peer: str) -> Message | None:
        self.received.append(message.sender)
        return None


@pytest.fixture
def served() -> Iterator[tuple[AgentServer, Inbox, RunIdentity]]:
    ours = RunIdentity("lab", _fingerprint())
    inbox = Inbox()
    server = AgentServer(ServerConfig("far", run=ours), inbox)
    server.start()
    yield server, inbox, ours
    server.stop(grace=0)


@pytest.mark.parametrize("caller", [None, RunIdentity("other", "0123456789ab"), "same name, other settings"])
def test_calls_of_another_run_are_refused_with_failed_precondition(
        served: tuple[AgentServer, Inbox, RunIdentity], caller: RunIdentity | str | None,
        caplog: pytest.LogCaptureFixture) -> None:
    server, inbox, ours = served
    run = RunIdentity(ours.run_id, _fingerprint(seed=7)) if isinstance(caller, str) else caller
    client = PeerClient(server.address, "far", run=run)
    message = WeightsMessage("stranger", 0, np.zeros(10, np.float32))
    try:
        for _ in range(3):
            with pytest.raises(TransportError) as refused:
                client.call(message)
            assert refused.value.reason == "refused" and "FAILED_PRECONDITION" in str(refused.value)
    finally:
        client.close()
    assert inbox.received == []
    assert len([r for r in caplog.records if "refusing calls" in r.getMessage()]) == 1  # one line, not one per call


def test_a_call_of_the_same_run_is_served(served: tuple[AgentServer, Inbox, RunIdentity]) -> None:
    server, inbox, ours = served
    client = PeerClient(server.address, "far", run=ours)
    try:
        assert client.call(WeightsMessage("near", 0, np.zeros(10, np.float32))) is None
    finally:
        client.close()
    assert inbox.received == ["near"]


def test_the_data_is_agreed_and_fashion_mnist_keeps_the_fingerprint_of_runs_before_it() -> None:
    assert "data" not in agreed_settings(**BASE)
    assert _fingerprint(data_name="fashion-mnist", data_digest="anything") == _fingerprint()
    digits = _fingerprint(data_name="digits", data_digest="dcdcc9fd5285a213")
    assert digits != _fingerprint()
    assert _fingerprint(data_name="npz", data_digest="dcdcc9fd5285a213") != digits
    assert _fingerprint(data_name="digits", data_digest="0123456789abcdef") != digits


def test_the_model_is_agreed_and_the_published_mlp_keeps_the_fingerprint_of_runs_before_it(tmp_path: Path) -> None:
    assert _fingerprint(model=None) == _fingerprint()
    (tmp_path / "a.py").write_text("from torch import nn\n\ndef net(s, c):\n    return nn.Linear(s[0], c)\n")
    first = load_model(f"{tmp_path / 'a.py'}:net", (4,), 3)
    (tmp_path / "a.py").write_text("from torch import nn\n\ndef net(s, c):\n    return nn.Linear(s[0], c)  # v2\n")
    edited = load_model(f"{tmp_path / 'a.py'}:net", (4,), 3)
    cnn = load_model("cnn", (1, 28, 28), 10)
    fingerprints = {_fingerprint(model=json.dumps(model.identity(), sort_keys=True))
                    for model in (first, edited, cnn, MLPSpec((64, 100, 10)))}
    assert len(fingerprints) == 4 and _fingerprint() not in fingerprints  # another file, another run

"""Fuzzing the agent's message handler: whatever a peer sends, it is answered or refused with ValueError or
PermissionError (the server's INVALID_ARGUMENT and PERMISSION_DENIED), and refused input leaves no trace."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from edge_agent.agent.handler import AgentHandler
from edge_agent.agent.inbox import WeightsInbox
from edge_agent.agent.traffic import RoundTraffic
from edge_agent.learning.algorithms.ntk_dfl import NTKDFLConfig
from edge_agent.learning.exchange import NTKDFLMethod, Responder
from edge_agent.learning.messages import (
    ALL_FP32,
    CandidateRequest,
    CandidateScores,
    JacobianReply,
    JacobianRequest,
    Message,
    WeightsMessage,
)
from edge_agent.learning.mlp import MLPSpec
from edge_agent.transport.limits import MessageLimits

SPEC = MLPSpec()
D = SPEC.num_params
TAUS = len(NTKDFLConfig().evolution.taus)
LIMITS = MessageLimits(num_params=D, max_samples=3, classes=10, reply_width=D, max_candidates=TAUS)
FUZZ = settings(max_examples=80, deadline=2000, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MEMBERS = {"client-1", "client-2"}


def _handler() -> tuple[AgentHandler, list[str]]:
    rng = np.random.default_rng(0)
    x, y = rng.random((3, 784), dtype=np.float32), np.array([0, 1, 2])
    heard: list[str] = []
    handler = AgentHandler(Responder("client-0", x, y, NTKDFLMethod(SPEC, NTKDFLConfig())), WeightsInbox(),
                           RoundTraffic(ALL_FP32), on_message=heard.append, is_member=MEMBERS.__contains__,
                           rounds=lambda: (3, 7), limits=LIMITS)
    return handler, heard


HANDLER, HEARD = _handler()

values = st.sampled_from(["zeros", "small", "huge", "nan", "inf"])
shapes = st.sampled_from([(D,), (D - 1,), (D + 1,), (2,), (TAUS, D), (TAUS + 1, D), (1, D), (TAUS, 5), (3,)])


def _array(shape: tuple[int, ...], kind: str, seed: int) -> np.ndarray:
    array = np.random.default_rng(seed).normal(0, 0.01, shape).astype(np.float32)
    return {"zeros": np.zeros(shape, np.float32), "small": array, "huge": np.full(shape, 1e30, np.float32),
            "nan": np.where(array > 0, np.nan, array).astype(np.float32),
            "inf": np.where(array > 0, np.inf, array).astype(np.float32)}[kind]


messages = st.builds(
    lambda kind, sender, round_index, shape, value, seed: _message(kind, sender, round_index,
                                                                     _array(shape, value, seed)),
    st.sampled_from(["weights", "request", "candidates", "scores", "reply"]),
    st.sampled_from([*sorted(MEMBERS), "stranger", "client-0"]), st.integers(0, 2**32 - 1) | st.integers(0, 10),
    shapes, values, st.integers(0, 3))
plausible = st.builds(  # what a member sends: right shapes and rounds, honest or huge values
    lambda kind, sender, round_index, value, seed: _message(
        kind, sender, round_index, _array((D,) if kind != "candidates" else (TAUS, D), value, seed)),
    st.sampled_from(["weights", "request", "request", "candidates"]), st.sampled_from(sorted(MEMBERS)),
    st.integers(2, 8), st.sampled_from(["zeros", "small", "small", "huge"]), st.integers(0, 3))


def _message(kind: str, sender: str, round_index: int, array: np.ndarray) -> Message:
    if kind == "weights":
        return WeightsMessage(sender, round_index, array)
    if kind == "request":
        return JacobianRequest(sender, round_index, array)
    if kind == "candidates":
        return CandidateRequest(sender, round_index, np.atleast_2d(array))
    if kind == "scores":
        return CandidateScores(sender, round_index, array.ravel()[:TAUS])
    flat = array.ravel()
    return JacobianReply(sender, round_index, flat[:30].reshape(1, 10, -1) if flat.size >= 30 else flat,
                         np.zeros((1, 10), np.float32), np.zeros(1, np.int64))


def _state(handler: AgentHandler) -> Any:
    inbox = {r: {sender: id(m) for sender, m in by_sender.items()} for r, by_sender in handler.inbox._by_round.items()
             if by_sender}
    return (inbox, sorted(handler.responder._anchors), handler.traffic.by_round(), len(HEARD))


@FUZZ
@given(plausible | messages, st.sampled_from(["ipv4:127.0.0.1:5000", "mtls:client-1", "mtls:stranger"]))
def test_every_message_is_answered_or_refused_and_refused_ones_leave_no_trace(message: Message, peer: str) -> None:
    before = copy.deepcopy(_state(HANDLER))
    try:
        HANDLER.handle(message, peer)
    except (ValueError, PermissionError):
        assert _state(HANDLER) == before
        event("refused")
        return
    event(f"answered {type(message).__name__}")
    proven = peer == f"mtls:{message.sender}"
    assert message.sender in MEMBERS or proven  # only members (or certificate-proven boards) are served
    assert 3 <= message.round <= 7  # only rounds near the agent's own
    assert isinstance(message, WeightsMessage | JacobianRequest | CandidateRequest)

"""A poisoning member for the fleet tests and bench/bench_robust.py: a real `edge-agent run` (a valid member
certificate, the real wire) that trains as every agent does but poisons what it sends its neighbours.

    python tests/agent/poisoner.py ATTACK[,ATTACK...] run [edge-agent run options ...]

ATTACK, applied to every weights message, Jacobian reply and candidate score it sends (with several, round k uses
the k-th modulo their number, each in turn):
- noise: each tensor replaced by N(0, 1) draws;
- scale: each tensor times 100;
- constant: each tensor all 3.0;
- flip: its Jacobian replies' labels flipped (class c sent as 9 - c), every tensor honest.

It lives under tests/, outside the package, so no board can run it by accident; it patches only this process.
Replies are sent whole (--no-overlap is added), so each one passes the patched encoder.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from edge_agent.cli.main import cli
from edge_agent.learning.jacobian import DenseJacobian
from edge_agent.learning.messages import (
    ALL_FP32,
    CandidateScores,
    JacobianReply,
    Message,
    WeightsMessage,
    WireCodecs,
    wire_array,
)
from edge_agent.transport import client, server, wire

ATTACKS = ("noise", "scale", "constant", "flip")


def poisoned(message: Message, attacks: Sequence[str], rng: np.random.Generator) -> Message:
    """`message` as the round's attack sends it (requests, which only cost a neighbour compute, go out honest)."""
    attack = attacks[message.round % len(attacks)]
    if attack == "flip":
        return replace(message, labels=9 - message.labels) if isinstance(message, JacobianReply) else message

    def bad(values: Any) -> np.ndarray:
        array = np.asarray(values, dtype=np.float32)
        if attack == "noise":
            return rng.standard_normal(array.shape).astype(np.float32)
        if attack == "scale":
            return array * np.float32(100.0)
        return np.full(array.shape, 3.0, np.float32)
    if isinstance(message, WeightsMessage):
        return replace(message, weights=bad(message.weights))
    if isinstance(message, JacobianReply):
        values = wire_array(message.jacobian)
        return replace(message, jacobian=DenseJacobian(bad(values)), logits=bad(message.logits))
    if isinstance(message, CandidateScores):
        return replace(message, loss_sums=bad(message.loss_sums))
    return message


def main() -> None:
    attacks, args = sys.argv[1].split(","), sys.argv[2:]
    if not set(attacks) <= set(ATTACKS):
        raise SystemExit(f"unknown attack in {sys.argv[1]!r}; choose from {', '.join(ATTACKS)}")
    rng = np.random.default_rng(0)
    honest = wire.encode_message

    def encode(message: Message, codecs: WireCodecs = ALL_FP32) -> wire.EncodedMessage:
        return honest(poisoned(message, attacks, rng), codecs)
    client.encode_message = encode  # type: ignore[assignment]  # what it calls neighbours with
    server.encode_message = encode  # type: ignore[assignment]  # what it replies
    cli([*args, "--no-overlap"])


if __name__ == "__main__":
    main()

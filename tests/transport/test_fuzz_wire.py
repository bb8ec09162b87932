"""Fuzzing the frame decoder: whatever bytes arrive, `assemble` returns a message that fits this run or raises
WireError, and never allocates for a tensor the run's limits refuse."""

from __future__ import annotations

from unittest import mock

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.learning.codec import WIRE_DTYPE_OF
from edge_agent.learning.messages import WeightsMessage
from edge_agent.transport import wire
from edge_agent.transport.framing import chunk_frame
from edge_agent.transport.limits import MessageLimits
from edge_agent.transport.schema import KINDS, WireError, describe
from edge_agent.transport.wire import assemble
from edge_agent.v1 import agent_pb2 as pb

LIMITS = MessageLimits(num_params=32, max_samples=6, classes=3, reply_width=4, max_candidates=3)
# Bounded: about a thousand examples in all, none allowed 0.5 s; the same examples every run.
FUZZ = settings(max_examples=300, deadline=500, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

tensor_infos = st.builds(
    lambda name, dtype, shape, block, data, scales: pb.TensorInfo(
        name=name, dtype=dtype, shape=shape, block_size=block, data_bytes=data, scales_bytes=scales),
    st.sampled_from(["weights", "jacobian", "logits", "labels", "updates", "loss_sums", "x"]),
    st.sampled_from([*sorted(set(WIRE_DTYPE_OF.values())), "float64", ""]),
    st.lists(st.one_of(st.integers(0, 40), st.integers(0, 2**62)), max_size=4),
    st.integers(0, 300), st.integers(0, 2**40), st.integers(0, 2**20))
headers = st.builds(
    lambda kind, sender, round_index, samples, tensors: pb.MessageHeader(
        kind=kind, sender=sender, round=round_index, samples=samples, tensors=tensors),
    st.sampled_from([*KINDS, "Ack", "Nope", ""]), st.text(max_size=8), st.integers(0, 2**32 - 1),
    st.integers(0, 2**20), st.lists(tensor_infos, max_size=3))


def _allocations() -> mock._patch[mock.MagicMock]:
    return mock.patch.object(wire.np, "empty", wraps=np.empty)  # every tensor buffer assemble makes


def _assemble_checked(frames: list[bytes]) -> None:
    with _allocations() as empty:
        try:
            message = assemble(iter(frames), LIMITS.max_message_bytes, admit=LIMITS.check)
        except WireError:
            message = None
        allocated = sum(int(call.args[0]) for call in empty.call_args_list)
    assert allocated <= LIMITS.max_message_bytes
    if message is not None:
        LIMITS.check(describe(message))


@FUZZ
@given(st.lists(st.binary(max_size=48), max_size=5))
def test_random_bytes_are_a_message_that_fits_or_a_wire_error(frames: list[bytes]) -> None:
    _assemble_checked(frames)


@FUZZ
@given(headers, st.lists(st.binary(max_size=600), max_size=4))
def test_random_headers_with_random_chunks_never_allocate_beyond_the_runs_limits(
        header: pb.MessageHeader, chunks: list[bytes]) -> None:
    _assemble_checked([pb.Frame(header=header).SerializeToString(), *(chunk_frame(c) for c in chunks)])


@FUZZ
@given(st.integers(1, 32), st.lists(st.binary(max_size=200), max_size=3), st.integers(0, 10))
def test_valid_headers_with_wrong_payloads_are_wire_errors(n: int, chunks: list[bytes], round_index: int) -> None:
    header = pb.Frame(header=describe(WeightsMessage("a", round_index, np.zeros(n, np.float32)))).SerializeToString()
    _assemble_checked([header, *(chunk_frame(c) for c in chunks)])

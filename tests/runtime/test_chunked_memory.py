"""Chunking is what bounds the neighbour side's memory: one projected-Jacobian request for many samples, run whole
and in the Pi Zero 2 W's chunks, each in a fresh process whose peak RSS growth over a warmed-up start is measured.

Run whole, the kernels' intermediates grow with N; chunked, only the (N, C, m) result does. Both kernels an agent
can run are measured: ONNX Runtime (a board; torch refused) and the numpy reference a numpy agent runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from board_python import REFUSE_TORCH_AND_SCIPY

N, CHUNK = 1024, 64  # CHUNK: rpi-zero-2w's jacobian_chunk
CHILD = REFUSE_TORCH_AND_SCIPY + """
import json
import numpy as np
from edge_agent.agent.kernels import BackendKernels, ChunkedReferenceKernels
from edge_agent.agent.memory import peak_rss_mb
from edge_agent.learning.mlp import MLPSpec, init_weights
from edge_agent.learning.projection import ProjectionConfig, make_projection
from edge_agent.runtime.select import make_backend

kind, n, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) or None
spec = MLPSpec()
if kind == "reference":
    kernels = ChunkedReferenceKernels(spec, chunk or n)
else:
    kernels = BackendKernels(make_backend("onnxruntime", spec, dim=1024, chunk=chunk))
projection = make_projection(ProjectionConfig("tensorsketch", 1024, seed=0), spec, 0)
w, x = init_weights(spec, 0), np.random.default_rng(0).normal(size=(n, 784)).astype(np.float32)
kernels.projected_jacobian(w, x[:2], projection)  # sessions, sketch state and code paths warmed up on 2 samples
before = peak_rss_mb()
jt, _ = kernels.projected_jacobian(w, x, projection)
print(json.dumps({"growth_mb": peak_rss_mb() - before, "result_mb": jt.nbytes / 2**20}))
"""


def _request_growth(kind: str, chunk: int, cache: Path) -> tuple[float, float]:
    """(peak RSS growth, size of the result) in MiB for one request of N samples; chunk 0 runs it whole."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD, kind, str(N), str(chunk)], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["growth_mb"], result["result_mb"]


@pytest.mark.parametrize("kind", ["onnxruntime", "reference"])
def test_a_chunked_jacobian_request_needs_a_fraction_of_the_working_memory_of_a_whole_one(kind: str,
                                                                                        onnx_cache: Path) -> None:
    whole, result_mb = _request_growth(kind, 0, onnx_cache)
    chunked, chunked_result_mb = _request_growth(kind, CHUNK, onnx_cache)
    assert chunked_result_mb == result_mb == N * 10 * 1024 * 4 / 2**20  # the same (N, C, m) float32 result: 40 MiB
    # beyond the result: measured 86 MiB whole and 13 chunked (reference), 214 and 30 (onnxruntime)
    assert chunked - result_mb < (whole - result_mb) / 4, (whole, chunked)
    assert chunked < result_mb + 48

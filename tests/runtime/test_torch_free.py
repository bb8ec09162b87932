"""A board without torch: the onnxruntime backend runs every kernel, and a SPARK neighbourhood round, torch-free.

The parent exports the kernels (it has torch); a child process whose import system refuses torch and scipy loads
them and runs the forward pass, the projected Jacobian, the loss sums and one neighbourhood exchange in which every
neighbour answers through the onnxruntime backend. The child writes its results; the parent compares them with the
numpy path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from board_python import REFUSE_TORCH_AND_SCIPY

from edge_agent.learning.mlp import MLPSpec, init_weights
from edge_agent.learning.projection import ProjectionConfig, TensorSketchProjection, make_projection
from edge_agent.runtime.backend import SketchState
from edge_agent.runtime.onnx_backend import cache_directory
from edge_agent.runtime.select import make_backend

REPO = Path(__file__).resolve().parents[2]
SPEC = MLPSpec()

CHILD = REFUSE_TORCH_AND_SCIPY + """
import json
from pathlib import Path
import numpy as np
from edge_agent.learning.algorithms.spark import SparkConfig
from edge_agent.learning.exchange import Responder, SparkMethod, run_neighbourhood
from edge_agent.learning.jacobian import DenseJacobian
from edge_agent.learning.messages import CandidateScores, JacobianReply, JacobianRequest
from edge_agent.learning.mlp import MLPSpec
from edge_agent.learning.projection import ProjectionConfig, TensorSketchProjection, make_projection
from edge_agent.runtime.backend import SketchState
from edge_agent.runtime.select import make_backend

work, exported = Path(sys.argv[1]), Path(sys.argv[2])
data = np.load(work / "inputs.npz")
spec = MLPSpec()
try:
    make_backend("onnxruntime", spec, directory=work / "empty", dim=1024)
    missing = "no error"
except ValueError as error:
    missing = str(error)
try:
    make_backend("onnxruntime", spec, dim=1024)  # the cache (XDG_CACHE_HOME is empty) and no torch to fill it
    no_cache = "no error"
except RuntimeError as error:
    no_cache = str(error)
backend = make_backend("onnxruntime", spec, directory=exported, dim=1024)
projection = make_projection(ProjectionConfig("tensorsketch", 1024, seed=3), spec, 2)
jt, logits = backend.projected_jacobian(data["w"], data["x"], SketchState.from_projection(projection))
sums = backend.loss_sums(data["w"], data["updates"], data["x"], data["y"])

method = SparkMethod(spec, SparkConfig(), rounds=3)
members = ["a", "b", "c"]
shards = {m: (data["x"][20 * i : 20 * i + 20], data["y"][20 * i : 20 * i + 20]) for i, m in enumerate(members)}
anchors = {}

def on_board(message, member):
    x, y = shards[member]
    if isinstance(message, JacobianRequest):
        anchors[member] = message.weights
        state = SketchState.from_projection(method.projection(message.round))
        jt, f0 = backend.projected_jacobian(message.weights, x, state)
        return JacobianReply(member, message.round, DenseJacobian(jt), f0, y)
    steps = method.projection(message.round).lift(message.updates)
    return CandidateScores(member, message.round, backend.loss_sums(anchors[member], steps, x, y))

responders = {m: Responder(m, *shards[m], method) for m in members}
velocity = np.zeros(spec.num_params, dtype=np.float32)
board = run_neighbourhood(method, "a", data["w"], velocity, members, on_board, round_index=1)
reference = run_neighbourhood(method, "a", data["w"], velocity, members, lambda m, k: responders[k].handle(m), 1)
np.savez(work / "outputs.npz", logits=backend.logits(data["w"], data["x"]), jt=jt, jt_logits=logits, sums=sums,
         board_weights=board.weights, reference_weights=reference.weights)
print(json.dumps({"torch_loaded": "torch" in sys.modules, "missing": missing, "no_cache": no_cache,
                  "tau": [board.tau_index, reference.tau_index]}))
"""


def _run_child(script: str, *args: str, cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    if cache is not None:
        env["XDG_CACHE_HOME"] = str(cache)
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def _relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got.astype(np.float64) - want).max() / np.abs(want).max())


def test_backend_module_imports_without_torch() -> None:
    child = _run_child(REFUSE_TORCH_AND_SCIPY + "import edge_agent.runtime.backend, edge_agent.runtime.onnx_backend\n"
                       "print('torch' in sys.modules)")
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "False"


def test_onnxruntime_backend_runs_kernels_and_a_round_where_torch_cannot_be_imported(
        tmp_path: Path, onnx_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(onnx_cache))
    exported = cache_directory(SPEC, 1024)  # shipped to the board; the child's own cache stays empty
    (tmp_path / "empty").mkdir()
    rng = np.random.default_rng(5)
    w = init_weights(SPEC, 1)
    x, y = rng.normal(size=(60, SPEC.sizes[0])).astype(np.float32), rng.integers(0, 10, 60)
    updates = rng.normal(0, 0.01, (4, SPEC.num_params)).astype(np.float32)
    np.savez(tmp_path / "inputs.npz", w=w, x=x, y=y, updates=updates)

    child = _run_child(CHILD, str(tmp_path), str(exported), cache=tmp_path / "cache")
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert report["torch_loaded"] is False
    assert "no ONNX export" in report["missing"]
    assert "no ONNX kernels for m = 1024 here (none in" in report["no_cache"]
    assert report["tau"][0] == report["tau"][1]

    out = np.load(tmp_path / "outputs.npz")
    projection = make_projection(ProjectionConfig("tensorsketch", 1024, seed=3), SPEC, 2)
    assert isinstance(projection, TensorSketchProjection)
    reference = make_backend("numpy", SPEC)
    jt, logits = reference.projected_jacobian(w, x, SketchState.from_projection(projection))
    assert _relative_error(out["jt"], jt) <= 1e-4
    assert _relative_error(out["jt_logits"], logits) <= 1e-4
    assert _relative_error(out["logits"], reference.logits(w, x)) <= 1e-4
    assert _relative_error(out["sums"], reference.loss_sums(w, updates, x, y)) <= 1e-4
    assert _relative_error(out["board_weights"], out["reference_weights"]) <= 1e-4

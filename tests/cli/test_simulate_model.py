"""`--model` from the command line: the CNN and a user's factory train in `simulate`; a model that cannot be built
or cannot run where it is asked to is one `Error:` line and status 2, in simulate, run and export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
FACTORY = "from torch import nn\n\ndef net(input_shape, num_classes):\n" \
          "    return nn.Sequential(nn.Linear(input_shape[0], 8), nn.Tanh(), nn.Linear(8, num_classes))\n"


def edge_agent(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_agent", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV, stdin=subprocess.DEVNULL)


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    return lines[0]


def test_simulate_trains_the_cnn_on_images(tmp_path: Path) -> None:
    done = edge_agent("simulate", "--model", "cnn", "--data", "digits", "--setting", "smoke", "--rounds", "1",
                      "--clients", "4", "--samples", "12", "--workers", "1", "--solver", "euler",
                      "--out", str(tmp_path / "cnn"))  # 8x8 images: scoring 10,000 28x28 ones would take 30 s
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "cnn" / "summary.json").read_text())
    assert summary["config"]["model"] == "cnn"
    record = json.loads((tmp_path / "cnn" / "rounds.jsonl").read_text().splitlines()[0])
    assert record["bytes_per_client"] > 0 and 0.0 <= record["agg_accuracy"] <= 1.0


def test_simulate_trains_a_user_factory_on_user_data(tmp_path: Path) -> None:
    """SPARK from the command line, its requesters in worker processes (the model travels as its source); every
    method on a user model is held against the agents in tests/agent/test_agents_own_model.py."""
    (tmp_path / "mine.py").write_text(FACTORY)
    rng = np.random.default_rng(0)
    y = np.arange(300) % 3
    np.savez(tmp_path / "mine.npz", x=(rng.normal(size=(3, 10))[y] + rng.normal(size=(300, 10))).astype(np.float32),
             y=y)
    for algorithm in ("spark",):
        out = tmp_path / algorithm
        done = edge_agent("simulate", "--model", f"{tmp_path / 'mine.py'}:net", "--data", str(tmp_path / "mine.npz"),
                          "--algorithm", algorithm, "--setting", "smoke", "--rounds", "2", "--clients", "3",
                          "--samples", "40", "--workers", "2", "--solver", "euler", "--out", str(out))  # pickled
        assert done.returncode == 0, done.stderr
        records = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
        assert len(records) == 2 and records[-1]["agg_accuracy"] > 1 / 3


def test_a_model_that_cannot_be_built_is_one_line(tmp_path: Path) -> None:
    line = one_error_line(edge_agent("simulate", "--model", "resnet", "--out", str(tmp_path / "a")))
    assert "--model 'resnet'" in line
    (tmp_path / "broken.py").write_text("def net(input_shape, num_classes):\n    return None\n")
    line = one_error_line(edge_agent("simulate", "--model", f"{tmp_path / 'broken.py'}:net",
                                     "--out", str(tmp_path / "b")))
    assert "not a torch.nn.Module" in line


def test_run_asks_for_torch_for_a_model_whose_kernels_do_not_export(tmp_path: Path) -> None:
    line = one_error_line(edge_agent("run", "--shard", "0/4", "--setting", "smoke", "--insecure", "--model", "cnn",
                                     "--backend", "onnxruntime", "--no-mdns", "--peers", "127.0.0.1:9"))
    assert "--backend torch" in line
    line = one_error_line(edge_agent("export", "--profile", "rpi-4", "--model", "cnn", "--out", str(tmp_path / "k")))
    assert "only the mlp's kernels export" in line and "--backend torch" in line


def test_a_board_without_torch_trains_the_mlp_and_says_what_other_models_need(tmp_path: Path,
                                                                                board_cli: list[str]) -> None:
    done = subprocess.run([*board_cli, "simulate", "--model", "cnn", "--out", str(tmp_path / "cnn")],
                          capture_output=True, text=True, timeout=120, env=ENV, stdin=subprocess.DEVNULL)
    line = one_error_line(done)
    assert "need torch" in line and "pip install 'edge-agent[torch]'" in line

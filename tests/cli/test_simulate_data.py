"""`simulate --data`: digits and an npz of your own train and write records; a bad source is one line, status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def _simulate(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_agent", "simulate", "--setting", "smoke", "--workers", "1",
                           "--solver", "euler", "--out", str(tmp_path / "out"), *args],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})


def _rounds(tmp_path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (tmp_path / "out" / "rounds.jsonl").read_text().splitlines()]


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    return lines[0]


def five_class_npz(path: Path, n: int = 600) -> Path:
    """n samples of 64 features in 5 classes, each class a shifted Gaussian (learnable in a few rounds)."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % 5
    centres = rng.normal(size=(5, 64)).astype(np.float32)
    np.savez(path, x=(centres[y] + rng.normal(scale=0.5, size=(n, 64))).astype(np.float32), y=y)
    return path


def test_digits_train_and_the_summary_names_the_data(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    done = _simulate(tmp_path, "--data", "digits", "--rounds", "3")
    assert done.returncode == 0, done.stderr
    rounds = _rounds(tmp_path)
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert float(rounds[-1]["agg_accuracy"]) > 0.3  # type: ignore[arg-type]  # 10 classes: chance is 0.1
    config = json.loads((tmp_path / "out" / "summary.json").read_text())["config"]
    assert config["data"] == "digits" and len(config["data_digest"]) == 16


def test_an_npz_of_five_classes_trains_a_64_input_model(tmp_path: Path) -> None:
    path = five_class_npz(tmp_path / "mine.npz")
    done = _simulate(tmp_path, "--data", str(path), "--rounds", "2", "--algorithm", "dpsgd")
    assert done.returncode == 0, done.stderr
    rounds = _rounds(tmp_path)
    assert [r["round"] for r in rounds] == [0, 1] and float(rounds[-1]["agg_accuracy"]) > 0.4  # type: ignore[arg-type]
    weights = np.load(tmp_path / "out" / "state.npz")["weights"]
    assert weights.shape == (10, 64 * 100 + 100 + 100 * 5 + 5)  # (M, d) of the (64, 100, 5) MLP


def test_resuming_on_other_data_is_refused(tmp_path: Path) -> None:
    path = five_class_npz(tmp_path / "mine.npz")
    assert _simulate(tmp_path, "--data", str(path), "--rounds", "1", "--algorithm", "dpsgd").returncode == 0
    other = five_class_npz(tmp_path / "other.npz", n=300)
    done = _simulate(tmp_path, "--data", str(other), "--rounds", "2", "--algorithm", "dpsgd", "--resume")
    assert done.returncode == 1 and "data_digest" in done.stderr, done.stderr


@pytest.mark.parametrize(("source", "message"), [
    ("missing.npz", "Error: --data missing.npz: no such file: missing.npz"),
    ("mnist", "Error: --data mnist: unknown data source 'mnist'"),
    ("bad.npz", "Error: --data bad.npz: missing key 'y'"),
    ("text.npz", "Error: --data text.npz: text.npz is not a readable npz file"),
])
def test_a_bad_data_source_is_one_line_and_status_2(tmp_path: Path, source: str, message: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "bad.npz", x=np.zeros((10, 4), np.float32))
    (tmp_path / "text.npz").write_text("not an npz")
    done = subprocess.run([sys.executable, "-m", "edge_agent", "simulate", "--data", source, "--out", "out"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert _one_error_line(done).startswith(message)


def test_too_few_samples_for_the_setting_is_one_line(tmp_path: Path) -> None:
    path = five_class_npz(tmp_path / "small.npz", n=60)
    done = _simulate(tmp_path, "--data", str(path), "--rounds", "1")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "the training set has 50 samples, fewer than the 100 a dirichlet-overlap split" in done.stderr


def test_digits_without_scikit_learn_say_which_extra_to_install(tmp_path: Path) -> None:
    refuse_sklearn = ("import sys\n"
                      "class Refuse:\n"
                      "    def find_spec(self, name, path=None, target=None):\n"
                      "        if name.split('.')[0] == 'sklearn':\n"
                      "            raise ImportError('no sklearn here')\n"
                      "sys.meta_path.insert(0, Refuse())\n"
                      "from edge_agent.cli.main import cli\n"
                      "cli()\n")
    done = subprocess.run([sys.executable, "-c", refuse_sklearn, "simulate", "--data", "digits",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert _one_error_line(done) == "Error: --data digits needs scikit-learn: pip install 'edge-agent[data]'"

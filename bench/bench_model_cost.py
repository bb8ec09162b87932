"""What one projected Jacobian reply costs on each model path: seconds and peak memory, one core.

Usage: python bench/bench_model_cost.py [--samples 200] [--dim 1024] [--repeats 3] [--out FILE]
Each case runs in a fresh process with one thread (torch, BLAS): the MLP on its exact numpy kernels, the same MLP
as a torch module (same weights, same tensorsketch P) on the torch path, and the reference CNN (d = 333,526) with
its flat CountSketch, on the torch path by layers (C backward passes) and on torch.func's vmap over jacrev (what
a module with other layers gets). Reported per case: the best of `repeats` seconds for one reply of `samples`
Fashion-MNIST training images at m = `dim`; the reply's own peak above the RSS it started from, and the process's
peak from then on (VmHWM reset just before the replies, after torch, the model and the data were loaded: the
60,000 training images are dropped first, as a board holds only its shard).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CASES = {"mlp (exact numpy kernels)": "mlp", "mlp (torch, by layers)": "mlp-generic",
         "cnn (torch, by layers)": "cnn", "cnn (torch.func, vmap over jacrev)": "cnn-vmap"}


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def measure(case: str, samples: int, dim: int, repeats: int) -> dict[str, Any]:
    """In this process: the case's reply `repeats` times; seconds (best), peak RSS, the reply's own peak."""
    import torch

    from edge_agent.learning.data import load_fashion_mnist
    from edge_agent.learning.mlp import MLPSpec
    from edge_agent.learning.models.torch_module import TorchModuleModel
    from edge_agent.learning.projection import ProjectionConfig, make_projection

    torch.set_num_threads(1)
    train, _ = load_fashion_mnist()
    x = train.x[:samples].copy()  # not a view: the 60,000 images are freed below
    spec = MLPSpec()
    if case.startswith("cnn"):
        model: Any = TorchModuleModel("cnn", (1, 28, 28), 10)
        if case == "cnn-vmap":
            model._plan = None  # the path of a module with layers other than Linear and Conv
        projection = make_projection(ProjectionConfig("tensorsketch", dim, seed=0), model, 0)
    else:
        model = spec if case == "mlp" else TorchModuleModel(f"{Path(__file__).resolve()}:sequential_mlp", (784,), 10)
        projection = make_projection(ProjectionConfig("tensorsketch", dim, seed=0), spec, 0)
    w = model.init_weights(0)
    del train
    seconds = []
    before = _status_mb("VmRSS:")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := RSS now, so the next VmHWM is the reply's peak
    for _ in range(repeats):
        started = time.perf_counter()
        projected, _ = model.projected_jacobian(w, x, projection)
        seconds.append(time.perf_counter() - started)
    peak = _status_mb("VmHWM:")
    assert projected.shape == (samples, 10, dim)
    return {"params": int(model.num_params), "seconds": min(seconds), "reply_peak_mb": peak - before,
            "peak_mb": peak}


def sequential_mlp(input_shape: tuple[int, ...], num_classes: int) -> Any:
    """The 784-100-10 MLP as a torch module, in MLPSpec's flat layout."""
    from torch import nn
    return nn.Sequential(nn.Linear(input_shape[0], 100), nn.ReLU(), nn.Linear(100, num_classes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the table to this markdown file")
    parser.add_argument("--case", choices=sorted(CASES.values()), help=argparse.SUPPRESS)  # a child's one case
    args = parser.parse_args()
    if args.case:
        print(json.dumps(measure(args.case, args.samples, args.dim, args.repeats)))
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    rows = [f"One projected reply: N = {args.samples} Fashion-MNIST images, m = {args.dim}, one thread, best of "
            f"{args.repeats}.", "", "| model path | d | seconds | x the exact MLP | reply's own peak MB | "
            "process peak MB |", "|---|---|---|---|---|---|"]
    base = None
    for label, case in CASES.items():
        child = subprocess.run([sys.executable, __file__, "--case", case, "--samples", str(args.samples), "--dim",
                                str(args.dim), "--repeats", str(args.repeats)], env=env, capture_output=True,
                               text=True, check=True)
        result = json.loads(child.stdout.splitlines()[-1])
        base = base or result["seconds"]
        rows.append(f"| {label} | {result['params']:,} | {result['seconds']:.3g} | {result['seconds'] / base:.1f} | "
                    f"{result['reply_peak_mb']:.0f} | {result['peak_mb']:.0f} |")
        print(rows[-1], flush=True)
    text = "\n".join(rows)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

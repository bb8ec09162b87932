"""Kernel backends compared: one Jacobian request and one candidate scoring, time and peak memory per backend.

Usage: python bench/bench_backends.py [--n 200] [--dim 1024] [--candidates 4] [--repeats 5] [--threads K]
                                     [--backends numpy,torch,onnxruntime,onnxruntime@64]
Each backend runs in its own process (the onnxruntime one with torch refused at import, as on a board), so the
peak RSS (ru_maxrss) is that backend's whole footprint: interpreter, libraries, sessions and kernel work. Linux
carries ru_maxrss across exec, so this parent imports nothing heavy and exports in a process of its own.
Jacobian request = projected Jacobian J P (N, C, m) plus logits; scoring = loss sums of T lifted candidates.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BLOCK_TORCH = """
class _RefuseTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"{name} is refused: a board has no torch")
        return None
sys.meta_path.insert(0, _RefuseTorch())
"""


def measure(args: argparse.Namespace) -> dict[str, float]:
    """Runs in the child: median seconds of the two kernels over `repeats` after one warm-up, and peak RSS."""
    import numpy as np

    from edge_agent.learning.mlp import MLPSpec, init_weights
    from edge_agent.learning.projection import ProjectionConfig, TensorSketchProjection, make_projection
    from edge_agent.runtime.backend import SketchState, make_backend

    spec = MLPSpec()
    name, _, chunk = args.backend.partition("@")
    directory = Path(args.export) if name == "onnxruntime" else None
    backend = make_backend(name, spec, threads=args.threads, dim=args.dim, directory=directory,
                           chunk=int(chunk) if chunk else None)
    projection = make_projection(ProjectionConfig("tensorsketch", args.dim, seed=0), spec, 0)
    assert isinstance(projection, TensorSketchProjection)
    state = SketchState.from_projection(projection)
    rng = np.random.default_rng(0)
    w = init_weights(spec, 0)
    x, y = rng.normal(size=(args.n, spec.sizes[0])).astype(np.float32), rng.integers(0, 10, args.n)
    updates = projection.lift(rng.normal(0, 0.01, (args.candidates, args.dim)).astype(np.float32))
    timings: dict[str, list[float]] = {"jacobian": [], "scoring": []}
    for index in range(args.repeats + 1):
        start = time.perf_counter()
        backend.projected_jacobian(w, x, state)
        middle = time.perf_counter()
        backend.loss_sums(w, updates, x, y)
        end = time.perf_counter()
        if index > 0:
            timings["jacobian"].append(middle - start)
            timings["scoring"].append(end - middle)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"jacobian_s": statistics.median(timings["jacobian"]), "scoring_s": statistics.median(timings["scoring"]),
            "peak_rss_mb": peak_kib / 1024, "torch_loaded": float("torch" in sys.modules)}


def run_child(backend: str, args: argparse.Namespace, export: Path) -> dict[str, float]:
    """One backend (name or name@chunk) in a fresh process; an onnxruntime one cannot import torch."""
    flags = [f"--{key}={value}" for key, value in vars(args).items() if value is not None and key != "backends"]
    argv = [__file__, *flags, "--backend", backend, "--export", str(export)]
    script = (BLOCK_TORCH if backend.startswith("onnxruntime") else "") + (
        f"import runpy\nsys.argv = {argv!r}\nrunpy.run_path(sys.argv[0], run_name='__main__')\n")
    result: dict[str, float] = json.loads(_python("import sys\n" + script, backend).strip().splitlines()[-1])
    return result


def _python(script: str, what: str) -> str:
    """stdout of `script` in a fresh interpreter that can import edge_agent from this checkout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{what} process failed:\n{done.stderr}")
    return done.stdout


def table(results: dict[str, dict[str, float]]) -> str:
    """Markdown table with ratios to torch (lower is better for every column)."""
    base = results.get("torch")
    lines = ["| backend | Jacobian request (ms) | x torch | scoring T (ms) | x torch | peak RSS (MB) | x torch |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, row in results.items():
        cells = [name]
        for key, scale in (("jacobian_s", 1e3), ("scoring_s", 1e3), ("peak_rss_mb", 1.0)):
            ratio = f"{row[key] / base[key]:.2f}" if base else "-"
            cells += [f"{row[key] * scale:.1f}", ratio]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="samples per Jacobian request")
    parser.add_argument("--dim", type=int, default=1024, help="projection dimension m")
    parser.add_argument("--candidates", type=int, default=4, help="candidates T to score")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the library's)")
    parser.add_argument("--backends", default="numpy,torch,onnxruntime,onnxruntime@64",
                        help="comma-separated; name@K runs the kernels K samples at a time (jacobian_chunk)")
    parser.add_argument("--backend", default=None, help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--export", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend is not None:
        print(json.dumps(measure(args)))
        return
    with tempfile.TemporaryDirectory() as scratch:
        export = Path(scratch) / "onnx"
        start = time.perf_counter()
        _python(f"from pathlib import Path\nfrom edge_agent.learning.mlp import MLPSpec\n"
                f"from edge_agent.runtime.onnx_export import export_kernels\n"
                f"export_kernels(MLPSpec(), Path({str(export)!r}), dim={args.dim})\n", "export")
        print(f"exported the three kernels in {time.perf_counter() - start:.1f} s (torch import included)")
        results = {name: run_child(name, args, export) for name in args.backends.split(",")}
    torch_free = not any(row["torch_loaded"] for name, row in results.items() if name.startswith("onnxruntime"))
    print(f"N = {args.n}, m = {args.dim}, T = {args.candidates}, threads = {args.threads or 'default'}, "
          f"median of {args.repeats}; onnxruntime processes torch-free: {torch_free}")
    print(table(results))


if __name__ == "__main__":
    main()

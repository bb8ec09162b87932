"""Kernel backends compared: one Jacobian request, one candidate scoring and one full agent round, per backend.

Usage: python bench/bench_backends.py [--n 200] [--dim 1024] [--candidates 4] [--repeats 5] [--threads K]
                                     [--backends numpy,torch,onnxruntime,onnxruntime@64]
                                     [--round-backends torch,onnxruntime] [--agents 4] [--setting edge]
                                     [--rounds 5] [--profile rpi-zero-2w] [--agent-threads K] [--only requests|rounds]
Requests: each backend runs in its own process (the onnxruntime one with torch and scipy refused at import, as
on a board), so its peak RSS is that backend's whole footprint: interpreter, libraries, sessions and kernel work.
Jacobian request = projected Jacobian J P (N, C, m) plus logits; scoring = loss sums of T lifted candidates.
Rounds: per backend, `agents` real agent processes (`edge-agent run`, loopback, --no-mdns --peers, links
unlimited, the profile's chunk, precision and threads) run `rounds` SPARK rounds; the onnxruntime agents cannot
import torch or scipy. From their records: median seconds per round and per phase (round 0, which creates the
sessions, left out) and the peak RSS of the largest agent. Ratios are onnxruntime / torch (or to torch) from the
same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edge_agent.agent.launcher import LocalRun, free_loopback_ports

REFUSE_BOARD_MISSING = """
class _RefuseBoardMissing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "scipy"):
            raise ImportError(f"{name} is refused: a board has neither torch nor scipy")
        return None
sys.meta_path.insert(0, _RefuseBoardMissing())
"""
EXPORT = """
from edge_agent.learning.mlp import MLPSpec
from edge_agent.runtime.onnx_backend import cache_directory
from edge_agent.runtime.onnx_export import export_kernels
directory = cache_directory(MLPSpec(), {dim})
export_kernels(MLPSpec(), directory, dim={dim})
print(directory)
"""
REQUEST_FLAGS = ("n", "dim", "candidates", "repeats", "threads")
PHASES = ("average", "jacobian", "transfer", "evolve", "score", "total")


def measure(args: argparse.Namespace) -> dict[str, float]:
    """Runs in the child: median seconds of the two kernels over `repeats` after one warm-up, and peak RSS."""
    import numpy as np

    from edge_agent.agent.memory import peak_rss_mb
    from edge_agent.learning.mlp import MLPSpec, init_weights
    from edge_agent.learning.projection import ProjectionConfig, TensorSketchProjection, make_projection
    from edge_agent.runtime.backend import SketchState
    from edge_agent.runtime.select import make_backend

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
    return {"jacobian_s": statistics.median(timings["jacobian"]), "scoring_s": statistics.median(timings["scoring"]),
            "peak_rss_mb": peak_rss_mb(), "torch_loaded": float("torch" in sys.modules)}


def run_child(backend: str, args: argparse.Namespace, export: Path) -> dict[str, float]:
    """One backend (name or name@chunk) in a fresh process; an onnxruntime one cannot import torch."""
    flags = [f"--{key}={getattr(args, key)}" for key in REQUEST_FLAGS if getattr(args, key) is not None]
    argv = [__file__, *flags, "--backend", backend, "--export", str(export)]
    script = (REFUSE_BOARD_MISSING if backend.startswith("onnxruntime") else "") + (
        f"import runpy\nsys.argv = {argv!r}\nrunpy.run_path(sys.argv[0], run_name='__main__')\n")
    result: dict[str, float] = json.loads(_python("import sys\n" + script, backend).strip().splitlines()[-1])
    return result


def _env(**extra: str) -> dict[str, str]:
    """This environment, able to import edge_agent from this checkout."""
    path = os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, **extra}


def _python(script: str, what: str, **env: str) -> str:
    """stdout of `script` in a fresh interpreter that can import edge_agent from this checkout."""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=_env(**env),
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{what} process failed:\n{done.stderr}")
    return done.stdout


def timed_rounds(rounds: int) -> range:
    """The rounds whose medians are reported: round 0 creates sessions and warms caches, so it is left out unless
    it is the only one."""
    return range(1 if rounds > 1 else 0, rounds)


def agent_round(backend: str, args: argparse.Namespace, cache: Path, out: Path) -> dict[str, Any]:
    """`agents` agents on `backend` for `rounds` rounds; per-round medians and the largest peak from their records."""
    out.mkdir(parents=True)
    ports = free_loopback_ports(args.agents)
    peers = ",".join(f"127.0.0.1:{port}" for port in ports)
    cli = (REFUSE_BOARD_MISSING if backend == "onnxruntime" else "") + "from edge_agent.cli.main import cli\ncli()\n"
    threads = ["--threads", str(args.agent_threads)] if args.agent_threads else []
    env = _env(XDG_CACHE_HOME=str(cache), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    started = time.perf_counter()
    processes = [subprocess.Popen(
        [sys.executable, "-c", "import sys\n" + cli, "run", "--insecure", "--shard", f"{i}/{args.agents}",
         "--setting", args.setting,
         "--rounds", str(args.rounds), "--profile", args.profile, "--proj-dim", str(args.dim), "--backend", backend,
         *threads,
         "--port", str(port), "--no-mdns", "--peers", peers, "--uplink", "unlimited", "--downlink", "unlimited",
         "--latency", "0", "--wait-peers", "120", "--metrics", str(out / f"agent-{i}.jsonl"), "--quiet"],
        stdout=(out / f"agent-{i}.log").open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        for i, port in enumerate(ports)]
    run = LocalRun(out, processes)  # the files are named as launch_local_agents names them
    try:
        for process in processes:
            process.wait(timeout=1800)
    finally:
        run.stop()
    if run.failed():
        failed = run.failed()[0]
        raise RuntimeError(f"{backend} agent {failed} failed:\n{(out / f'agent-{failed}.log').read_text()[-3000:]}")
    records = run.records()
    timed = timed_rounds(args.rounds)
    phases = {phase: statistics.median(statistics.median(agent[k]["seconds"][phase] for agent in records)
                                       for k in timed) for phase in PHASES}
    return {"round_s": phases["total"], "phases": phases, "wall_s": time.perf_counter() - started,
            "peak_rss_mb": max(r["peak_rss_mb"] for agent in records for r in agent),
            "accuracy": statistics.mean(agent[-1]["test_accuracy"] for agent in records)}


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


def round_table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown table of one agent round per backend, with phase medians and ratios to torch."""
    base = results.get("torch")
    lines = ["| backend | round (s) | x torch | " + " | ".join(f"{p} (s)" for p in PHASES[:-1])
             + " | peak RSS (MB) | x torch | final test acc |",
             "|---|---:|---:|" + "---:|" * (len(PHASES) - 1) + "---:|---:|---:|"]
    for name, row in results.items():
        cells = [name, f"{row['round_s']:.2f}", f"{row['round_s'] / base['round_s']:.2f}" if base else "-",
                 *(f"{row['phases'][p]:.2f}" for p in PHASES[:-1]), f"{row['peak_rss_mb']:.0f}",
                 f"{row['peak_rss_mb'] / base['peak_rss_mb']:.2f}" if base else "-", f"{row['accuracy']:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="samples per Jacobian request")
    parser.add_argument("--dim", type=int, default=1024,
                        help="projection dimension m (requests, and the agents' --proj-dim)")
    parser.add_argument("--candidates", type=int, default=4, help="candidates T to score")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the library's)")
    parser.add_argument("--backends", default="numpy,torch,onnxruntime,onnxruntime@64",
                        help="comma-separated; name@K runs the kernels K samples at a time (jacobian_chunk)")
    parser.add_argument("--round-backends", default="torch,onnxruntime", help="agents' --backend, comma-separated")
    parser.add_argument("--agents", type=int, default=4, help="agent processes per round benchmark (M)")
    parser.add_argument("--setting", default="edge", help="the agents' --setting")
    parser.add_argument("--rounds", type=int, default=5, help="SPARK rounds per backend (the first is not timed)")
    parser.add_argument("--profile", default="rpi-zero-2w", help="the agents' board profile (chunk, precision)")
    parser.add_argument("--agent-threads", type=int, default=None, help="agents' --threads (default: profile's)")
    parser.add_argument("--only", choices=["requests", "rounds"], default=None, help="run one of the two parts")
    parser.add_argument("--backend", default=None, help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--export", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend is not None:
        print(json.dumps(measure(args)))
        return
    with tempfile.TemporaryDirectory() as scratch:
        cache = Path(scratch) / "cache"  # XDG_CACHE_HOME: the agents find the exports where a board keeps them
        start = time.perf_counter()
        printed = _python(EXPORT.format(dim=args.dim), "export", XDG_CACHE_HOME=str(cache))
        export = Path(printed.strip().splitlines()[-1])  # the cache directory the exports went to
        print(f"exported the three kernels in {time.perf_counter() - start:.1f} s (torch import included)")
        if args.only != "rounds":
            results = {name: run_child(name, args, export) for name in args.backends.split(",")}
            torch_free = not any(row["torch_loaded"] for name, row in results.items() if name.startswith("onnxruntime"))
            print(f"\nOne request: N = {args.n}, m = {args.dim}, T = {args.candidates}, threads = "
                  f"{args.threads or 'default'}, median of {args.repeats}; onnxruntime processes torch-free: "
                  f"{torch_free}")
            print(table(results))
        if args.only != "requests":
            rounds = {name: agent_round(name, args, cache, Path(scratch) / f"agents-{name}")
                      for name in args.round_backends.split(",")}
            timed = timed_rounds(args.rounds)
            print(f"\nOne agent round: {args.agents} agents, setting {args.setting}, profile {args.profile}, threads "
                  f"{args.agent_threads or 'profile'}, median of rounds "
                  f"{timed.start}..{timed.stop - 1} of the per-round median over agents; peak = largest agent; wall: "
                  + ", ".join(f"{name} {row['wall_s']:.0f} s" for name, row in rounds.items()))
            print(round_table(rounds))


if __name__ == "__main__":
    main()

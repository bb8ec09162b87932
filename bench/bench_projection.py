"""Projection families: kernel fidelity and the cost of answering one Jacobian request, in one run.

For each family and m: relative Frobenius error of the projected kernel against the exact kernel on real
Fashion-MNIST (N samples at the seeded initial weights, mean over seeds), time and peak traced memory of
answering a Jacobian request (exact factors + J P) as ratios to dense `gaussian`, and the dense-equivalent
rate 2*N*C*d*m / time next to this machine's float32 GEMM rate. A second table gives each family's kernel
error after each wire precision's round trip (the codec's per-block scales meet each family's value spread),
with the reply's Jacobian bytes.

Usage: python bench/bench_projection.py [--dims 256,512,1024,2048] [--samples 200] [--seeds 2]
                                        [--precisions fp32,fp16,int8,int4]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable

import numpy as np

from edge_agent.learning.codec import CodecConfig, decode, encode, encoded_size
from edge_agent.learning.data import load_fashion_mnist
from edge_agent.learning.jacobian import DenseJacobian, mlp_jacobian
from edge_agent.learning.mlp import MLPSpec, init_weights
from edge_agent.learning.projection import ProjectionConfig, make_projection

FAMILIES = {"gaussian": ("gaussian", 1), "sparse": ("sparse", 1), "kron r=1": ("kron", 1), "kron r=4": ("kron", 4),
            "tensorsketch": ("tensorsketch", 1)}


def best_of(repeats: int, work: Callable[[], object]) -> float:
    """Fastest wall time of `repeats` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_mib(work: Callable[[], object]) -> float:
    """Peak memory traced by tracemalloc while `work` runs (numpy allocations are traced)."""
    tracemalloc.start()
    work()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def gemm_gflops() -> float:
    """This machine's float32 GEMM rate on a 2048 x 2048 product."""
    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    seconds = best_of(3, lambda: a @ a)
    return 2 * 2048**3 / seconds / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", default="256,512,1024,2048")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--precisions", default="fp32,fp16,int8,int4")
    args = parser.parse_args()
    spec = MLPSpec()
    train, _ = load_fashion_mnist()
    x = train.x[: args.samples]
    w = init_weights(spec, 0)
    jac, _ = mlp_jacobian(spec, w, x)
    exact = jac.kernel()
    n, c, d = jac.shape
    gemm = gemm_gflops()
    print(f"N = {n}, C = {c}, d = {d}; float32 GEMM on this machine: {gemm:.0f} GFLOP/s\n")
    print("| family | m | kernel error | request time (s) | time vs gaussian | peak MiB | mem vs gaussian | "
          "dense-equiv. GFLOP/s |")
    print("|---|---|---|---|---|---|---|---|")
    codecs = [CodecConfig(precision) for precision in args.precisions.split(",")]
    wire_rows = []  # the second table, from the same projections as the first
    for m in (int(v) for v in args.dims.split(",")):
        rows = {}
        for name, (family, rank) in FAMILIES.items():
            errors = []
            wire_errors: dict[CodecConfig, list[float]] = {codec: [] for codec in codecs}
            for seed in range(args.seeds):
                projection = make_projection(ProjectionConfig(family, m, rank, seed), spec, 0)  # type: ignore[arg-type]
                projected = projection.project(jac)
                errors.append(kernel_error(projected, exact))
                for codec in codecs:
                    wire_errors[codec].append(kernel_error(decode(encode(projected, codec)), exact))
            wire_rows += [f"| {name} | {m} | {codec.precision} | {float(np.mean(wire_errors[codec])):.4f} | "
                          f"{encoded_size(n * c * m, codec):,} |" for codec in codecs]
            projection = make_projection(ProjectionConfig(family, m, rank, 0), spec, 0)  # type: ignore[arg-type]

            def answer(p: object = projection) -> object:
                factors, _ = mlp_jacobian(spec, w, x)
                return p.project(factors)  # type: ignore[attr-defined]

            seconds = best_of(args.repeats, answer)
            rows[name] = (float(np.mean(errors)), seconds, peak_mib(answer))
        base = rows["gaussian"]
        for name, (error, seconds, mib) in rows.items():
            print(f"| {name} | {m} | {error:.4f} | {seconds:.3f} | {seconds / base[1]:.3f} | {mib:.0f} | "
                  f"{mib / base[2]:.2f} | {2 * n * c * d * m / seconds / 1e9:,.0f} |", flush=True)
    print("\n| family | m | precision | kernel error after the wire | Jacobian bytes per reply |")
    print("|---|---|---|---|---|")
    print("\n".join(wire_rows), flush=True)


def kernel_error(projected: np.ndarray, exact: np.ndarray) -> float:
    """Relative Frobenius error of the kernel of projected Jacobians (N, C, m) against the exact kernel."""
    return float(np.linalg.norm(DenseJacobian(projected).kernel() - exact) / np.linalg.norm(exact))


if __name__ == "__main__":
    main()

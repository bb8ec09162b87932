"""Would a Jacobian reply be cheaper sent as a truncated SVD of its projected rows?

Usage: python bench/bench_lowrank_reply.py [--clients 6] [--ranks 64,128,256,512] [--proj-dim 1024]
                                           [--state RUN/VARIANT/state.npz]
A neighbour replies with its projected Jacobian, N*C rows of m values. Sent as rank-r factors (N*C x r and r x m)
it would carry (N*C + m) * r values instead of N*C * m. This measures, for the first clients of the published
split on their own samples, the relative Frobenius error of the kernel against the exact kernel: projected (what
the wire carries now) and projected then truncated to each rank, with the share of the rows' energy each rank
keeps. Weights are the seeded initial ones, or each client's weights from a saved run with --state.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from bench_paper import DEFAULT_SPLIT
from bench_projection import kernel_error

from edge_agent.deploy.profiles import PROJECTIONS
from edge_agent.learning.data import TRAIN_SIZE, load_fashion_mnist
from edge_agent.learning.jacobian import mlp_jacobian
from edge_agent.learning.mlp import MLPSpec, init_weights
from edge_agent.learning.partition import load_partition
from edge_agent.learning.projection import ProjectionConfig, make_projection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=6, help="first clients of the split to measure")
    parser.add_argument("--ranks", default="64,128,256,512")
    parser.add_argument("--proj-dim", type=int, default=1024)
    parser.add_argument("--projection", default="tensorsketch", choices=PROJECTIONS)
    parser.add_argument("--partition", type=Path, default=DEFAULT_SPLIT)
    parser.add_argument("--state", type=Path, help="state.npz of a simulate or bench_paper run (its clients' weights)")
    args = parser.parse_args()
    if not args.partition.exists():
        parser.error(f"the split {args.partition} is not there; pass --partition FILE")
    ranks = [int(r) for r in args.ranks.split(",")]
    spec = MLPSpec()
    train, _ = load_fashion_mnist()
    splits = load_partition(args.partition, args.clients, n_train=TRAIN_SIZE)
    weights, label = [init_weights(spec, 0)] * args.clients, "initial weights"
    if args.state is not None:
        with np.load(args.state) as data:
            weights = list(data["weights"].astype(np.float32)[: args.clients])
            label = f"weights after round {int(data['rounds_done'])} of {json.loads(str(data['config']))['algorithm']}"
    projection = make_projection(ProjectionConfig(args.projection, args.proj_dim, 1, 0), spec, 0)
    projected_errors: list[float] = []
    truncated: dict[int, tuple[list[float], list[float]]] = {r: ([], []) for r in ranks}  # errors, energy kept
    rows_total = 0
    for k in range(args.clients):
        jac, _ = mlp_jacobian(spec, weights[k], train.x[splits[k]])
        exact = jac.kernel()
        projected = projection.project(jac)
        n, c, m = projected.shape
        rows_total += n * c
        projected_errors.append(kernel_error(projected, exact))
        u, s, vt = np.linalg.svd(projected.reshape(n * c, m), full_matrices=False)
        energy = np.cumsum(s**2) / np.sum(s**2)
        for r in ranks:
            low = (u[:, :r] * s[:r]) @ vt[:r]
            truncated[r][0].append(kernel_error(low.reshape(n, c, m), exact))
            truncated[r][1].append(float(energy[min(r, len(energy)) - 1]))
    rows = rows_total / args.clients
    print(f"{args.clients} clients of {args.partition.name}, {label}; {args.projection}, m = {args.proj_dim}; "
          f"{rows:.0f} rows (N*C) per reply on average")
    print("| reply | kernel error | energy kept | values sent vs projected |")
    print("|---|---|---|---|")
    print(f"| projected, every value | {np.mean(projected_errors):.4f} | 1 | 1 |")
    for r in ranks:
        errors, kept = truncated[r]
        share = (rows + args.proj_dim) * r / (rows * args.proj_dim)
        print(f"| rank {r} | {np.mean(errors):.4f} | {np.mean(kept):.3f} | {share:.2f} |")


if __name__ == "__main__":
    main()

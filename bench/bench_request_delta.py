"""Would the Jacobian request's weights be cheaper as a low-precision delta against the exchanged weights?

Usage: python bench/bench_request_delta.py RUN/VARIANT/state.npz [--requesters 100]
A requester i sends each neighbour wbar_i, its neighbourhood average, though the neighbour already holds w_i from
the round's exchange. This measures, on a saved run's weights and the graph of its next round, the relative error
of the wbar_i a neighbour would reconstruct: sent whole in int8, or as w_i (as exchanged in the run's weights
codec) plus wbar_i - w_i in int4 or int8.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edge_agent.learning.algorithms.ntk_dfl import average_weights
from edge_agent.learning.codec import CodecConfig, decode, encode
from edge_agent.learning.messages import WeightsMessage
from edge_agent.learning.topology import TopologyConfig, client_ids, neighbours


def decoded(values: np.ndarray, codec: CodecConfig) -> np.ndarray:
    """What a receiver gets from `values` sent in `codec`."""
    return decode(encode(values, codec))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("state", type=Path, help="state.npz of a simulate or bench_paper run")
    parser.add_argument("--requesters", type=int, default=100, help="requesters to average over (the first ones)")
    args = parser.parse_args()
    with np.load(args.state) as data:
        weights = data["weights"].astype(np.float32)
        config = json.loads(str(data["config"]))
        rounds_done = int(data["rounds_done"])
    weights_codec = CodecConfig(**config.get("weights_codec", {}))
    ids = client_ids(len(weights))
    topology = TopologyConfig(kind=config["topology"], degree=config["kappa"], seed=config["seed"])
    graph = neighbours(topology, ids, rounds_done)
    exchanged = {member: decoded(weights[k], weights_codec) for k, member in enumerate(ids)}
    errors: dict[str, list[float]] = {"int8 whole": [], "int4 delta": [], "int8 delta": []}
    spread = []
    for k, member in enumerate(ids[:args.requesters]):
        wbar = average_weights(weights[k], [WeightsMessage(j, rounds_done, exchanged[j]) for j in graph[member]])
        delta, norm = wbar - exchanged[member], float(np.linalg.norm(wbar))
        spread.append(float(np.linalg.norm(delta)) / norm)
        errors["int8 whole"].append(float(np.linalg.norm(decoded(wbar, CodecConfig("int8")) - wbar)) / norm)
        for name, codec in (("int4 delta", CodecConfig("int4")), ("int8 delta", CodecConfig("int8"))):
            errors[name].append(float(np.linalg.norm(exchanged[member] + decoded(delta, codec) - wbar)) / norm)
    print(f"{args.state}: round {rounds_done + 1}, {len(spread)} requesters, weights in {weights_codec.precision}")
    print(f"  |wbar_i - w_i| / |wbar_i|: {np.mean(spread):.4f}")
    for name, values in errors.items():
        print(f"  relative error of wbar_i sent as {name}: {np.mean(values):.2e}")


if __name__ == "__main__":
    main()

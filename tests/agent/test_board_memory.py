"""Raspberry Pi Zero 2 W agents (their profile's onnxruntime kernels and Jacobian chunk, torch and scipy refused,
static peers on loopback) keep every SPARK round of the edge setting under the profile's memory budget, as their
records report it. Each requester holds 4 x 200 samples' projected Jacobians: the setting `make demo` runs."""

import json
import os
import uuid
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

from edge_agent.deploy.profiles import find_profile

RunAgents = Callable[[list[list[str]], dict[str, str]], list[str]]  # the run_agents fixture
AGENTS, ROUNDS = 4, 2


def test_zero_2w_agents_keep_each_round_under_the_profile_memory_budget(
        tmp_path: Path, onnx_cache: Path, board_cli: list[str], free_ports: Callable[[int], list[int]],
        run_agents: RunAgents) -> None:
    profile = find_profile("rpi-zero-2w")
    assert (profile.runtime.backend, profile.runtime.jacobian_chunk) == ("onnxruntime", 64)
    ports = free_ports(AGENTS)
    peers = ",".join(f"127.0.0.1:{port}" for port in ports)
    service = f"_ea-{uuid.uuid4().hex[:8]}._tcp.local."
    run_agents([
        [*board_cli, "run", "--insecure", "--shard", f"{i}/{AGENTS}", "--setting", "edge", "--rounds", str(ROUNDS),
         "--profile", "rpi-zero-2w", "--port", str(ports[i]), "--no-mdns", "--peers", peers,
         "--service-type", service, "--uplink", "unlimited", "--downlink", "unlimited", "--latency", "0",
         "--wait-peers", "60", "--metrics", str(tmp_path / f"agent-{i}.jsonl"), "--quiet"]
        for i in range(AGENTS)],
        {**os.environ, "OPENBLAS_NUM_THREADS": "1", "XDG_CACHE_HOME": str(onnx_cache)})
    for i in range(AGENTS):
        lines = [json.loads(line) for line in (tmp_path / f"agent-{i}.jsonl").read_text().splitlines()]
        rounds = [line for line in lines if line["record"] == "agent-round"]
        assert [r["round"] for r in rounds] == list(range(ROUNDS))
        peaks = [r["peak_rss_mb"] for r in rounds]
        # a high-water mark (the kernel syncs per-thread RSS counters lazily: it may read a fraction of a MiB lower)
        assert all(later >= earlier - 1 for earlier, later in pairwise(peaks))
        # more than the interpreter alone: the mark covers the data, the sessions and the round's work
        assert all(100 < peak < profile.runtime.memory_budget_mb for peak in peaks), peaks

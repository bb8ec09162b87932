"""A fleet's links shaped by the kernel (root, `ip`, `tc`): one network namespace per agent on a shared bridge.

Agent i runs in namespace TAG-i with address 10.204.0.(i+1)/24 on a veth whose other end sits on a bridge in the
hub namespace TAG-hub. Its uplink is a tbf on that veth's egress and its downlink a tbf on an ifb its ingress is
redirected to (transport.kernel_link's shaping, one access link per agent). This kernel has no netem, so the link's
latency stays in the agent's throttle (`run --latency`) while the rate is the kernel's; the agents' own rate limit
is off. mDNS does not cross into the namespaces reliably, so each agent is given the others as static peers.
Removing the namespaces removes everything made in them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.agent.launcher import LocalRun
from edge_agent.learning.topology import client_ids
from edge_agent.transport.kernel_link import VETH, KernelLinkError, _ip, _shape, _wait_for_carrier
from edge_agent.transport.rates import parse_bitrate
from edge_agent.transport.throttle import LinkModel

SUBNET, PREFIX_LENGTH, PORT = "10.204.0", 24, 50051
BRIDGE = "ea-br"
MAX_AGENTS = 250


@dataclass
class NamespaceRun(LocalRun):
    """Agent processes in namespaces of their own; stopping them also removes the namespaces."""

    namespaces: list[str] = field(default_factory=list)

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            errors = []
            for name in reversed(self.namespaces):
                try:
                    _ip("netns", "del", name)
                except KernelLinkError as error:
                    errors.append(str(error))
            self.namespaces.clear()
            if errors:
                raise KernelLinkError("; ".join(errors))


def address(index: int) -> str:
    return f"{SUBNET}.{index + 1}"


def set_up(count: int, rate: str, tag: str) -> list[str]:
    """The hub and `count` agent namespaces, each agent's link shaped to `rate` both ways; their names, hub first
    (on failure, whatever was made is removed and KernelLinkError raised)."""
    if not 3 <= count <= MAX_AGENTS:
        raise ValueError(f"a kernel-shaped fleet has 3 to {MAX_AGENTS} agents, got {count}")
    bits = parse_bitrate(rate)
    model = LinkModel(uplink_bits=bits, downlink_bits=bits)
    hub = f"{tag}-hub"
    made: list[str] = []
    try:
        _ip("netns", "add", hub)
        made.append(hub)
        _ip("-n", hub, "link", "add", BRIDGE, "type", "bridge")
        _ip("-n", hub, "link", "set", BRIDGE, "up")
        for index in range(count):
            name, port = f"{tag}-{index}", f"ea-p{index}"
            _ip("netns", "add", name)
            made.append(name)
            _ip("-n", name, "link", "set", "lo", "up")
            _ip("link", "add", VETH, "netns", name, "type", "veth", "peer", "name", port, "netns", hub)
            _ip("-n", hub, "link", "set", port, "master", BRIDGE)
            _ip("-n", hub, "link", "set", port, "up")
            _ip("-n", name, "addr", "add", f"{address(index)}/{PREFIX_LENGTH}", "dev", VETH)
            _ip("-n", name, "link", "set", VETH, "up")
            _shape(name, model)
        for name in made[1:]:
            _wait_for_carrier(name)
    except BaseException:
        for name in reversed(made):
            with contextlib.suppress(KernelLinkError):
                _ip("netns", "del", name)
        raise
    return made


def launch_in_namespaces(count: int, rate: str, out: Path, agent_args: list[str]) -> NamespaceRun:
    """`count` agents, agent i in namespace TAG-i on 10.204.0.(i+1):PORT with its link shaped to `rate` both ways,
    the others its static peers."""
    tag = f"eab{os.getpid() % 100000}-{secrets.token_hex(2)}"
    namespaces = set_up(count, rate, tag)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    run = NamespaceRun(out, [], namespaces)
    ids = client_ids(count)
    try:
        for index in range(count):
            peers = ",".join(f"{address(j)}:{PORT}" for j in range(count) if j != index)
            command = ["ip", "netns", "exec", namespaces[index + 1], sys.executable, "-m", "edge_agent", "run",
                       "--shard", f"{index}/{count}", "--id", ids[index], "--host", address(index),
                       "--port", str(PORT), "--no-mdns", "--peers", peers,
                       "--metrics", str(out / f"agent-{index}.jsonl"), "--checkpoint-dir", str(out / "checkpoints"),
                       *agent_args]
            log = (out / f"agent-{index}.log").open("wb")
            run.processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                  stdin=subprocess.DEVNULL, env=env))
    except BaseException:
        run.stop()
        raise
    return run

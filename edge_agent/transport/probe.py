"""A sink agent and timed calls to it, each a process of its own, so a link test can put them in two namespaces.

`python -m edge_agent.transport.probe serve --host H` prints the port it listens on, then serves until its
standard input closes. `python -m edge_agent.transport.probe send ADDRESS --payload BYTES [--repeats R]` opens
the connection with one small call, then sends a Jacobian reply of about BYTES payload bytes R times, with the
application throttle unlimited, and prints one JSON line: the reply's payload and gRPC wire bytes and the
seconds of each call. The parent side, `sink_process` and `timed_sends`, takes a `wrap` of the argv that places
the process (e.g. `lambda argv: link.command(0, argv)` for a `KernelLink`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from edge_agent.learning.jacobian import DenseJacobian
from edge_agent.learning.messages import JacobianReply, Message, WeightsMessage, payload_bytes
from edge_agent.transport.client import PeerClient
from edge_agent.transport.contract import TransportError
from edge_agent.transport.schema import describe
from edge_agent.transport.server import AgentServer, ServerConfig
from edge_agent.transport.wire import DEFAULT_CHUNK_SIZE, predicted_wire_bytes

SINK_ID = "sink"
N, C = 200, 10  # samples and classes of the reply; its width follows from the payload asked for
Wrap = Callable[[list[str]], list[str]]


class Sink:
    """Accepts every message with an Ack."""

    def handle(self, message: Message, peer: str) -> Message | None:
        return None


@dataclass(frozen=True)
class SendResult:
    """What one sender process measured: the reply's payload and wire bytes, and the seconds of each call."""

    payload_bytes: int
    wire_bytes: int
    seconds: tuple[float, ...]


def jacobian_reply(payload: int) -> JacobianReply:
    """A Jacobian reply (N, C, m) with m chosen so its payload is about `payload` bytes (fp32, seeded values)."""
    width = max(1, round((payload - N * C * 4 - N * 4) / (N * C * 4)))
    jacobian = np.random.default_rng(0).standard_normal((N, C, width), dtype=np.float32)
    return JacobianReply("probe", 0, DenseJacobian(jacobian), np.zeros((N, C), np.float32), np.arange(N) % C)


def serve_until_stdin_closes(host: str) -> None:
    with AgentServer(ServerConfig(SINK_ID, host=host), Sink()) as server:
        print(server.port, flush=True)
        sys.stdin.read()


def send(address: str, payload: int, repeats: int, timeout: float) -> SendResult:
    """One small call to open the connection, then `repeats` timed calls with the reply."""
    reply = jacobian_reply(payload)
    client = PeerClient(address, SINK_ID)
    try:
        _open(client, timeout)
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            client.call(reply, timeout=timeout)
            seconds.append(time.perf_counter() - start)
    finally:
        client.close()
    wire = predicted_wire_bytes(describe(reply), client.wire.chunk_size)
    return SendResult(payload_bytes(reply), wire, tuple(seconds))


def _open(client: PeerClient, timeout: float) -> None:
    """A small call, retried until `timeout`: the connection is up, and none of it is in the timed calls."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.call(WeightsMessage("probe", 0, np.ones(4, np.float32)), timeout=timeout)
            return
        except TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@dataclass(frozen=True)
class SinkProcess:
    """A running `serve`: its port and its process."""

    port: int
    process: subprocess.Popen[str]


@contextlib.contextmanager
def sink_process(host: str, wrap: Wrap = list) -> Iterator[SinkProcess]:
    """Starts `serve` (its argv passed through `wrap`), yields it once it listens, and always stops it."""
    process = subprocess.Popen(wrap(_module_argv("serve", "--host", host)), stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"the sink did not start (exit status {process.wait(10)})")
        yield SinkProcess(int(line), process)
    finally:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            process.communicate(timeout=10)  # closes stdin: the sink stops
        if process.poll() is None:
            process.kill()
            process.wait()


def timed_sends(address: str, payload: int, repeats: int = 1, wrap: Wrap = list, timeout: float = 120) -> SendResult:
    """Runs `send` in a process of its own (its argv passed through `wrap`) and returns what it measured."""
    argv = _module_argv("send", address, "--payload", str(payload), "--repeats", str(repeats),
                        "--timeout", str(timeout))
    done = subprocess.run(wrap(argv), capture_output=True, text=True, timeout=timeout + 30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the sender failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return SendResult(result["payload_bytes"], result["wire_bytes"], tuple(result["seconds"]))


def _module_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge_agent.transport.probe", *args]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m edge_agent.transport.probe", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)
    serve = verbs.add_parser("serve", help="serve a sink until stdin closes; print the port first")
    serve.add_argument("--host", default="127.0.0.1")
    sender = verbs.add_parser("send", help="time calls with a Jacobian reply; print JSON")
    sender.add_argument("address")
    sender.add_argument("--payload", type=int, default=DEFAULT_CHUNK_SIZE)
    sender.add_argument("--repeats", type=int, default=1)
    sender.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    if args.verb == "serve":
        serve_until_stdin_closes(args.host)
    else:
        result = send(args.address, args.payload, args.repeats, args.timeout)
        print(json.dumps({"payload_bytes": result.payload_bytes, "wire_bytes": result.wire_bytes,
                          "seconds": list(result.seconds)}))


if __name__ == "__main__":
    main()

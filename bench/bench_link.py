"""Link benchmark: goodput on throttled loopback links, wire overhead per message, and unthrottled gRPC vs raw TCP.

Usage: python bench/bench_link.py [--seconds 2] [--repeats 10]
Goals: goodput >= 95% of the configured rate; wire overhead < 1%; an 8 MB projected Jacobian reply through gRPC
at >= half the rate of a raw TCP socket copy of the same bytes (both receivers in a separate process).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import statistics
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

import numpy as np

from edge_agent.learning.codec import CodecConfig
from edge_agent.learning.jacobian import DenseJacobian
from edge_agent.learning.messages import (
    CandidateRequest,
    CandidateScores,
    JacobianReply,
    JacobianRequest,
    Message,
    WeightsMessage,
    payload_bytes,
)
from edge_agent.transport.client import PeerClient
from edge_agent.transport.schema import describe
from edge_agent.transport.server import AgentServer, ServerConfig
from edge_agent.transport.throttle import LinkModel, LinkShaper
from edge_agent.transport.wire import DEFAULT_CHUNK_SIZE, encode_message, predicted_wire_bytes

Row = tuple[str, ...]
D, C, N, M, TAUS = 79_510, 10, 200, 1024, 4  # SPEC: MLP parameters, classes, samples, SPARK m, candidates


class Sink:
    """Accepts every message with an Ack."""

    def handle(self, message: Message, peer: str) -> Message | None:
        return None


def spark_reply() -> JacobianReply:
    """One SPARK Jacobian reply at the SPEC's reference scale: (200, 10, 1024) floats, 8.2 MB at fp32."""
    rng = np.random.default_rng(0)
    jacobian = rng.standard_normal((N, C, M), dtype=np.float32)
    return JacobianReply("a", 0, DenseJacobian(jacobian), np.zeros((N, C), np.float32), np.arange(N) % C)


def goodput_rows(seconds: float) -> list[Row]:
    """Both agents on the named link (sender uplink, receiver downlink), one message of `seconds` at the rate."""
    rows: list[Row] = []
    for mbit in (1, 10, 100):
        model = LinkModel(uplink_bits=mbit * 1e6, downlink_bits=mbit * 1e6)
        message = WeightsMessage("a", 0, np.ones(int(mbit * 1e6 / 8 * seconds) // 4, np.float32))
        with AgentServer(ServerConfig("b"), Sink(), shaper=LinkShaper(model)) as server:
            client = PeerClient(server.address, "b", shaper=LinkShaper(model))
            start = time.perf_counter()
            client.call(message, timeout=10 * seconds + 10)
            elapsed = time.perf_counter() - start
            client.close()
        goodput = payload_bytes(message) * 8 / elapsed / 1e6
        rows.append((f"{mbit} Mbit/s", f"{payload_bytes(message) / 1e6:.2f} MB", f"{elapsed:.3f} s",
                     f"{goodput:.2f} Mbit/s", f"{goodput / mbit:.1%}"))
    return rows


def overhead_rows() -> list[Row]:
    """wire / payload - 1 of every round message at the SPEC's sizes, from 1 MiB chunks and 16 KiB frames."""
    zeros = np.broadcast_to(np.float32(0), (N, C, D))  # a stand-in: only the shape is read
    messages: list[tuple[str, Message, CodecConfig]] = [
        ("weights (d)", WeightsMessage("a", 0, np.zeros(D, np.float32)), CodecConfig()),
        ("Jacobian request (d)", JacobianRequest("a", 0, np.zeros(D, np.float32)), CodecConfig()),
        ("SPARK reply (N,C,m) fp32", spark_reply(), CodecConfig()),
        ("SPARK reply (N,C,m) int8", spark_reply(), CodecConfig("int8")),
        ("NTK-DFL reply (N,C,d) fp32", JacobianReply("a", 0, DenseJacobian(zeros), zeros[:, :, 0],
                                                     np.zeros(N, np.int64)), CodecConfig()),
        ("candidates (T,d)", CandidateRequest("a", 0, np.zeros((TAUS, D), np.float32)), CodecConfig()),
        ("scores (T)", CandidateScores("a", 0, np.zeros(TAUS, np.float32)), CodecConfig()),
    ]
    rows: list[Row] = []
    for name, message, codec in messages:
        payload = payload_bytes(message, codec)
        header = describe(message, codec)
        big, small = (predicted_wire_bytes(header, chunk) for chunk in (DEFAULT_CHUNK_SIZE, 16 * 1024))
        rows.append((name, f"{payload:,}", f"{big:,}", f"{big / payload - 1:.4%}", f"{small / payload - 1:.4%}"))
    return rows


def measured_overhead_row() -> Row:
    """The 8 MB reply through gRPC: the bytes the ledgers counted, against the prediction."""
    reply = spark_reply()
    with AgentServer(ServerConfig("b"), Sink()) as server:
        client = PeerClient(server.address, "b")
        client.call(reply, timeout=60)
        client.close()
        counters = server.ledger.link("a")
    predicted = predicted_wire_bytes(describe(reply), DEFAULT_CHUNK_SIZE)
    return ("SPARK reply via gRPC (counted)", f"{counters.payload_received:,}", f"{counters.wire_received:,}",
            f"{counters.wire_received / counters.payload_received - 1:.4%}",
            "= predicted" if counters.wire_received == predicted else f"predicted {predicted:,}")


def _serve_grpc(pipe: Connection) -> None:
    with AgentServer(ServerConfig("b"), Sink()) as server:
        pipe.send(server.address)
        pipe.recv()  # until the parent is done


def _serve_tcp(pipe: Connection, size: int) -> None:
    buffer = memoryview(bytearray(size))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        pipe.send(listener.getsockname()[1])
        while True:
            connection, _ = listener.accept()
            with connection:
                received = 0
                while received < size:
                    n = connection.recv_into(buffer[received:])
                    if n == 0:
                        return
                    received += n
                connection.sendall(b"k")  # the Ack


def throughput_rows(repeats: int) -> list[Row]:
    """An 8 MB reply unthrottled on loopback through gRPC, and the same bytes through a raw TCP socket."""
    reply = spark_reply()
    encoded = encode_message(reply)
    raw = b"".join(bytes(part) for part in encoded.parts)
    context = mp.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_serve_grpc, args=(child,), daemon=True)
    process.start()
    client = PeerClient(parent.recv(), "b")
    grpc_times = _timed(lambda: client.call(reply, timeout=60), repeats)
    client.close()
    parent.send("stop")
    process.join(10)

    parent, child = context.Pipe()
    process = context.Process(target=_serve_tcp, args=(child, len(raw)), daemon=True)
    process.start()
    port = parent.recv()

    def tcp_copy() -> None:
        with socket.create_connection(("127.0.0.1", port)) as connection:
            connection.sendall(raw)
            connection.recv(1)

    tcp_times = _timed(tcp_copy, repeats)
    process.kill()
    mb = len(raw) / 1e6
    rows: list[Row] = [(name, f"{mb:.2f} MB", f"{mb / min(t):.0f} MB/s", f"{mb / statistics.median(t):.0f} MB/s")
            for name, t in (("gRPC (encode, frames, decode)", grpc_times), ("raw TCP socket copy", tcp_times))]
    ratio = min(tcp_times) / min(grpc_times), statistics.median(tcp_times) / statistics.median(grpc_times)
    rows.append(("gRPC / raw TCP", "", f"{ratio[0]:.0%}", f"{ratio[1]:.0%}"))
    return rows


def _timed(call: Callable[[], object], repeats: int) -> list[float]:
    call()  # warm up: connection, allocator, thread pools
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def print_table(title: str, header: Row, rows: list[Row]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each throttled transfer")
    parser.add_argument("--repeats", type=int, default=10, help="timed repeats of the loopback transfer")
    args = parser.parse_args()
    print_table("Goodput on a throttled loopback link (goal >= 95% of the rate)",
                ("link", "payload", "time", "goodput", "of rate"), goodput_rows(args.seconds))
    print_table("Wire overhead = wire / payload - 1 (goal < 1%)",
                ("message", "payload B", "wire B (1 MiB chunks)", "overhead", "16 KiB frames"),
                [*overhead_rows(), measured_overhead_row()])
    print_table("8 MB projected Jacobian reply, unthrottled loopback (goal: gRPC >= 50% of raw TCP)",
                ("path", "bytes", "best", "median"), throughput_rows(args.repeats))


if __name__ == "__main__":
    main()

"""Link benchmark: goodput on throttled loopback links, wire overhead per message, and unthrottled gRPC vs raw TCP.

Usage: python bench/bench_link.py [--seconds 2] [--repeats 10] [--kernel-tc]
--kernel-tc (root, ip, tc) adds the same transfers between two network namespaces on a veth pair whose rate tc
shapes (tbf on egress, ifb on ingress), server and client as processes of their own, application throttle off.
tc counts Ethernet frames, so TCP payload tops out at 1448/1514 = 95.6% of the rate there.
Goals: goodput >= 95% of the configured rate; wire overhead < 1%; an 8 MB projected Jacobian reply through gRPC
at >= half the rate of a raw TCP socket copy of the same bytes (both receivers in a separate process).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from multiprocessing.connection import Connection
from typing import Any

import grpc
import numpy as np

from edge_agent.learning.codec import CodecConfig
from edge_agent.learning.jacobian import DenseJacobian
from edge_agent.learning.messages import (
    ALL_FP32,
    CandidateRequest,
    CandidateScores,
    JacobianReply,
    JacobianRequest,
    Message,
    WeightsMessage,
    WireCodecs,
    payload_bytes,
)
from edge_agent.transport.client import PeerClient
from edge_agent.transport.kernel_link import KernelLink, KernelLinkConfig, line_rate_share, unavailable_reason
from edge_agent.transport.probe import Sink, sink_process, timed_sends
from edge_agent.transport.schema import describe
from edge_agent.transport.server import GRPC_OPTIONS, AgentServer, ServerConfig
from edge_agent.transport.throttle import LinkModel, LinkShaper
from edge_agent.transport.wire import DEFAULT_CHUNK_SIZE, encode_message, predicted_wire_bytes

Row = tuple[str, ...]
D, C, N, M, TAUS = 79_510, 10, 200, 1024, 4  # SPEC: MLP parameters, classes, samples, SPARK m, candidates


def spark_reply() -> JacobianReply:
    """One SPARK Jacobian reply at the SPEC's reference scale: (200, 10, 1024) floats, 8.2 MB at fp32."""
    rng = np.random.default_rng(0)
    jacobian = rng.standard_normal((N, C, M), dtype=np.float32)
    return JacobianReply("a", 0, DenseJacobian(jacobian), np.zeros((N, C), np.float32), np.arange(N) % C)


def goodput_rows(seconds: float, kernel: bool) -> list[Row]:
    """Per rate: one message of `seconds` at the rate through the application throttle on loopback, and (with
    `kernel`) a Jacobian reply of the same payload across a tc-shaped veth link, application throttle unlimited."""
    rows: list[Row] = []
    for mbit in (1, 10, 100):
        payload, elapsed = throttle_transfer(mbit, seconds)
        row: Row = (f"{mbit} Mbit/s", f"{payload / 1e6:.2f} MB", f"{elapsed:.3f} s",
                    f"{payload * 8 / elapsed / 1e6 / mbit:.1%}")
        if kernel:
            payload, elapsed = kernel_transfer(mbit, seconds)
            share = payload * 8 / elapsed / 1e6 / mbit
            row += (f"{elapsed:.3f} s", f"{share:.1%}", f"{share / line_rate_share():.1%}")
        rows.append(row)
    return rows


def throttle_transfer(mbit: float, seconds: float) -> tuple[int, float]:
    """Both agents on the named link (sender uplink, receiver downlink): (payload bytes, seconds)."""
    model = LinkModel(uplink_bits=mbit * 1e6, downlink_bits=mbit * 1e6)
    message = WeightsMessage("a", 0, np.ones(int(mbit * 1e6 / 8 * seconds) // 4, np.float32))
    with AgentServer(ServerConfig("b"), Sink(), shaper=LinkShaper(model)) as server:
        client = PeerClient(server.address, "b", shaper=LinkShaper(model))
        start = time.perf_counter()
        client.call(message, timeout=10 * seconds + 10)
        elapsed = time.perf_counter() - start
        client.close()
    return payload_bytes(message), elapsed


def kernel_transfer(mbit: float, seconds: float) -> tuple[int, float]:
    """Server and client processes in two namespaces, both access links shaped by tc: (payload bytes, seconds)."""
    model = LinkModel(uplink_bits=mbit * 1e6, downlink_bits=mbit * 1e6)
    with KernelLink(KernelLinkConfig(model, model)) as link:
        server = link.addresses[0]
        with sink_process(server, lambda argv: link.command(0, argv)) as sink:
            result = timed_sends(f"{server}:{sink.port}", int(mbit * 1e6 / 8 * seconds),
                                 wrap=lambda argv: link.command(1, argv), timeout=10 * seconds + 10)
    return result.payload_bytes, result.seconds[0]


def overhead_rows() -> list[Row]:
    """wire / payload - 1 of every round message at the SPEC's sizes, from 1 MiB chunks and 16 KiB frames."""
    zeros = np.broadcast_to(np.float32(0), (N, C, D))  # a stand-in: only the shape is read
    int8_jacobian = WireCodecs(jacobian=CodecConfig("int8"))
    messages: list[tuple[str, Message, WireCodecs]] = [
        ("weights (d)", WeightsMessage("a", 0, np.zeros(D, np.float32)), ALL_FP32),
        ("Jacobian request (d)", JacobianRequest("a", 0, np.zeros(D, np.float32)), ALL_FP32),
        ("SPARK reply (N,C,m) fp32", spark_reply(), ALL_FP32),
        ("SPARK reply (N,C,m) int8", spark_reply(), int8_jacobian),
        ("NTK-DFL reply (N,C,d) fp32", JacobianReply("a", 0, DenseJacobian(zeros), zeros[:, :, 0],
                                                     np.zeros(N, np.int64)), ALL_FP32),
        ("candidates (T,d)", CandidateRequest("a", 0, np.zeros((TAUS, D), np.float32)), ALL_FP32),
        ("scores (T)", CandidateScores("a", 0, np.zeros(TAUS, np.float32)), ALL_FP32),
    ]
    rows: list[Row] = []
    for name, message, codecs in messages:
        payload = payload_bytes(message, codecs)
        header = describe(message, codecs)
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


class Replier:
    """Answers every message with the same Jacobian reply: the direction a round's replies really take."""

    def __init__(self, reply: JacobianReply) -> None:
        self.reply = reply

    def handle(self, message: Message, peer: str) -> Message | None:
        return self.reply


def _serve_grpc(pipe: Connection, replies: bool) -> None:
    with AgentServer(ServerConfig("b"), Replier(spark_reply()) if replies else Sink()) as server:
        pipe.send(server.address)
        pipe.recv()  # until the parent is done


def _serve_bytes(pipe: Connection) -> None:
    """grpcio alone: a stream of bytes messages in, read and dropped, one small message back."""

    def call(messages: Iterator[bytes], context: object) -> Iterator[bytes]:
        for _ in messages:
            pass
        yield b"k"

    server = grpc.server(futures.ThreadPoolExecutor(4), options=GRPC_OPTIONS)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "bench.Bytes", {"Call": grpc.stream_stream_rpc_method_handler(call)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    pipe.send(port)
    pipe.recv()
    server.stop(0)


def _serve_tcp(pipe: Connection, size: int) -> None:
    buffer = memoryview(bytearray(size))

    def copies(listener: socket.socket) -> None:
        while True:
            connection, _ = listener.accept()
            with connection:
                received = 0
                while received < size:
                    n = connection.recv_into(buffer[received:])
                    if n == 0:
                        break
                    received += n
                connection.sendall(b"k")  # the Ack

    with socket.create_server(("127.0.0.1", 0)) as listener:
        threading.Thread(target=copies, args=(listener,), daemon=True).start()
        pipe.send(listener.getsockname()[1])
        pipe.recv()


@contextlib.contextmanager
def _server_process(target: Callable[..., None], *args: object) -> Iterator[Any]:
    """A server in a spawned process: yields what it sends first (its address or port), always stops it."""
    parent, child = mp.get_context("spawn").Pipe()
    process = mp.get_context("spawn").Process(target=target, args=(child, *args), daemon=True)
    process.start()
    try:
        yield parent.recv()
    finally:
        parent.send("stop")
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()


def throughput_rows(repeats: int) -> list[Row]:
    """An 8 MB reply unthrottled on loopback four ways, every server in a process of its own, the four timed in
    turn within each repeat (so a change in the machine's load hits all of them alike): our gRPC path with the
    client streaming the reply (the goal's figure) and with the server streaming it back as in a round; grpcio
    alone carrying the same bytes as 1 MiB messages with no framing of ours (an upper bound for our path); and a
    raw TCP socket copy of the same bytes (a new connection each time, one receive buffer reused)."""
    reply = spark_reply()
    raw = b"".join(bytes(part) for part in encode_message(reply).parts)
    request = JacobianRequest("a", 0, np.zeros(4, np.float32))
    with contextlib.ExitStack() as stack:
        push = PeerClient(stack.enter_context(_server_process(_serve_grpc, False)), "b")
        pull = PeerClient(stack.enter_context(_server_process(_serve_grpc, True)), "b")
        bytes_port = stack.enter_context(_server_process(_serve_bytes))
        tcp_port = stack.enter_context(_server_process(_serve_tcp, len(raw)))
        channel = stack.enter_context(grpc.insecure_channel(f"127.0.0.1:{bytes_port}", options=GRPC_OPTIONS))
        bytes_call = channel.stream_stream("/bench.Bytes/Call")
        view = memoryview(raw)

        def grpcio_alone() -> None:
            chunk = DEFAULT_CHUNK_SIZE
            for _ in bytes_call(bytes(view[i : i + chunk]) for i in range(0, len(raw), chunk)):
                pass

        def tcp_copy() -> None:
            with socket.create_connection(("127.0.0.1", tcp_port)) as connection:
                connection.sendall(raw)
                connection.recv(1)

        paths: dict[str, Callable[[], object]] = {
            "gRPC, client streams the reply": lambda: push.call(reply, timeout=60),
            "gRPC, server streams it back": lambda: pull.call(request, timeout=60),
            "grpcio alone, no framing of ours": grpcio_alone,
            "raw TCP socket copy": tcp_copy,
        }
        times = _timed_in_turn(paths, repeats)
        push.close()
        pull.close()
    mb = len(raw) / 1e6
    tcp = times["raw TCP socket copy"]
    return [(name, f"{mb:.2f} MB", f"{mb / min(t):.0f} MB/s", f"{mb / statistics.median(t):.0f} MB/s",
             f"{min(tcp) / min(t):.0%}", f"{statistics.median(tcp) / statistics.median(t):.0%}")
            for name, t in times.items()]


def _timed_in_turn(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    for call in calls.values():
        call()  # warm up: connection, allocator, thread pools
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
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
    parser.add_argument("--kernel-tc", action="store_true",
                        help="also shape the rate with tc between two network namespaces (needs root, ip, tc)")
    args = parser.parse_args()
    header: Row = ("link", "payload", "throttle time", "throttle goodput / rate")
    if args.kernel_tc:
        reason = unavailable_reason()
        if reason is not None:
            parser.error(f"--kernel-tc: {reason}")
        header += ("tc time", "tc goodput / rate", f"of TCP max ({line_rate_share():.1%})")
    print_table("Goodput on a throttled link (goal >= 95% of the rate)", header,
                goodput_rows(args.seconds, args.kernel_tc))
    print_table("Wire overhead = wire / payload - 1 (goal < 1%)",
                ("message", "payload B", "wire B (1 MiB chunks)", "overhead", "16 KiB frames"),
                [*overhead_rows(), measured_overhead_row()])
    print_table("8 MB projected Jacobian reply, unthrottled loopback (goal: gRPC >= 50% of raw TCP)",
                ("path", "bytes", "best", "median", "of TCP (best)", "of TCP (median)"), throughput_rows(args.repeats))


if __name__ == "__main__":
    main()

"""Kernel links: gRPC between two network namespaces shaped by tc takes the shaped time, and nothing is left behind.

The tests that create namespaces skip, with the reason, unless this runs as root with ip, tc, veth, ifb, tbf and
u32/mirred available; CI runs as root, so there they run.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from edge_agent.transport.kernel_link import (
    KernelLink,
    KernelLinkConfig,
    KernelLinkError,
    line_rate_share,
    namespaces,
    unavailable_reason,
)
from edge_agent.transport.probe import sink_process, timed_sends
from edge_agent.transport.throttle import LinkModel

TWO_MBIT = LinkModel(uplink_bits=2e6, downlink_bits=2e6)


@pytest.fixture(scope="module")
def kernel_links() -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


def assert_removed(link: KernelLink) -> None:
    listed = namespaces()
    for name in link.namespaces:
        assert name not in listed and not Path("/run/netns", name).exists()
    root_links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=True).stdout
    assert "ea-veth" not in root_links and "ea-ifb" not in root_links


@pytest.mark.usefixtures("kernel_links")
def test_400kb_through_grpc_across_a_2mbit_tc_link_takes_the_shaped_time() -> None:
    link = KernelLink(KernelLinkConfig(TWO_MBIT, TWO_MBIT))
    with link:
        server = link.addresses[0]
        with sink_process(server, lambda argv: link.command(0, argv)) as sink:
            result = timed_sends(f"{server}:{sink.port}", 400_000, wrap=lambda argv: link.command(1, argv),
                                 timeout=30)
    assert sink.process.returncode == 0  # the server stopped when asked, so nothing kept the namespace alive
    assert_removed(link)
    # tc counts Ethernet frames: the gRPC bytes plus TCP/IP and Ethernet headers per full segment.
    expected = result.wire_bytes * 8 / 2e6 / line_rate_share()
    [seconds] = result.seconds
    assert result.payload_bytes == pytest.approx(400_000, rel=0.01)
    assert 0.9 * expected < seconds < 1.15 * expected, f"{seconds:.3f} s against {expected:.3f} s expected"


@pytest.mark.usefixtures("kernel_links")
def test_a_failure_inside_the_link_still_removes_the_namespaces() -> None:
    link = KernelLink(KernelLinkConfig(TWO_MBIT, LinkModel()))
    with pytest.raises(RuntimeError, match="inside"), link:
        assert set(link.namespaces) <= set(namespaces())
        raise RuntimeError("inside")
    assert_removed(link)


@pytest.mark.usefixtures("kernel_links")
def test_a_failed_setup_removes_what_it_made_and_leaves_a_namespace_it_did_not_make() -> None:
    link = KernelLink()
    foreign = link.namespaces[1]
    subprocess.run(["ip", "netns", "add", foreign], check=True)
    try:
        with pytest.raises(KernelLinkError, match=f"netns add {foreign}"), link:
            pass
        assert link.namespaces[0] not in namespaces() and foreign in namespaces()
    finally:
        subprocess.run(["ip", "netns", "del", foreign], check=True)


def test_a_kernel_link_refuses_latency_it_cannot_shape() -> None:
    with pytest.raises(ValueError, match="netem"):
        KernelLinkConfig(LinkModel.parse("2mbit", "2mbit", "20ms"))


def test_names_carry_the_pid_and_commands_run_inside_a_namespace() -> None:
    link = KernelLink(KernelLinkConfig(tag=f"ea{os.getpid()}-t"))
    assert link.namespaces == (f"ea{os.getpid()}-t-a", f"ea{os.getpid()}-t-b")
    assert link.command(1, ["true"]) == ["ip", "netns", "exec", f"ea{os.getpid()}-t-b", "true"]
    assert KernelLink().namespaces != KernelLink().namespaces  # a random part: two links in one process differ


def test_a_full_tcp_segment_leaves_1448_of_1514_bytes_to_payload() -> None:
    assert line_rate_share() == pytest.approx(1448 / 1514)

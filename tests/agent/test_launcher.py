"""Tests for edge_agent.agent.launcher's port picking (tests/cli/test_demo.py runs the launch itself)."""

import socket

from edge_agent.agent.launcher import free_loopback_ports


def test_free_loopback_ports_are_distinct_and_bindable() -> None:
    ports = free_loopback_ports(5)
    assert len(set(ports)) == 5
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))

"""The agent's early port check: a port still held by a listener is refused in one line, but one whose last server
left connections in TIME_WAIT (an agent restarted on its fixed port) can be listened on again, as gRPC itself can."""

import socket
import time

import pytest

from edge_agent.transport.server import _check_bindable


def test_a_port_in_time_wait_after_a_stopped_server_passes_the_check() -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the server closes first, so its side of the connection waits in TIME_WAIT
    listener.close()
    time.sleep(0.2)
    client.close()
    time.sleep(0.2)
    _check_bindable("127.0.0.1", port)


def test_a_port_with_a_listener_fails_the_check_in_one_line() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}: Address already in use"):
            _check_bindable("127.0.0.1", port)

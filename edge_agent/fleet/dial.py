"""Reach agents to ask them (`status`, `inspect`): targets as host:port or agent ids found on mDNS, over mutual
TLS with an operator's certificate when the agent speaks TLS, in plaintext when it runs --insecure.

Every way of not getting an answer is an `UnansweredError` with one line that says what to do about it.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from edge_agent.discovery.mdns import InterfacesType, MdnsBrowser
from edge_agent.discovery.peers import PeerRecord
from edge_agent.transport.client import PeerClient
from edge_agent.transport.contract import TransportError
from edge_agent.transport.tls import ClusterTls, IdentityError, TlsFiles

T = TypeVar("T")
ADDRESS = re.compile(r"(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(?P<port>\d{1,5})")
CALL_TIMEOUT_S = 5.0


class UnansweredError(RuntimeError):
    """An agent that could not be asked: unknown, not listening, not an agent, refusing us, gone (one line)."""


@dataclass(frozen=True)
class Target:
    """Where to ask: the address, and the agent id when it is known (from mDNS, or after a TLS handshake)."""

    host: str
    port: int
    agent_id: str | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def name(self) -> str:
        return f"{self.agent_id} at {self.address}" if self.agent_id else self.address


def parse_address(text: str) -> Target | None:
    """host:port as a Target; None when `text` is not an address (then it may be an agent id)."""
    match = ADDRESS.fullmatch(text)
    if match is None:
        return None
    port = int(match["port"])
    if not 1 <= port <= 65535:
        raise ValueError(f"{text!r:.60}: port {port} is not in 1..65535")
    return Target(match["host"].strip("[]"), port)


def browse(service_type: str, run: str | None, seconds: float, interfaces: InterfacesType,
           stop: threading.Event | None = None) -> list[PeerRecord]:
    """The agents (of `run`, when given) that answer on mDNS within `seconds` (or until `stop` is set), by run,
    shard and id."""
    with MdnsBrowser(service_type, interfaces) as browser:
        found = [r for r in browser.sweep(seconds, stop).values() if r is not None and (run is None or r.run == run)]
    return sorted(found, key=lambda r: (r.run, r.shard, r.agent_id))


def operator_tls(certs: Path, identity: str) -> ClusterTls:
    """The operator's credentials from a cluster certs folder (IdentityError, one line, when missing)."""
    return ClusterTls(TlsFiles.in_folder(certs, identity))


class Connection:
    """A channel to one agent, plaintext or mutual TLS as the agent speaks, and its calls as one-line failures."""

    def __init__(self, target: Target, tls: ClusterTls | None, timeout: float = CALL_TIMEOUT_S) -> None:
        self.target, self.timeout = target, timeout
        refused = _tcp_refusal(target, timeout)
        if refused is not None:
            raise UnansweredError(f"nothing answers on {target.address} ({refused}): is that the agent's gRPC port? "
                             "`edge-agent peers` lists them")
        peer_id = None
        if tls is not None:  # a handshake with our certificate; an --insecure agent fails it and is asked in plaintext
            try:
                peer_id = tls.probe(target.host, target.port, timeout)
            except IdentityError as error:
                if speaks_tls(target, timeout):
                    raise UnansweredError(f"{target.name} refused our certificate or showed one not of our cluster: "
                                     f"{error}") from None
        elif speaks_tls(target, timeout):
            raise UnansweredError(f"{target.name} speaks mutual TLS: give --certs DIR with a certificate from its "
                             "cluster CA (`edge-agent certs issue operator --operator --dir DIR`)")
        tls_agent = peer_id is not None
        if peer_id is not None:
            if target.agent_id is not None and peer_id != target.agent_id:
                raise UnansweredError(f"{target.address} proves to be {peer_id}, not {target.agent_id}")
            self.target = Target(target.host, target.port, peer_id)
        self.client = PeerClient(self.target.address, peer_id, tls=tls if tls_agent else None)
        self.security = "mtls" if tls_agent else "insecure"

    def ask(self, call: Callable[[PeerClient], T]) -> T:
        """`call(client)`; UnansweredError, naming the agent, when it fails."""
        try:
            return call(self.client)
        except TransportError as error:
            text = str(error).split(" failed: ", 1)[-1]
            raise UnansweredError(f"{self.target.name} did not answer: {text}") from None

    def close(self) -> None:
        self.client.close()


@contextlib.contextmanager
def connected(target: Target, tls: ClusterTls | None) -> Iterator[Connection]:
    connection = Connection(target, tls)
    try:
        yield connection
    finally:
        connection.close()


def speaks_tls(target: Target, timeout: float) -> bool:
    """Whether the server at target answers a TLS ClientHello with TLS (a handshake, or a TLS alert)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=None):
            return True
    except ssl.SSLError as error:
        return "ALERT" in str(error.reason or "").upper()
    except OSError:
        return False


def _tcp_refusal(target: Target, timeout: float) -> str | None:
    """Why nothing accepts a TCP connection at target, or None when something does."""
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout):
            return None
    except OSError as error:
        return error.strerror or type(error).__name__

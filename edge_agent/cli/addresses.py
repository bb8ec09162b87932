"""Where `run` listens and what it advertises, from --host/--port or --listen/--advertise (flags or config file).

Three things are decided: the address bound, the port bound, and the address told to peers (mDNS, PeerInfo).
`--host IP` gives the first and the third, `--port` the second, `--listen ADDR:PORT` the first two, `--advertise
ADDR|INTERFACE` the third. Two options that give the same thing in one place (both flags, or both in the file) are
a mistake; a flag wins over the file thing by thing. Unsaid: listen on the advertised address (or 127.0.0.1) on
any free port, and advertise the address listened on; on a wildcard (0.0.0.0, ::) the address of the default
route, the LAN address of a board.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import TypeVar

import click

from edge_agent.cli.config_file import from_file, option_label, options_label
from edge_agent.cli.errors import OperatorError
from edge_agent.discovery.addresses import advertisable, default_route_address, is_local

T = TypeVar("T")
DEFAULT_HOST = "127.0.0.1"


@dataclass(frozen=True)
class Addresses:
    """Where the server binds (port 0: any free one) and the address peers are told."""

    listen_host: str
    port: int
    advertise: str

    @property
    def listens_elsewhere(self) -> bool:
        return self.listen_host != self.advertise

    def shown(self, port: int) -> str:
        """`advertised:port`, and where it listens when that differs: the start-up line's words."""
        listening = f" (listening on {host_port(self.listen_host, port)})" if self.listens_elsewhere else ""
        return f"{host_port(self.advertise, port)}{listening}"


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_host(host: str) -> str:
    """An IP address (mDNS advertises addresses, not names); whether this machine has it, binding tells."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r:.60} is not an IP address (give this machine's address on the network its peers "
                         "share, e.g. 192.168.1.23)") from None
    if address.is_unspecified or address.is_multicast:
        raise ValueError(f"{host} cannot be advertised to peers; give one of this machine's addresses (to listen on "
                         "every interface: --listen 0.0.0.0:PORT --advertise ADDR|INTERFACE)")
    return host


def resolve_addresses(ctx: click.Context, host: str | None, port: int | None, listen: tuple[str, int] | None,
                      advertise: str | None) -> Addresses:
    """The addresses the options say, with each mistake one OperatorError naming its options."""
    given = {name: value for name, value in
             (("host", host), ("port", port), ("listen", listen), ("advertise", advertise)) if value is not None}
    for first, second, what in (("host", "listen", "where to listen"), ("host", "advertise", "what to advertise"),
                                ("port", "listen", "the port")):
        if first in given and second in given and from_file(ctx, first) == from_file(ctx, second):
            raise OperatorError(f"{options_label(ctx, first, second)} both give {what}: give "
                                "--host IP (listen and advertise there) or --listen ADDR:PORT with --advertise "
                                "ADDR|INTERFACE")
    _, bound_host = _winner(ctx, {"host": host, "listen": listen[0] if listen else None})
    _, bound_port = _winner(ctx, {"port": port, "listen": listen[1] if listen else None})
    teller, told = _winner(ctx, {"host": host, "advertise": advertise})
    if teller == "advertise" and told is not None:
        try:
            told = advertisable(told)
        except ValueError as error:
            raise OperatorError(f"{option_label(ctx, teller)}: {error}") from None
    listen_host = bound_host or told or DEFAULT_HOST
    wildcard = ipaddress.ip_address(listen_host).is_unspecified
    if told is None:
        told = default_route_address(socket.AF_INET6 if ":" in listen_host else socket.AF_INET) if wildcard \
            else listen_host
        if told is None:
            raise OperatorError(f"{option_label(ctx, 'listen')}: listening on {listen_host} needs --advertise "
                                "ADDR|INTERFACE (the address peers reach this agent at): this machine has no "
                                "default route to take one from")
    elif told != listen_host:
        _check_reachable(option_label(ctx, teller), listen_host, told, wildcard)
    return Addresses(listen_host, bound_port or 0, told)


def _check_reachable(label: str, listen_host: str, told: str, wildcard: bool) -> None:
    """Peers dial the advertised address: the agent must listen there, and this machine must have it."""
    if not wildcard:
        raise OperatorError(f"{label}: {told} is not where the agent listens ({listen_host}), so peers could not "
                            f"reach it; listen on {told} or on every interface (0.0.0.0)")
    if not is_local(told):
        raise OperatorError(f"{label}: {told} is not an address of this machine")


def _winner(ctx: click.Context, candidates: dict[str, T | None]) -> tuple[str, T | None]:
    """(name, value) of the option given on the command line, else of the one given in the file, else ("", None)."""
    given = [(name, value) for name, value in candidates.items() if value is not None]
    on_command_line = [(name, value) for name, value in given if not from_file(ctx, name)]
    return (on_command_line or given)[0] if given else ("", None)

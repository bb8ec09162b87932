"""This machine's addresses: where an agent may listen and which address it can tell its peers (Linux)."""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import socket
import struct

SIOCGIFADDR = 0x8915  # Linux: an interface's IPv4 address
# Connecting a UDP socket sends nothing; it only asks the kernel which source address the route would use.
ROUTE_PROBES = {socket.AF_INET: "198.51.100.1", socket.AF_INET6: "2001:db8::1"}  # TEST-NET-2, documentation


def parse_listen(text: str) -> tuple[str, int]:
    """'0.0.0.0:50051', '[::]:50051', '192.168.1.23:0' -> (address, port); port 0 picks a free port."""
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
    else:
        host, sep, port_text = text.rpartition(":")
        if ":" in host:
            raise ValueError(f"write an IPv6 address in brackets, e.g. [::]:50051, got {text!r:.60}")
    if not sep or not host:
        raise ValueError(f"expected ADDR:PORT (e.g. 0.0.0.0:50051), got {text!r:.60}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r:.60} is not an IP address") from None
    if address.is_multicast:
        raise ValueError(f"{host} is a multicast address")
    if not port_text.isascii() or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"port {port_text!r:.20} is not in 0..65535 (0 picks a free port)")
    return str(address), int(port_text)


def advertisable(text: str) -> str:
    """An IP address peers can be told (not a wildcard or multicast), or the IPv4 address of the interface named."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return interface_ipv4(text)
    if address.is_unspecified or address.is_multicast:
        raise ValueError(f"{text} cannot be advertised to peers; give one of this machine's addresses or interfaces")
    return str(address)


def interface_ipv4(name: str) -> str:
    """The IPv4 address of the interface `name` (e.g. eth0, wlan0, lo); ValueError naming the interfaces there are."""
    names = sorted(interface for _, interface in socket.if_nameindex())
    if name not in names:
        raise ValueError(f"{name!r:.60} is neither an IP address nor an interface of this machine "
                         f"(interfaces: {', '.join(names)})")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            request = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError:
            raise ValueError(f"interface {name} has no IPv4 address") from None
    return socket.inet_ntoa(request[20:24])  # struct ifreq: 16 bytes of name, then a sockaddr_in


def is_local(address: str) -> bool:
    """Whether this machine holds `address` (binding to it works, or fails only because the port is taken)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError as error:
            return error.errno != errno.EADDRNOTAVAIL
    return True


def default_route_address(family: socket.AddressFamily) -> str | None:
    """The address this machine sends from on its default route (its LAN address on a board), or None."""
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((ROUTE_PROBES[family], 9))
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if ipaddress.ip_address(address).is_unspecified else address

"""This machine's addresses: --listen's ADDR:PORT, interface names resolved to their IPv4 address, which
addresses are this machine's, and the default route's."""

import ipaddress
import socket

import pytest

from edge_agent.discovery.addresses import advertisable, default_route_address, interface_ipv4, is_local, parse_listen


@pytest.mark.parametrize(("text", "expected"), [
    ("0.0.0.0:50051", ("0.0.0.0", 50051)), ("[::]:50051", ("::", 50051)), ("127.0.0.1:0", ("127.0.0.1", 0)),
    ("[::1]:9", ("::1", 9)),
])
def test_listen_reads_address_and_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("0.0.0.0", "expected ADDR:PORT"), (":50051", "expected ADDR:PORT"), ("::1:50051", "in brackets"),
    ("board.local:50051", "is not an IP address"), ("224.0.0.251:5353", "multicast"),
    ("0.0.0.0:65536", "not in 0..65535"), ("0.0.0.0:-1", "not in 0..65535"),
])
def test_listen_refuses_anything_else_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_listen(text)


def test_an_interface_name_is_advertised_as_its_ipv4_address() -> None:
    assert interface_ipv4("lo") == advertisable("lo") == "127.0.0.1"
    assert advertisable("127.0.0.1") == "127.0.0.1"


@pytest.mark.parametrize(("text", "message"), [
    ("no-such-if0", r"neither an IP address nor an interface of this machine \(interfaces: .*lo"),
    ("0.0.0.0", "cannot be advertised"), ("::", "cannot be advertised"), ("224.0.0.251", "cannot be advertised"),
])
def test_what_cannot_be_advertised_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        advertisable(text)


def test_only_this_machines_addresses_are_local() -> None:
    assert is_local("127.0.0.1") and is_local("127.0.0.2")  # all of 127/8 is on lo
    assert not is_local("192.0.2.123")  # TEST-NET-1: on no machine's interface


def test_the_default_route_address_is_one_of_this_machines_or_none() -> None:
    address = default_route_address(socket.AF_INET)
    assert address is None or (is_local(address) and not ipaddress.ip_address(address).is_unspecified)

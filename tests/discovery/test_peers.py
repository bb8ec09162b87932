"""PeerRecord validation, its TXT form, and `--peers` parsing."""

import random

import pytest

from edge_agent.discovery.peers import TXT_KEYS, PeerRecord, parse_peer_list


def _record(**changes: object) -> PeerRecord:
    fields: dict[str, object] = {
        "agent_id": "pi4-kitchen",
        "host": "192.168.1.20",
        "port": 50051,
        "protocol": "edge_agent.v1",
        "algorithm": "ntk-dfl",
        "setting": "edge",
        "round": 7,
        "samples": 1200,
        "profile": "rpi4",
        "run": "lab",
        "fingerprint": "0123456789ab",
        "shard": 3,
    }
    fields.update(changes)
    return PeerRecord(**fields)  # type: ignore[arg-type]


def test_txt_round_trip_gives_back_the_record() -> None:
    record = _record()
    txt = record.to_txt()
    assert txt == {
        "id": "pi4-kitchen",
        "proto": "edge_agent.v1",
        "alg": "ntk-dfl",
        "setting": "edge",
        "round": "7",
        "samples": "1200",
        "profile": "rpi4",
        "run": "lab",
        "cfg": "0123456789ab",
        "shard": "3",
    }
    assert PeerRecord.from_txt(txt, host=record.host, port=record.port) == record


def test_from_txt_reads_zeroconf_bytes_properties_and_ignores_unknown_keys() -> None:
    txt = {k.encode(): v.encode() for k, v in _record().to_txt().items()} | {b"extra": b"1", b"flag": None}
    assert PeerRecord.from_txt(txt, host="10.0.0.2", port=1234) == _record(host="10.0.0.2", port=1234)


def test_address_brackets_ipv6_hosts() -> None:
    assert _record().address == "192.168.1.20:50051"
    assert _record(host="::1").address == "[::1]:50051"


@pytest.mark.parametrize("missing", sorted(TXT_KEYS.values()))
def test_from_txt_names_a_missing_field(missing: str) -> None:
    txt = _record().to_txt()
    del txt[missing]
    with pytest.raises(ValueError, match=missing):
        PeerRecord.from_txt(txt, host="10.0.0.2", port=1)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (b"round", b"abc"),
        (b"round", b"-1"),
        (b"round", b"1_000"),
        (b"round", b" 3"),
        (b"round", "\u0661".encode()),  # an Arabic-Indic digit, which int() would accept
        (b"samples", b"99999999999999999999"),
        (b"round", None),
        (b"id", b"\xff\xfe"),
        (b"id", b""),
        (b"id", b"has space"),
        (b"id", b"dotted.name"),
        (b"id", b"x" * 49),
        (b"alg", b"tab\there"),
        (b"profile", b""),
        (b"setting", b"s" * 201),
    ],
)
def test_from_txt_rejects_garbled_values_with_value_error(key: bytes, value: bytes | None) -> None:
    txt: dict[bytes, bytes | None] = {k.encode(): v.encode() for k, v in _record().to_txt().items()}
    txt[key] = value
    with pytest.raises(ValueError):
        PeerRecord.from_txt(txt, host="10.0.0.2", port=1)


def test_from_txt_on_random_bytes_raises_only_value_error_and_accepts_only_valid_records() -> None:
    rng = random.Random(0)
    good = {k.encode(): v.encode() for k, v in _record().to_txt().items()}
    outcomes = {"accepted": 0, "rejected": 0}
    for _ in range(2000):
        txt: dict[bytes, bytes | None] = dict(good)
        for _ in range(rng.randint(1, 3)):
            key = rng.choice([*good, rng.randbytes(rng.randint(0, 6))])
            txt[key] = None if rng.random() < 0.1 else rng.randbytes(rng.randint(0, 300))
        try:
            record = PeerRecord.from_txt(txt, host="10.0.0.2", port=1)
        except ValueError:
            outcomes["rejected"] += 1
        else:
            outcomes["accepted"] += 1
            assert PeerRecord.from_txt(record.to_txt(), host="10.0.0.2", port=1) == record
    assert outcomes["rejected"] > 1500


@pytest.mark.parametrize(
    "changes",
    [{"port": 0}, {"port": 70000}, {"port": True}, {"host": ""}, {"host": "a b"}, {"round": -1}, {"samples": 1.5}],
)
def test_record_construction_validates_fields(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        _record(**changes)


def test_parse_peer_list_keeps_order_and_drops_duplicates() -> None:
    assert parse_peer_list(" pi-a.local:50051, 10.0.0.3:7000,[::1]:9,10.0.0.3:7000 ") == [
        ("pi-a.local", 50051),
        ("10.0.0.3", 7000),
        ("::1", 9),
    ]
    assert parse_peer_list("") == []
    assert parse_peer_list("   ") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pi-a", "not host:port"),
        (":50051", "not host:port"),
        ("pi-a:", "port"),
        ("pi-a:0", "port"),
        ("pi-a:65536", "port"),
        ("pi-a:http", "port"),
        ("pi-a:1,,pi-b:2", "empty entry"),
        ("::1:50051", r"\[address\]:port"),
        ("[::1]50051", r"\[address\]:port"),
        ("[pi-a]:1", "not an IPv6 address"),
        ("pi a:1", "not a host name"),
    ],
)
def test_parse_peer_list_rejects_bad_entries_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_peer_list(text)

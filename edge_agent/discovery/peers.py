"""What an agent says about itself to its peers, its TXT-record form, and `--peers` list parsing."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

from edge_agent.run_identity import RunIdentity

# Short instance names: one DNS label with room for a prefix; no dots, so names split unambiguously.
AGENT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,47}")
_HOST_PATTERN = re.compile(r"[A-Za-z0-9._:%-]{1,253}")
_UINT_PATTERN = re.compile(r"[0-9]{1,19}")  # ASCII only: int() also takes "1_0", " 1", non-ASCII digits
_MAX_TEXT = 200  # a TXT string is at most 255 bytes including "key="
_MAX_UINT = 2**63 - 1

# TXT key for each field; keys are short because every announcement carries them.
TXT_KEYS = {
    "agent_id": "id",
    "protocol": "proto",
    "algorithm": "alg",
    "setting": "setting",
    "round": "round",
    "samples": "samples",
    "profile": "profile",
    "run": "run",
    "fingerprint": "cfg",
    "shard": "shard",
}


@dataclass(frozen=True)
class PeerRecord:
    """One agent as its peers see it: where to reach it and what it runs. Validated on construction."""

    agent_id: str
    host: str
    port: int
    protocol: str
    algorithm: str
    setting: str
    round: int
    samples: int
    profile: str
    run: str  # the run id: agents of other runs are never members (edge_agent.run_identity)
    fingerprint: str  # hash of the run's agreed settings
    shard: int  # i of i/M: the slot of the round graphs this agent fills

    def __post_init__(self) -> None:
        if not isinstance(self.agent_id, str) or not AGENT_ID_PATTERN.fullmatch(self.agent_id):
            raise ValueError(f"agent id {self.agent_id!r:.60} must match {AGENT_ID_PATTERN.pattern}")
        if not isinstance(self.host, str) or not _HOST_PATTERN.fullmatch(self.host):
            raise ValueError(f"host {self.host!r:.60} is not a host name or IP address")
        if not isinstance(self.port, int) or isinstance(self.port, bool) or not 1 <= self.port <= 65535:
            raise ValueError(f"port {self.port!r:.20} is not in 1..65535")
        for name in ("protocol", "algorithm", "setting", "profile", "run", "fingerprint"):
            _check_text(name, getattr(self, name))
        for name in ("round", "samples", "shard"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_UINT:
                raise ValueError(f"{name} {value!r:.30} is not a non-negative integer")

    @property
    def identity(self) -> RunIdentity | None:
        """The run it claims to be in, or None when the claim is garbled."""
        try:
            return RunIdentity(self.run, self.fingerprint)
        except ValueError:
            return None

    @property
    def address(self) -> str:
        """`host:port`, with brackets around an IPv6 host (`[::1]:50051`)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def to_txt(self) -> dict[str, str]:
        """The TXT properties that advertise this record (host and port travel in SRV/A records instead)."""
        return {key: str(getattr(self, field)) for field, key in TXT_KEYS.items()}

    @classmethod
    def from_txt(cls, txt: Mapping[bytes, bytes | None] | Mapping[str, str | None], host: str, port: int) -> PeerRecord:
        """The record a peer advertised; raises ValueError naming the field when anything is missing or garbled."""
        values: dict[str, str] = {}
        for raw_key, raw_value in list(txt.items()):
            key, value = _decode(raw_key), _decode(raw_value)
            if key is not None and value is not None and key in TXT_KEYS.values():
                values[key] = value
        missing = [key for key in TXT_KEYS.values() if key not in values]
        if missing:
            raise ValueError(f"TXT record lacks or garbles {', '.join(missing)}")
        return cls(
            agent_id=values["id"],
            host=host,
            port=port,
            protocol=values["proto"],
            algorithm=values["alg"],
            setting=values["setting"],
            round=_parse_uint("round", values["round"]),
            samples=_parse_uint("samples", values["samples"]),
            profile=values["profile"],
            run=values["run"],
            fingerprint=values["cfg"],
            shard=_parse_uint("shard", values["shard"]),
        )


def _parse_uint(key: str, text: str) -> int:
    if not _UINT_PATTERN.fullmatch(text):
        raise ValueError(f"TXT {key}={text[:32]!r} is not a non-negative integer")
    return int(text)


def _check_text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value or len(value.encode()) > _MAX_TEXT or not value.isprintable():
        raise ValueError(f"{name} {value!r:.60} must be printable text of 1..{_MAX_TEXT} bytes")


def _decode(raw: object) -> str | None:
    """A TXT key or value as text, or None when it is absent, not UTF-8, or not text at all."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, bytes):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


def parse_peer_list(text: str) -> list[tuple[str, int]]:
    """`host:port,host:port` (IPv6 as `[::1]:port`) as (host, port) pairs in order, duplicates dropped."""
    peers: list[tuple[str, int]] = []
    for item in text.split(","):
        entry = item.strip()
        if not entry:
            if text.strip():
                raise ValueError(f"empty entry in peer list {text!r}")
            continue
        peer = _parse_peer(entry)
        if peer not in peers:
            peers.append(peer)
    return peers


def _parse_peer(entry: str) -> tuple[str, int]:
    if entry.startswith("["):
        host, sep, port_text = entry[1:].partition("]:")
        if not sep:
            raise ValueError(f"peer {entry!r}: write an IPv6 peer as [address]:port")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"peer {entry!r}: {host!r} is not an IPv6 address") from None
    else:
        host, sep, port_text = entry.rpartition(":")
        if not sep or not host:
            raise ValueError(f"peer {entry!r} is not host:port")
        if ":" in host:
            raise ValueError(f"peer {entry!r}: write an IPv6 peer as [address]:port")
        if not _HOST_PATTERN.fullmatch(host):
            raise ValueError(f"peer {entry!r}: {host!r} is not a host name or IP address")
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"peer {entry!r}: port {port_text!r} is not in 1..65535")
    return host, int(port_text)

from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TensorInfo(_message.Message):
    __slots__ = ("name", "dtype", "shape", "block_size", "data_bytes", "scales_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    DATA_BYTES_FIELD_NUMBER: _ClassVar[int]
    SCALES_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    block_size: int
    data_bytes: int
    scales_bytes: int
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., block_size: _Optional[int] = ..., data_bytes: _Optional[int] = ..., scales_bytes: _Optional[int] = ...) -> None: ...

class MessageHeader(_message.Message):
    __slots__ = ("kind", "sender", "round", "tensors", "samples", "sampled_rows")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SAMPLED_ROWS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    sender: str
    round: int
    tensors: _containers.RepeatedCompositeFieldContainer[TensorInfo]
    samples: int
    sampled_rows: int
    def __init__(self, kind: _Optional[str] = ..., sender: _Optional[str] = ..., round: _Optional[int] = ..., tensors: _Optional[_Iterable[_Union[TensorInfo, _Mapping]]] = ..., samples: _Optional[int] = ..., sampled_rows: _Optional[int] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: MessageHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[MessageHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class PeerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PeerInfoReply(_message.Message):
    __slots__ = ("agent_id", "protocol_version", "algorithm", "setting", "round", "samples", "profile", "address", "run", "fingerprint", "shard", "security")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    SETTING_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    SECURITY_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    protocol_version: str
    algorithm: str
    setting: str
    round: int
    samples: int
    profile: str
    address: str
    run: str
    fingerprint: str
    shard: int
    security: str
    def __init__(self, agent_id: _Optional[str] = ..., protocol_version: _Optional[str] = ..., algorithm: _Optional[str] = ..., setting: _Optional[str] = ..., round: _Optional[int] = ..., samples: _Optional[int] = ..., profile: _Optional[str] = ..., address: _Optional[str] = ..., run: _Optional[str] = ..., fingerprint: _Optional[str] = ..., shard: _Optional[int] = ..., security: _Optional[str] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NeighbourState(_message.Message):
    __slots__ = ("agent_id", "state", "reason")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    state: str
    reason: str
    def __init__(self, agent_id: _Optional[str] = ..., state: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class LinkBytes(_message.Message):
    __slots__ = ("peer", "round_sent", "round_received", "last_round_sent", "last_round_received", "total_sent", "total_received")
    PEER_FIELD_NUMBER: _ClassVar[int]
    ROUND_SENT_FIELD_NUMBER: _ClassVar[int]
    ROUND_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    LAST_ROUND_SENT_FIELD_NUMBER: _ClassVar[int]
    LAST_ROUND_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SENT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    peer: str
    round_sent: int
    round_received: int
    last_round_sent: int
    last_round_received: int
    total_sent: int
    total_received: int
    def __init__(self, peer: _Optional[str] = ..., round_sent: _Optional[int] = ..., round_received: _Optional[int] = ..., last_round_sent: _Optional[int] = ..., last_round_received: _Optional[int] = ..., total_sent: _Optional[int] = ..., total_received: _Optional[int] = ...) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ("round", "state", "members", "bytes_sent", "bytes_received", "last_round_seconds", "run", "security", "agent_id", "version", "profile", "backend", "algorithm", "shard", "clients", "rounds", "phase", "neighbours", "links", "uplink_bits_per_s", "downlink_bits_per_s", "latency_s", "last_round_phase_seconds", "last_accuracy", "uptime_s", "peak_rss_mb", "last_round", "best_round", "best_accuracy")
    class LastRoundPhaseSecondsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ROUND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    LAST_ROUND_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    SECURITY_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    CLIENTS_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOURS_FIELD_NUMBER: _ClassVar[int]
    LINKS_FIELD_NUMBER: _ClassVar[int]
    UPLINK_BITS_PER_S_FIELD_NUMBER: _ClassVar[int]
    DOWNLINK_BITS_PER_S_FIELD_NUMBER: _ClassVar[int]
    LATENCY_S_FIELD_NUMBER: _ClassVar[int]
    LAST_ROUND_PHASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LAST_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    PEAK_RSS_MB_FIELD_NUMBER: _ClassVar[int]
    LAST_ROUND_FIELD_NUMBER: _ClassVar[int]
    BEST_ROUND_FIELD_NUMBER: _ClassVar[int]
    BEST_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    round: int
    state: str
    members: _containers.RepeatedScalarFieldContainer[str]
    bytes_sent: int
    bytes_received: int
    last_round_seconds: float
    run: str
    security: str
    agent_id: str
    version: str
    profile: str
    backend: str
    algorithm: str
    shard: int
    clients: int
    rounds: int
    phase: str
    neighbours: _containers.RepeatedCompositeFieldContainer[NeighbourState]
    links: _containers.RepeatedCompositeFieldContainer[LinkBytes]
    uplink_bits_per_s: float
    downlink_bits_per_s: float
    latency_s: float
    last_round_phase_seconds: _containers.ScalarMap[str, float]
    last_accuracy: float
    uptime_s: float
    peak_rss_mb: float
    last_round: int
    best_round: int
    best_accuracy: float
    def __init__(self, round: _Optional[int] = ..., state: _Optional[str] = ..., members: _Optional[_Iterable[str]] = ..., bytes_sent: _Optional[int] = ..., bytes_received: _Optional[int] = ..., last_round_seconds: _Optional[float] = ..., run: _Optional[str] = ..., security: _Optional[str] = ..., agent_id: _Optional[str] = ..., version: _Optional[str] = ..., profile: _Optional[str] = ..., backend: _Optional[str] = ..., algorithm: _Optional[str] = ..., shard: _Optional[int] = ..., clients: _Optional[int] = ..., rounds: _Optional[int] = ..., phase: _Optional[str] = ..., neighbours: _Optional[_Iterable[_Union[NeighbourState, _Mapping]]] = ..., links: _Optional[_Iterable[_Union[LinkBytes, _Mapping]]] = ..., uplink_bits_per_s: _Optional[float] = ..., downlink_bits_per_s: _Optional[float] = ..., latency_s: _Optional[float] = ..., last_round_phase_seconds: _Optional[_Mapping[str, float]] = ..., last_accuracy: _Optional[float] = ..., uptime_s: _Optional[float] = ..., peak_rss_mb: _Optional[float] = ..., last_round: _Optional[int] = ..., best_round: _Optional[int] = ..., best_accuracy: _Optional[float] = ...) -> None: ...

class RecordsRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class RecordLine(_message.Message):
    __slots__ = ("json",)
    JSON_FIELD_NUMBER: _ClassVar[int]
    json: str
    def __init__(self, json: _Optional[str] = ...) -> None: ...

"""The tensor codec for what crosses the wire: fp32, fp16, or int8 / int4 with per-block scales (numpy only).

Every encoding is raw little-endian bytes, so the gRPC transport can stream ``data`` in chunks and the
simulator can count ``payload_bytes`` without encoding (``encoded_size``). Decoding always gives float32.
int4 packs two elements per byte, the even-indexed one in the low nibble, as two's-complement nibbles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

Precision = Literal["fp32", "fp16", "int8", "int4"]

_WIRE_DTYPES: dict[str, np.dtype[np.generic]] = {
    "float32": np.dtype("<f4"),
    "float16": np.dtype("<f2"),
    "int8": np.dtype("i1"),
    "int4": np.dtype("u1"),  # two elements per byte
}
WIRE_DTYPE_OF: dict[str, str] = {"fp32": "float32", "fp16": "float16", "int8": "int8", "int4": "int4"}
# The largest quantised magnitude of each block-scaled dtype (symmetric, so -max..max).
_QUANTISED_MAX: dict[str, int] = {"int8": 127, "int4": 7}
BLOCK_SCALED_DTYPES = frozenset(_QUANTISED_MAX)
_SCALE_DTYPE = np.dtype("<f4")
_FP16_MAX = 65504.0
# int8 and int4 quantise this many elements at a time, so its float32 scratch stays in cache (a loop over
# chunks of many blocks, never over single blocks).
_CHUNK_ELEMENTS = 1 << 16


@dataclass(frozen=True)
class CodecConfig:
    """Element type on the wire; int8 and int4 carry one float32 scale per ``block_size`` consecutive elements."""

    precision: Precision = "fp32"
    block_size: int = 256

    def __post_init__(self) -> None:
        if self.precision not in get_args(Precision):
            raise ValueError(f"precision must be one of {get_args(Precision)}, got {self.precision!r}")
        if isinstance(self.block_size, bool) or not isinstance(self.block_size, int) or self.block_size < 1:
            raise ValueError(f"block_size must be a positive integer, got {self.block_size!r}")


@dataclass(frozen=True)
class EncodedTensor:
    """One tensor as it crosses the wire; construction checks that the byte lengths fit the shape."""

    dtype: str  # "float32" | "float16" | "int8" | "int4"
    shape: tuple[int, ...]
    data: bytes  # raw little-endian elements, C order (int4: two per byte)
    scales: bytes  # float32 little-endian, one per block; empty unless the dtype is int8 or int4
    block_size: int

    def __post_init__(self) -> None:
        if self.dtype not in _WIRE_DTYPES:
            raise ValueError(f"dtype must be one of {tuple(_WIRE_DTYPES)}, got {self.dtype!r}")
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.shape):
            raise ValueError(f"shape must be non-negative integers, got {self.shape!r}")
        if isinstance(self.block_size, bool) or not isinstance(self.block_size, int) or self.block_size < 1:
            raise ValueError(f"block_size must be a positive integer, got {self.block_size!r}")
        expected_data = data_bytes(self.dtype, self.num_elements)
        if len(self.data) != expected_data:
            raise ValueError(
                f"{self.dtype} tensor of shape {self.shape} needs {expected_data} data bytes, got {len(self.data)}"
            )
        expected_scales = scale_bytes(self.dtype, self.num_elements, self.block_size)
        if len(self.scales) != expected_scales:
            raise ValueError(f"{self.dtype} tensor needs {expected_scales} scale bytes, got {len(self.scales)}")

    @property
    def num_elements(self) -> int:
        return math.prod(self.shape)

    @property
    def payload_bytes(self) -> int:
        return len(self.data) + len(self.scales)


def data_bytes(dtype: str, num_elements: int) -> int:
    """Bytes of a wire dtype's elements: 4n, 2n, n, or ceil(n / 2) for int4."""
    if dtype == "int4":
        return -(-num_elements // 2)
    return num_elements * _WIRE_DTYPES[dtype].itemsize


def scale_bytes(dtype: str, num_elements: int, block_size: int) -> int:
    """Bytes of the float32 block scales: 4 * ceil(n / block_size) for int8 and int4, else 0."""
    return _SCALE_DTYPE.itemsize * _num_blocks(num_elements, block_size) if dtype in _QUANTISED_MAX else 0


def encoded_size(num_elements: int, config: CodecConfig) -> int:
    """Payload bytes of a tensor of ``num_elements`` elements in the configured precision (data plus scales)."""
    if num_elements < 0:
        raise ValueError(f"num_elements must be non-negative, got {num_elements}")
    dtype = WIRE_DTYPE_OF[config.precision]
    return data_bytes(dtype, num_elements) + scale_bytes(dtype, num_elements, config.block_size)


def encode(array: np.ndarray, config: CodecConfig) -> EncodedTensor:
    """Encode a real array (cast to float32 first) in the configured precision.

    fp16 clips values beyond the fp16 range to +-65504 instead of letting them become inf. int8 and int4
    are symmetric per block: scale = max|x| / Q, q = round(x / scale) clipped to [-Q, Q] with Q = 127 or 7;
    an all-zero block gets scale 0. Raises ValueError if any value is NaN or inf (also after the float32
    cast), so a broken tensor is never sent silently.
    """
    values = as_flat_float32(array)  # (n,), a view when the input is already contiguous float32
    if not all_finite(values):
        raise ValueError("tensor contains NaN or inf; refusing to encode it")
    dtype = WIRE_DTYPE_OF[config.precision]
    if config.precision == "fp32":
        return EncodedTensor(dtype, array.shape, values.tobytes(), b"", config.block_size)
    if config.precision == "fp16":
        half = np.empty(values.size, dtype=_WIRE_DTYPES["float16"])
        np.clip(values, -_FP16_MAX, _FP16_MAX, out=half, casting="same_kind")
        return EncodedTensor(dtype, array.shape, half.tobytes(), b"", config.block_size)
    quantised, scales = _quantise(values, config.block_size, _QUANTISED_MAX[dtype])
    data = _pack_int4(quantised) if dtype == "int4" else quantised
    return EncodedTensor(dtype, array.shape, data.tobytes(), scales.tobytes(), config.block_size)


def decode(encoded: EncodedTensor) -> np.ndarray:
    """A new, writable float32 array of the encoded shape (int8, int4: q * scale of its block)."""
    raw = np.frombuffer(encoded.data, dtype=_WIRE_DTYPES[encoded.dtype])  # read-only view
    if encoded.dtype in _QUANTISED_MAX:
        quantised = _unpack_int4(raw, encoded.num_elements) if encoded.dtype == "int4" else raw  # (n,) int8
        scales = np.frombuffer(encoded.scales, dtype=_SCALE_DTYPE)  # (ceil(n / B),)
        return _dequantise(quantised, scales, encoded.block_size).reshape(encoded.shape)
    return raw.astype(np.float32).reshape(encoded.shape)


def _num_blocks(num_elements: int, block_size: int) -> int:
    return -(-num_elements // block_size)


def as_flat_float32(array: np.ndarray) -> np.ndarray:
    """`array` as a flat little-endian float32 vector, a view when it already is one; ValueError if not real."""
    if array.dtype.kind not in "fiu":
        raise ValueError(f"the codec encodes real numbers, got dtype {array.dtype}")
    with np.errstate(over="ignore"):  # float64 beyond float32 range becomes inf and is rejected next
        return np.ascontiguousarray(array, dtype="<f4").reshape(-1)


def all_finite(values: np.ndarray) -> bool:
    """No NaN or inf in `values`, in one pass over them when it can be (this check sits on every tensor's path).

    A NaN or inf makes the dot product of the values with themselves NaN or inf, so a finite dot proves all are
    finite; a non-finite one (a bad value, or finite values so large their squares overflow) is decided exactly.
    """
    flat = values.reshape(-1)
    if not flat.size:
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.dot(flat, flat)):
            return True
    return bool(np.isfinite(flat.min()) and np.isfinite(flat.max()))


def _quantise(values: np.ndarray, block_size: int, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """(q (n,) int8 in [-limit, limit], scales (ceil(n / B),) float32) for a flat finite float32 vector."""
    n = values.size
    full = n // block_size
    quantised = np.empty(n, dtype=_WIRE_DTYPES["int8"])
    scales = np.empty(_num_blocks(n, block_size), dtype=_SCALE_DTYPE)
    chunk_blocks = max(1, _CHUNK_ELEMENTS // block_size)
    scratch = np.empty(chunk_blocks * block_size, dtype=np.float32)
    for start in range(0, full, chunk_blocks):
        stop = min(start + chunk_blocks, full)
        _quantise_blocks(
            values[start * block_size : stop * block_size].reshape(-1, block_size),
            quantised[start * block_size : stop * block_size].reshape(-1, block_size),
            scales[start:stop],
            scratch[: (stop - start) * block_size].reshape(-1, block_size),
            limit,
        )
    if full * block_size < n:  # the last, shorter block
        tail = n - full * block_size
        _quantise_blocks(
            values[full * block_size :].reshape(1, tail),
            quantised[full * block_size :].reshape(1, tail),
            scales[full:],
            scratch[:tail].reshape(1, tail),
            limit,
        )
    return quantised, scales


def _quantise_blocks(blocks: np.ndarray, out: np.ndarray, scales: np.ndarray, scratch: np.ndarray,
                     limit: int) -> None:
    """Fill out (k, b) int8 and scales (k,) from blocks (k, b) float32, using scratch (k, b) float32."""
    np.abs(blocks, out=scratch)
    np.divide(np.max(scratch, axis=1), limit, out=scales)
    divisor = np.where(scales > 0, scales, np.float32(1.0))  # all-zero (or subnormal) block: q = 0
    np.divide(blocks, divisor[:, None], out=scratch)
    np.clip(scratch, -limit, limit, out=scratch)
    np.rint(scratch, out=out, casting="unsafe")


def _pack_int4(quantised: np.ndarray) -> np.ndarray:
    """(ceil(n / 2),) uint8 from q (n,) int8 in [-7, 7]: element 2i in the low nibble, 2i + 1 in the high."""
    nibbles = np.zeros(2 * data_bytes("int4", quantised.size), dtype=np.uint8)
    nibbles[: quantised.size] = quantised.view(np.uint8) & 0x0F
    return nibbles[0::2] | (nibbles[1::2] << 4)


def _unpack_int4(packed: np.ndarray, num_elements: int) -> np.ndarray:
    """q (n,) int8 from packed nibbles, sign-extended by arithmetic shifts."""
    quantised = np.empty(2 * packed.size, dtype=np.int8)
    quantised[0::2] = (packed << 4).view(np.int8) >> 4
    quantised[1::2] = packed.view(np.int8) >> 4
    return quantised[:num_elements]


def _dequantise(quantised: np.ndarray, scales: np.ndarray, block_size: int) -> np.ndarray:
    """x (n,) float32 = q * scale of each element's block, one pass with no temporary of size n."""
    n = quantised.size
    full = n // block_size
    values = np.empty(n, dtype=np.float32)
    body = slice(0, full * block_size)
    np.multiply(
        quantised[body].reshape(full, block_size),
        scales[:full, None],
        out=values[body].reshape(full, block_size),
        dtype=np.float32,
    )
    if full * block_size < n:
        np.multiply(quantised[body.stop :], scales[full], out=values[body.stop :], dtype=np.float32)
    return values

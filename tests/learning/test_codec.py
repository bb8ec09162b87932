"""Tests for edge_agent.learning.codec: fp32/fp16/int8/int4 wire encodings, their error bounds, sizes and byte order."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from edge_agent.learning.codec import CodecConfig, EncodedTensor, Precision, all_finite, decode, encode, encoded_size

PRECISIONS: tuple[Precision, ...] = ("fp32", "fp16", "int8", "int4")


def gaussian(shape: tuple[int, ...], seed: int = 0, scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def test_fp32_round_trip_is_bit_exact() -> None:
    x = gaussian((17, 3, 5))
    x[0, 0, 0] = np.float32(1e-40)  # subnormal survives too
    y = decode(encode(x, CodecConfig("fp32")))
    assert y.dtype == np.float32
    assert y.shape == x.shape
    assert y.tobytes() == x.tobytes()


def test_decode_returns_a_writable_array() -> None:
    y = decode(encode(gaussian((4,)), CodecConfig("fp32")))
    y[0] = 5.0
    assert y[0] == 5.0


def test_fp16_relative_error_is_below_1e_3_in_normal_range() -> None:
    rng = np.random.default_rng(1)
    magnitudes = 10.0 ** rng.uniform(-4, 4, size=10_000)
    x = (magnitudes * rng.choice([-1.0, 1.0], size=10_000)).astype(np.float32)
    y = decode(encode(x, CodecConfig("fp16")))
    assert np.max(np.abs(y - x) / np.abs(x)) < 1e-3


def test_fp16_clips_huge_values_to_max_finite_instead_of_inf() -> None:
    x = np.array([1e6, -1e6, 65519.0, 3.0e38, -3.0e38, 2.0], dtype=np.float32)
    y = decode(encode(x, CodecConfig("fp16")))
    assert np.all(np.isfinite(y))
    np.testing.assert_array_equal(y, [65504.0, -65504.0, 65504.0, 65504.0, -65504.0, 2.0])


def block_scales(encoded: EncodedTensor) -> np.ndarray:
    return np.frombuffer(encoded.scales, dtype="<f4")


@pytest.mark.parametrize(("n", "block_size"), [(1024, 256), (1000, 256), (7, 256), (300, 1), (513, 64)])
def test_int8_error_per_element_is_at_most_half_its_block_scale(n: int, block_size: int) -> None:
    x = gaussian((n,), seed=n) * np.float32(3.0)
    encoded = encode(x, CodecConfig("int8", block_size=block_size))
    scales = block_scales(encoded)
    assert scales.size == math.ceil(n / block_size)
    expected_scales = [np.max(np.abs(x[i : i + block_size])) / np.float32(127) for i in range(0, n, block_size)]
    np.testing.assert_allclose(scales, expected_scales, rtol=1e-6)
    q = np.frombuffer(encoded.data, dtype="i1")
    assert q.min() >= -127 and q.max() <= 127
    assert np.max(np.abs(q)) == 127  # each block's largest element uses the full range
    per_element_scale = np.repeat(scales, block_size)[:n]
    error = np.abs(decode(encoded) - x)
    assert np.all(error <= per_element_scale * (0.5 + 1e-5))


@pytest.mark.parametrize(("n", "block_size"), [(1024, 256), (1001, 256), (7, 256), (301, 1), (513, 64)])
def test_int4_error_per_element_is_at_most_half_its_block_scale(n: int, block_size: int) -> None:
    x = gaussian((n,), seed=n) * np.float32(3.0)
    encoded = encode(x, CodecConfig("int4", block_size=block_size))
    assert len(encoded.data) == math.ceil(n / 2)
    scales = block_scales(encoded)
    expected_scales = [np.max(np.abs(x[i : i + block_size])) / np.float32(7) for i in range(0, n, block_size)]
    np.testing.assert_allclose(scales, expected_scales, rtol=1e-6)
    per_element_scale = np.repeat(scales, block_size)[:n]
    y = decode(encoded)
    assert np.all(np.abs(y - x) <= per_element_scale * (0.5 + 1e-5))
    q = np.rint(y / per_element_scale)
    assert q.min() >= -7 and q.max() <= 7
    np.testing.assert_allclose(y, q * per_element_scale, rtol=1e-6)  # decodes to whole multiples of its scale


def test_int4_packs_the_even_element_in_the_low_nibble_as_twos_complement() -> None:
    x = np.array([7.0, -7.0, 1.0, -1.0, 3.0], dtype=np.float32)  # scale 1: q = x
    encoded = encode(x, CodecConfig("int4", block_size=8))
    assert encoded.data == bytes([0x97, 0xF1, 0x03])  # (7, -7 = 0x9), (1, -1 = 0xF), (3, padding 0)
    assert encoded.scales == np.float32(1.0).tobytes()
    np.testing.assert_array_equal(decode(encoded), x)


def test_int8_all_zero_block_has_zero_scale_and_decodes_to_zeros() -> None:
    x = np.zeros(10, dtype=np.float32)
    x[8] = -2.54  # second block of 4 all zero, third block mixed
    encoded = encode(x, CodecConfig("int8", block_size=4))
    np.testing.assert_array_equal(block_scales(encoded), np.array([0.0, 0.0, 2.54 / 127], dtype=np.float32))
    y = decode(encoded)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, x, atol=1e-6)
    np.testing.assert_array_equal(decode(encode(np.zeros((3, 5), np.float32), CodecConfig("int8"))), 0.0)


def test_int8_exact_multiples_of_the_scale_round_trip_exactly() -> None:
    x = np.array([-127, -64, 0, 1, 127, 2, 127, -8], dtype=np.float32) * np.float32(0.5)
    y = decode(encode(x, CodecConfig("int8", block_size=5)))
    np.testing.assert_allclose(y, x, rtol=1e-6)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (1,), (5, 7), (2, 3, 4, 5), (257,)])
def test_shape_and_float32_dtype_are_preserved(precision: Precision, shape: tuple[int, ...]) -> None:
    x = gaussian(shape, seed=3)
    encoded = encode(x, CodecConfig(precision, block_size=16))
    assert encoded.shape == shape
    assert encoded.num_elements == x.size
    y = decode(encoded)
    assert y.shape == shape
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, x, atol=0.3 if precision == "int4" else 0.05)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("n", [0, 1, 255, 256, 257, 1000])
def test_payload_bytes_equal_encoded_size(precision: Precision, n: int) -> None:
    config = CodecConfig(precision, block_size=256)
    blocks = math.ceil(n / 256)
    expected = {"fp32": 4 * n, "fp16": 2 * n, "int8": n + 4 * blocks, "int4": math.ceil(n / 2) + 4 * blocks}[precision]
    assert encoded_size(n, config) == expected
    assert encode(gaussian((n,)), config).payload_bytes == expected


def test_encoded_size_at_reference_scale() -> None:
    n = 159_000_000
    assert encoded_size(n, CodecConfig("fp32")) == 636_000_000
    assert encoded_size(n, CodecConfig("fp16")) == 318_000_000
    assert encoded_size(n, CodecConfig("int8", block_size=256)) == n + 4 * 621_094
    assert encoded_size(n, CodecConfig("int4", block_size=256)) == n // 2 + 4 * 621_094
    with pytest.raises(ValueError, match="non-negative"):
        encoded_size(-1, CodecConfig())


def test_bytes_are_little_endian() -> None:
    x = np.array([1.0, -2.0], dtype=np.float32)
    assert encode(x, CodecConfig("fp32")).data == b"\x00\x00\x80\x3f\x00\x00\x00\xc0"
    assert encode(x, CodecConfig("fp16")).data == b"\x00\x3c\x00\xc0"
    int8 = encode(np.array([254.0, -126.0], dtype=np.float32), CodecConfig("int8"))
    assert int8.data == b"\x7f\xc1"  # 127, -63
    assert int8.scales == b"\x00\x00\x00\x40"  # 2.0


def test_big_endian_and_float64_inputs_encode_as_little_endian_float32() -> None:
    x = np.array([1.0, -2.0, 0.5], dtype=">f8")
    assert encode(x, CodecConfig("fp32")).data == np.array([1.0, -2.0, 0.5], "<f4").tobytes()


def test_non_contiguous_input_is_encoded_in_c_order() -> None:
    x = gaussian((6, 8))[::2, ::3]
    np.testing.assert_array_equal(decode(encode(x, CodecConfig("fp32"))), x)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_raise(precision: Precision, bad: float) -> None:
    x = gaussian((600,))
    x[417] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        encode(x, CodecConfig(precision))


def test_float64_beyond_float32_range_raises() -> None:
    with pytest.raises(ValueError, match="NaN or inf"):
        encode(np.array([1e300]), CodecConfig("fp16"))


def test_complex_input_raises() -> None:
    with pytest.raises(ValueError, match="real numbers"):
        encode(np.ones(3, dtype=np.complex64), CodecConfig())


@pytest.mark.parametrize(
    ("precision", "block_size"),
    [("bf16", 256), ("FP32", 256), ("int8", 0), ("int8", -4), ("int8", 2.5), ("fp32", True)],
)
def test_invalid_config_raises(precision: str, block_size: object) -> None:
    with pytest.raises(ValueError):
        CodecConfig(precision, block_size)  # type: ignore[arg-type]


def test_encoded_tensor_with_inconsistent_lengths_is_rejected() -> None:
    good = encode(gaussian((10,)), CodecConfig("int8", block_size=4))
    with pytest.raises(ValueError, match="data bytes"):
        replace(good, data=good.data[:-1])
    with pytest.raises(ValueError, match="scale bytes"):
        replace(good, scales=good.scales[:-4])
    with pytest.raises(ValueError, match="dtype"):
        replace(good, dtype="bfloat16")
    with pytest.raises(ValueError, match="scale bytes"):
        EncodedTensor("float32", (2,), b"\x00" * 8, b"\x00" * 4, 256)
    with pytest.raises(ValueError, match="shape"):
        EncodedTensor("float32", (-1,), b"", b"", 256)


def test_all_finite_is_exact_when_the_one_pass_check_overflows() -> None:
    huge = np.full(1000, 3e38, dtype=np.float32)  # finite, but the sum of their squares overflows
    assert all_finite(huge) and all_finite(np.empty(0, np.float32))
    for bad in (np.nan, np.inf, -np.inf):
        values = huge.copy()
        values[617] = bad
        assert not all_finite(values)

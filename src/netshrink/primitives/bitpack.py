"""Fixed-width bit packing of small unsigned integers, MSB-first (the order Huffman uses)."""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["pack_bits", "packed_size", "unpack_bits"]

MAX_BITS = 16


def packed_size(count: int, bits: int) -> int:
    """Bytes holding ``count`` values of ``bits`` bits (last byte zero-padded)."""
    return (count * bits + 7) // 8


def _check_bits(bits: int) -> int:
    if not 1 <= int(bits) <= MAX_BITS:
        raise ValueError(f"bits must be in 1..{MAX_BITS}, got {bits}")
    return int(bits)


@numba.njit(cache=True)
def _pack(values, bits, n_bytes):  # pragma: no cover - compiled
    out = np.zeros(n_bytes, np.uint8)
    acc = 0  # at most 7 + 16 pending bits
    pending = 0
    pos = 0
    for i in range(values.size):
        acc = ((acc << bits) | values[i]) & 0xFFFFFF
        pending += bits
        while pending >= 8:
            pending -= 8
            out[pos] = (acc >> pending) & 0xFF
            pos += 1
    if pending:
        out[pos] = (acc << (8 - pending)) & 0xFF
    return out


@numba.njit(cache=True)
def _unpack(data, bits, count):  # pragma: no cover - compiled
    out = np.empty(count, np.uint16)
    mask = (1 << bits) - 1
    acc = 0
    pending = 0
    pos = 0
    for i in range(count):
        while pending < bits:
            acc = ((acc << 8) | data[pos]) & 0xFFFFFF
            pos += 1
            pending += 8
        pending -= bits
        out[i] = (acc >> pending) & mask
    return out


def pack_bits(values: np.ndarray, bits: int) -> bytes:
    """Concatenate the low ``bits`` bits of every value, most significant bit first."""
    bits = _check_bits(bits)
    values = np.asarray(values).ravel()
    if values.size == 0:
        return b""
    if not np.issubdtype(values.dtype, np.integer) or values.min() < 0:
        raise ValueError("pack_bits takes non-negative integers")
    if int(values.max()) >> bits:
        raise ValueError(f"value {int(values.max())} does not fit in {bits} bits")
    return _pack(values.astype(np.int64), bits, packed_size(values.size, bits)).tobytes()


def unpack_bits(data: bytes, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: ``count`` values (uint16) from ``data``.

    Raises ``ValueError`` if ``data`` holds fewer than ``count * bits`` bits.
    """
    bits = _check_bits(bits)
    if count < 0:
        raise ValueError("count must be non-negative")
    need = packed_size(count, bits)
    if len(data) < need:
        raise ValueError(f"bit stream too short: {len(data)} bytes for {count} {bits}-bit values")
    return _unpack(np.frombuffer(data, np.uint8, count=need), bits, count)

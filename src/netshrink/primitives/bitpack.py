"""Bit packing, MSB-first: fixed-width values, and the code concatenation Huffman also uses."""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["concatenate_codes", "pack_bits", "packed_size", "unpack_bits"]

MAX_BITS = 16


def packed_size(count: int, bits: int) -> int:
    """Bytes holding ``count`` values of ``bits`` bits (last byte zero-padded)."""
    return (count * bits + 7) // 8


def _check_bits(bits: int) -> int:
    if not 1 <= int(bits) <= MAX_BITS:
        raise ValueError(f"bits must be in 1..{MAX_BITS}, got {bits}")
    return int(bits)


@numba.njit(cache=True)
def concatenate_codes(
    symbols: np.ndarray, codes: np.ndarray, lengths: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Concatenate the codes of ``symbols`` MSB-first into ``out`` (every byte is written),
    32 bits at a time."""
    acc = 0  # the low ``pending`` bits are unwritten: < 32 + 32, so acc stays a positive int64
    pending = 0
    pos = 0
    for i in range(symbols.size):
        s = symbols[i]
        acc = (acc << lengths[s]) | codes[s]
        pending += lengths[s]
        if pending >= 32:  # bits written never exceed n_bits, so pos + 4 <= out.size
            pending -= 32
            word = acc >> pending
            out[pos] = (word >> 24) & 0xFF
            out[pos + 1] = (word >> 16) & 0xFF
            out[pos + 2] = (word >> 8) & 0xFF
            out[pos + 3] = word & 0xFF
            pos += 4
            acc &= (1 << pending) - 1
    while pending >= 8:
        pending -= 8
        out[pos] = (acc >> pending) & 0xFF
        pos += 1
    if pending:
        out[pos] = (acc << (8 - pending)) & 0xFF


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
    # Fixed width is the code where symbol v is written as v in ``bits`` bits.
    out = np.empty(packed_size(values.size, bits), np.uint8)
    identity = np.arange(1 << bits, dtype=np.int64)
    concatenate_codes(values.astype(np.int64), identity, np.full(1 << bits, bits), out)
    return out.tobytes()


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

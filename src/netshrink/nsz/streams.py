"""Integer symbol streams inside ``IDX `` and ``GAP `` sections: fixed-width or Huffman.

Payload layout (little-endian; docs/format.md, "Symbol streams")::

    u8  coding        0 = fixed width, 1 = canonical Huffman
    u8  symbol_bits   alphabet of 2**symbol_bits symbols (1..16)
    u64 count         number of symbols
    u64 n_bits        number of data bits
    u32 table_size    Huffman only: number of code lengths that follow (<= 2**symbol_bits)
    ... lengths       Huffman only: table_size 4-bit code lengths, two per byte, high first
    ... data          ceil(n_bits / 8) bytes, MSB-first
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from netshrink.nsz.container import NszFormatError
from netshrink.primitives import huffman
from netshrink.primitives.bitpack import pack_bits, packed_size, unpack_bits

__all__ = ["StreamInfo", "decode_stream", "encode_stream", "stream_info"]

FIXED, HUFFMAN = 0, 1
MAX_CODE_BITS = 15  # lengths are stored in 4 bits
_HEAD = struct.Struct("<BBQQ")
_TABLE = struct.Struct("<I")


@dataclass(frozen=True)
class StreamInfo:
    coding: str  # "fixed" or "huffman"
    symbol_bits: int
    count: int
    n_bits: int  # data bits (excluding the stream's own header and table)
    payload_bytes: int  # whole payload, header and table included


def _fixed(symbols: np.ndarray, bits: int) -> bytes:
    return _HEAD.pack(FIXED, bits, symbols.size, symbols.size * bits) + pack_bits(symbols, bits)


def _huffman(symbols: np.ndarray, bits: int) -> bytes:
    counts = np.bincount(symbols, minlength=1 << bits) if symbols.size else np.zeros(1, np.int64)
    lengths = huffman.code_lengths(counts, max_length=MAX_CODE_BITS)
    used = int(np.flatnonzero(lengths).max()) + 1 if lengths.any() else 0
    table = lengths[:used].astype(np.uint8)
    if used % 2:
        table = np.append(table, np.uint8(0))
    nibbles = (table[0::2] << 4) | table[1::2]
    data, n_bits = huffman.encode(symbols, lengths)
    head = _HEAD.pack(HUFFMAN, bits, symbols.size, n_bits) + _TABLE.pack(used)
    return head + nibbles.astype(np.uint8).tobytes() + data


def encode_stream(symbols: np.ndarray, symbol_bits: int, coding: str = "auto") -> bytes:
    """Encode integer ``symbols`` in ``[0, 2**symbol_bits)`` as a stream payload.

    ``coding`` is ``"fixed"``, ``"huffman"`` or ``"auto"`` (whichever payload is smaller:
    Huffman only where it helps, its code-length table included).
    """
    symbols = np.asarray(symbols).ravel().astype(np.int64)
    if not 1 <= symbol_bits <= 16:
        raise ValueError(f"symbol_bits must be in 1..16, got {symbol_bits}")
    if symbols.size and (symbols.min() < 0 or symbols.max() >> symbol_bits):
        raise ValueError(f"symbols must be in [0, {1 << symbol_bits})")
    if coding == "fixed":
        return _fixed(symbols, symbol_bits)
    if coding == "huffman":
        return _huffman(symbols, symbol_bits)
    if coding != "auto":
        raise ValueError(f"unknown coding {coding!r}")
    fixed_size = _HEAD.size + packed_size(symbols.size, symbol_bits)
    coded = _huffman(symbols, symbol_bits)
    return coded if len(coded) < fixed_size else _fixed(symbols, symbol_bits)


def _parse(payload: memoryview | bytes) -> tuple[StreamInfo, np.ndarray | None, memoryview]:
    payload = memoryview(payload)
    if len(payload) < _HEAD.size:
        raise NszFormatError(f"stream payload of {len(payload)} bytes is shorter than its header")
    coding, bits, count, n_bits = _HEAD.unpack_from(payload, 0)
    if coding not in (FIXED, HUFFMAN):
        raise NszFormatError(f"unknown stream coding {coding}")
    if not 1 <= bits <= 16:
        raise NszFormatError(f"stream symbol_bits {bits} outside 1..16")
    offset = _HEAD.size
    lengths = None
    if coding == FIXED:
        if n_bits != count * bits:
            raise NszFormatError(f"fixed stream declares {n_bits} bits for {count}x{bits} bits")
    else:
        if len(payload) < offset + _TABLE.size:
            raise NszFormatError("Huffman stream truncated before its table size")
        (used,) = _TABLE.unpack_from(payload, offset)
        offset += _TABLE.size
        if used > 1 << bits:
            raise NszFormatError(f"Huffman table of {used} lengths for {1 << bits} symbols")
        table_bytes = (used + 1) // 2
        if len(payload) < offset + table_bytes:
            raise NszFormatError("Huffman stream truncated inside its code-length table")
        nibbles = np.frombuffer(payload, np.uint8, count=table_bytes, offset=offset)
        lengths = np.empty(2 * table_bytes, np.uint8)
        lengths[0::2] = nibbles >> 4
        lengths[1::2] = nibbles & 0x0F
        lengths = lengths[:used]
        offset += table_bytes
        if count > n_bits:  # every code is at least one bit
            raise NszFormatError(f"Huffman stream declares {count} symbols in {n_bits} bits")
    data = payload[offset:]
    if len(data) != (n_bits + 7) // 8:
        raise NszFormatError(f"stream data is {len(data)} bytes; its header declares {n_bits} bits")
    info = StreamInfo("fixed" if coding == FIXED else "huffman", bits, count, n_bits, len(payload))
    return info, lengths, data


def stream_info(payload: memoryview | bytes) -> StreamInfo:
    """The stream's header fields, validated, without decoding the data."""
    return _parse(payload)[0]


def decode_stream(payload: memoryview | bytes) -> np.ndarray:
    """Decode a stream payload written by :func:`encode_stream` (int64 symbols)."""
    info, lengths, data = _parse(payload)
    if info.coding == "fixed":
        return unpack_bits(bytes(data), info.symbol_bits, info.count).astype(np.int64)
    try:
        return huffman.decode(bytes(data), info.n_bits, info.count, lengths)
    except ValueError as exc:
        raise NszFormatError(str(exc)) from None

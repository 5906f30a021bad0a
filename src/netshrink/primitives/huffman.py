"""Canonical Huffman coding of small-alphabet integer streams.

Huffman (1952), "A Method for the Construction of Minimum-Redundancy Codes": merging the two
least frequent subtrees repeatedly gives a prefix code minimising ``sum(count * length)``.
Deep Compression (Han et al., 2016, §4) Huffman-codes the quantized weight indices and the
sparse-index gaps, saving a further 20-30 % of storage.

The code is *canonical* (codes assigned in order of length, then symbol, as in DEFLATE), so a
stream is fully described by the per-symbol code lengths. Bits are packed MSB-first.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["canonical_codes", "code_lengths", "decode", "encode", "entropy_bits"]

_MAX_CODE_BITS = 32  # codes are stored as uint32


@numba.njit(cache=True)
def _huffman_depths(weights: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Leaf depths of a Huffman tree over ascending ``weights`` (n >= 2), two-queue method.

    Leaves are consumed in sorted order and merged nodes are created in non-decreasing weight
    order, so the two smallest live nodes are always at the heads of the two queues: O(n).
    """
    n = weights.size
    w = np.empty(2 * n - 1, np.int64)
    w[:n] = weights
    parent = np.empty(2 * n - 1, np.int64)
    leaf = 0
    internal = n
    for node in range(n, 2 * n - 1):
        total = 0
        for _ in range(2):
            # Prefer a leaf on ties: keeps the tree shallower at equal cost.
            if leaf < n and (internal >= node or w[leaf] <= w[internal]):
                child = leaf
                leaf += 1
            else:
                child = internal
                internal += 1
            parent[child] = node
            total += w[child]
        w[node] = total
    depth = np.zeros(2 * n - 1, np.int64)
    for node in range(2 * n - 3, -1, -1):  # parents always have larger indices
        depth[node] = depth[parent[node]] + 1
    return depth[:n]


def code_lengths(counts: np.ndarray, max_length: int = 24) -> np.ndarray:
    """Huffman code lengths (uint8) for symbol frequencies ``counts``.

    Optimal lengths minimise ``sum(counts * lengths)`` (Huffman 1952). Unused symbols
    (count 0) get length 0; a lone used symbol gets length 1.

    Length limiting (heuristic, not package-merge): while the optimal tree is deeper than
    ``max_length``, halve every non-zero count (rounding up, so none becomes 0) and rebuild.
    This terminates because the counts reach all-ones, a balanced tree of depth
    ``ceil(log2(n_used)) <= max_length``; the result is a valid but possibly slightly
    sub-optimal code, and only when the limit binds.
    """
    counts = np.asarray(counts)
    if counts.ndim != 1 or not np.issubdtype(counts.dtype, np.integer):
        raise ValueError("huffman: counts must be a 1-D integer array")
    if counts.size and counts.min() < 0:
        raise ValueError("huffman: counts must be non-negative")
    if not 1 <= max_length <= _MAX_CODE_BITS:
        raise ValueError(f"huffman: max_length must be in [1, {_MAX_CODE_BITS}], got {max_length}")
    lengths = np.zeros(counts.size, np.uint8)
    used = np.flatnonzero(counts)
    if used.size == 0:
        return lengths
    if used.size == 1:
        lengths[used] = 1
        return lengths
    if used.size > 1 << max_length:
        raise ValueError(f"huffman: {used.size} symbols cannot fit in codes of {max_length} bits")
    weights = counts[used].astype(np.int64)
    while True:
        order = np.argsort(weights, kind="stable")
        depths = _huffman_depths(weights[order])
        if depths.max() <= max_length:
            break
        weights = (weights + 1) // 2
    lengths[used[order]] = depths
    return lengths


def _length_tables(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate ``lengths`` and build canonical tables indexed by code length ``l``.

    Returns ``(first_code, count, first_index, sorted_symbols)``: codes of length ``l`` are
    ``first_code[l] + k`` for ``k < count[l]``, naming ``sorted_symbols[first_index[l] + k]``.
    """
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError("huffman: lengths must be a 1-D integer array")
    if lengths.size and (lengths.min() < 0 or lengths.max() > _MAX_CODE_BITS):
        raise ValueError(f"huffman: code lengths must be in [0, {_MAX_CODE_BITS}]")
    lengths = lengths.astype(np.int64)
    count = np.bincount(lengths, minlength=_MAX_CODE_BITS + 1).astype(np.int64)
    count[0] = 0
    # Kraft's inequality sum(2^-l) <= 1, in exact integer arithmetic.
    kraft = sum(int(c) << (_MAX_CODE_BITS - l) for l, c in enumerate(count) if l)
    if kraft > 1 << _MAX_CODE_BITS:
        raise ValueError("huffman: code lengths violate Kraft's inequality")
    first_code = np.zeros(_MAX_CODE_BITS + 1, np.int64)
    for length in range(1, _MAX_CODE_BITS + 1):  # DEFLATE's canonical assignment
        first_code[length] = (first_code[length - 1] + count[length - 1]) << 1
    first_index = np.concatenate(([0], np.cumsum(count)[:-1])).astype(np.int64)
    symbols = np.flatnonzero(lengths)
    sorted_symbols = symbols[np.argsort(lengths[symbols], kind="stable")].astype(np.int64)
    return first_code, count, first_index, sorted_symbols


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical codes (uint32; the low ``lengths[s]`` bits are symbol ``s``'s code).

    Symbols are ordered by (length, symbol); each code is the previous one plus one, shifted
    left whenever the length grows. Unused symbols (length 0) get code 0.
    """
    first_code, _, first_index, sorted_symbols = _length_tables(lengths)
    lengths = np.asarray(lengths).astype(np.int64)
    sym_lengths = lengths[sorted_symbols]
    rank = np.arange(sorted_symbols.size) - first_index[sym_lengths]
    codes = np.zeros(lengths.size, np.uint32)
    codes[sorted_symbols] = first_code[sym_lengths] + rank
    return codes


@numba.njit(cache=True)
def _pack_bits(
    codes: np.ndarray, lengths: np.ndarray, n_bytes: int
) -> np.ndarray:  # pragma: no cover
    out = np.zeros(n_bytes, np.uint8)
    acc = 0  # holds at most 7 + 32 pending bits; masked to stay a positive int64
    pending = 0
    pos = 0
    for i in range(codes.size):
        acc = ((acc << lengths[i]) | codes[i]) & 0xFFFFFFFFFFFF
        pending += lengths[i]
        while pending >= 8:
            pending -= 8
            out[pos] = (acc >> pending) & 0xFF
            pos += 1
    if pending:
        out[pos] = (acc << (8 - pending)) & 0xFF
    return out


def encode(symbols: np.ndarray, lengths: np.ndarray) -> tuple[bytes, int]:
    """Pack ``symbols`` into a canonical-Huffman bitstream (MSB-first).

    Returns ``(data, n_bits)``; the last byte is zero-padded. Each symbol's code and length
    come from a table lookup; a compiled loop concatenates them at cumulative bit offsets.
    """
    symbols = np.asarray(symbols).ravel()
    lengths = np.asarray(lengths)
    if symbols.size and not np.issubdtype(symbols.dtype, np.integer):
        raise ValueError("huffman: symbols must be integers")
    table = canonical_codes(lengths)
    if symbols.size == 0:
        return b"", 0
    if symbols.min() < 0 or symbols.max() >= lengths.size:
        raise ValueError(f"huffman: symbols must be in [0, {lengths.size})")
    sym_lengths = lengths.astype(np.int64)[symbols]
    if sym_lengths.min() == 0:
        raise ValueError("huffman: a symbol to encode has code length 0")
    n_bits = int(sym_lengths.sum())
    data = _pack_bits(table.astype(np.int64)[symbols], sym_lengths, (n_bits + 7) // 8)
    return data.tobytes(), n_bits


_OK, _INVALID, _TRUNCATED = 0, 1, 2


@numba.njit(cache=True)
def _decode_bits(
    data, n_bits, n_symbols, first_code, count, first_index, sorted_symbols, max_len
):  # pragma: no cover - compiled
    """Canonical decoding bit by bit: after ``l`` bits, ``code - first_code[l] < count[l]``
    identifies a length-``l`` codeword. Every loop is bounded by ``n_bits`` and ``max_len``."""
    out = np.empty(n_symbols, np.int64)
    bit_pos = 0
    for i in range(n_symbols):
        code = 0
        length = 0
        while True:
            if length == max_len:
                return out, bit_pos, _INVALID
            if bit_pos >= n_bits:
                return out, bit_pos, _TRUNCATED
            code = (code << 1) | ((data[bit_pos >> 3] >> (7 - (bit_pos & 7))) & 1)
            bit_pos += 1
            length += 1
            k = code - first_code[length]
            if 0 <= k < count[length]:
                out[i] = sorted_symbols[first_index[length] + k]
                break
    return out, bit_pos, _OK


def decode(data: bytes, n_bits: int, n_symbols: int, lengths: np.ndarray) -> np.ndarray:
    """Decode ``n_symbols`` symbols (int64) from a stream written by :func:`encode`.

    Raises ``ValueError`` if the stream ends early, holds a bit pattern that is no codeword,
    or has bits left over after ``n_symbols`` symbols.
    """
    first_code, count, first_index, sorted_symbols = _length_tables(lengths)
    if n_bits < 0 or n_symbols < 0:
        raise ValueError("huffman: n_bits and n_symbols must be non-negative")
    if n_bits > 8 * len(data):
        raise ValueError(f"huffman: n_bits={n_bits} exceeds the {len(data)}-byte stream")
    if n_symbols == 0:
        if n_bits:
            raise ValueError("huffman: bits present but no symbols to decode")
        return np.empty(0, np.int64)
    if sorted_symbols.size == 0:
        raise ValueError("huffman: no symbol has a code")
    buffer = np.frombuffer(data, np.uint8)
    max_len = int(np.flatnonzero(count).max())
    out, bit_pos, status = _decode_bits(
        buffer, n_bits, n_symbols, first_code, count, first_index, sorted_symbols, max_len
    )
    if status == _INVALID:
        raise ValueError(f"huffman: invalid code at bit {bit_pos}")
    if status == _TRUNCATED:
        raise ValueError(f"huffman: stream ended after {bit_pos} bits, before {n_symbols} symbols")
    if bit_pos != n_bits:
        raise ValueError(f"huffman: {n_bits - bit_pos} bits left over after {n_symbols} symbols")
    return out


def entropy_bits(counts: np.ndarray) -> float:
    """Empirical entropy bound in bits: ``sum(-c * log2(c / N))`` over ``c > 0``, ``N = sum(c)``.

    No prefix code can use fewer bits for these counts; Huffman uses fewer than ``N`` more.
    """
    counts = np.asarray(counts, dtype=np.float64)
    counts = counts[counts > 0]
    if counts.size == 0:
        return 0.0
    return float(-(counts * np.log2(counts / counts.sum())).sum())

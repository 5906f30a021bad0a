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

from netshrink.primitives.bitpack import concatenate_codes

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
def _count_bits(symbols: np.ndarray, lengths: np.ndarray) -> int:  # pragma: no cover - compiled
    """Total code bits of ``symbols``; -1 if a symbol is outside the alphabet, -2 if one has no
    code (range errors take precedence, so the message does not depend on symbol order)."""
    n_bits = 0
    uncoded = False
    for i in range(symbols.size):
        s = symbols[i]
        if s < 0 or s >= lengths.size:
            return -1
        n_bits += lengths[s]
        uncoded |= lengths[s] == 0
    return -2 if uncoded else n_bits


def encode(symbols: np.ndarray, lengths: np.ndarray) -> tuple[bytes, int]:
    """Pack ``symbols`` into a canonical-Huffman bitstream (MSB-first).

    Returns ``(data, n_bits)``; the last byte is zero-padded. A compiled pass sums the code
    lengths (validating every symbol), a second concatenates the codes.
    """
    symbols = np.asarray(symbols).ravel()
    lengths = np.asarray(lengths)
    if symbols.size and not np.issubdtype(symbols.dtype, np.integer):
        raise ValueError("huffman: symbols must be integers")
    codes = canonical_codes(lengths).astype(np.int64)
    if symbols.size == 0:
        return b"", 0
    lengths = lengths.astype(np.int64)
    n_bits = _count_bits(symbols, lengths)
    if n_bits == -1:
        raise ValueError(f"huffman: symbols must be in [0, {lengths.size})")
    if n_bits == -2:
        raise ValueError("huffman: a symbol to encode has code length 0")
    out = np.empty((n_bits + 7) // 8, np.uint8)
    concatenate_codes(symbols, codes, lengths, out)
    return out.tobytes(), n_bits


_OK, _INVALID, _TRUNCATED = 0, 1, 2
# First-level decoding table: the next _TABLE_BITS bits index 2^12 int32 entries (16 KiB, fits
# in L1) holding ``sorted_index << 6 | length``. Length 0 marks a prefix of no codeword;
# _LONG marks the prefix of a code longer than the table, resolved by canonical search.
_TABLE_BITS = 12
_LONG = 63


def _decode_table(
    first_code: np.ndarray, count: np.ndarray, first_index: np.ndarray, table_bits: int
) -> np.ndarray:
    """``table[w]`` for every ``table_bits``-bit window ``w``: the code that ``w`` starts with.

    Canonical codes of one length are consecutive integers, so each length fills one
    contiguous slice: a code of length ``l <= table_bits`` owns the ``2^(table_bits - l)``
    windows it prefixes; the prefixes of longer codes are marked _LONG. Kraft's inequality
    (checked by :func:`_length_tables`) keeps the slices disjoint; the rest stay 0 (invalid).
    """
    table = np.zeros(1 << table_bits, np.int32)
    for length in np.flatnonzero(count):
        code, n = int(first_code[length]), int(count[length])
        if length <= table_bits:
            shift = table_bits - length
            index = first_index[length] + (np.arange(n << shift) >> shift)  # < 2^table_bits
            table[code << shift : (code + n) << shift] = (index << 6) | length
        else:
            shift = length - table_bits
            table[code >> shift : ((code + n - 1) >> shift) + 1] = _LONG
    return table


@numba.njit(cache=True)
def _decode_symbols(
    words, n_bits, out, table, table_bits, max_len, first_code, count, first_index, sorted_symbols
):  # pragma: no cover - compiled
    """Decode ``out.size`` symbols from big-endian 32-bit ``words``; returns (bit_pos, status).

    ``buf`` holds the next ``held`` unread bits left-aligned, so the table window is its top
    ``table_bits`` bits and consuming a code is a left shift; a 32-bit word is OR-ed in below
    them whenever fewer than 32 remain, so any code (<= 32 bits) can be peeked.

    Results and errors are those of the bit-by-bit canonical decoder: a window that starts
    with a codeword of length ``l`` decodes it if ``l`` bits remain, else the stream is
    truncated; a window that starts with no codeword is an invalid code if ``max_len`` bits
    remain (the bit-by-bit decoder reads ``max_len`` bits before giving up), else truncated.
    Every loop is bounded, and each symbol consumes at least one bit or returns.
    """
    window_shift = 64 - table_bits
    window_mask = (1 << table_bits) - 1  # the mask undoes the arithmetic (signed) shift
    buf = 0
    held = 0
    word_pos = 0  # 32 * word_pos == bit_pos + held < n_bits + 32 before a refill: in range
    bit_pos = 0
    for i in range(out.size):
        if held < 32:
            buf |= np.int64(words[word_pos]) << (32 - held)
            word_pos += 1
            held += 32
        entry = table[(buf >> window_shift) & window_mask]
        length = entry & 63
        symbol = 0
        if length == _LONG:  # canonical search over the code lengths past the table
            length = 0
            window = (buf >> (64 - max_len)) & ((1 << max_len) - 1)
            for candidate in range(table_bits + 1, max_len + 1):
                k = (window >> (max_len - candidate)) - first_code[candidate]
                if 0 <= k < count[candidate]:
                    symbol = sorted_symbols[first_index[candidate] + k]
                    length = candidate
                    break
        else:
            symbol = sorted_symbols[entry >> 6]
        if length == 0:
            if n_bits - bit_pos >= max_len:
                return bit_pos + max_len, _INVALID
            return n_bits, _TRUNCATED
        if length > n_bits - bit_pos:
            return n_bits, _TRUNCATED
        out[i] = symbol
        bit_pos += length
        held -= length
        buf <<= length
    return bit_pos, _OK


def _stream_words(data: bytes, n_bits: int) -> np.ndarray:
    """The first ``n_bits`` bits of ``data`` as native uint32 words, MSB-first, zero-padded
    past ``n_bits`` and by one extra word, so the decoder never reads past its input."""
    n_bytes = (n_bits + 7) // 8
    padded = np.zeros(4 * ((n_bits + 31) // 32 + 1), np.uint8)
    padded[:n_bytes] = np.frombuffer(data, np.uint8)[:n_bytes]
    if n_bits % 8:
        padded[n_bytes - 1] &= (0xFF << (8 - n_bits % 8)) & 0xFF
    return padded.view(">u4").astype(np.uint32)


def decode(data: bytes, n_bits: int, n_symbols: int, lengths: np.ndarray) -> np.ndarray:
    """Decode ``n_symbols`` symbols (int64) from a stream written by :func:`encode`.

    Each step peeks the next ``min(max_len, 12)`` bits and looks up the code they start
    with in a table built from the canonical code; longer codes finish by canonical search.

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
    max_len = int(np.flatnonzero(count).max())
    table_bits = min(max_len, _TABLE_BITS)
    table = _decode_table(first_code, count, first_index, table_bits)
    # n_bits bits hold at most n_bits symbols, so decoding fails by symbol n_bits + 1: a larger
    # n_symbols (say, from a corrupt header) is truncated, not a huge allocation. Allocating
    # here rather than in numba lets numpy back large outputs with huge pages (faster faults).
    out = np.empty(min(n_symbols, n_bits + 1), np.int64)
    bit_pos, status = _decode_symbols(
        _stream_words(data, n_bits),
        n_bits,
        out,
        table,
        table_bits,
        max_len,
        first_code,
        count,
        first_index,
        sorted_symbols,
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

"""Relative indexing of sparse positions with filler entries (Deep Compression §2).

Han, Mao, Dally (2016), §2 and Figure 2: a pruned layer stores its surviving weights in order,
each with the *gap* from the previous stored entry in ``index_bits`` bits instead of its
absolute position. When more zeros separate two survivors than ``index_bits`` can express,
a filler entry is stored at a zero position (its value is zero).

Convention used here (and by the ``.nsz`` format): the gap of an entry is the number of zero
positions skipped before it, so ``gap in [0, 2**index_bits - 1]`` and the entry's position is
``previous_position + gap + 1`` (the first entry's previous position is -1). Fillers also
cover a long run of trailing zeros, so a layer of ``n`` positions always satisfies
``n <= (entries + 1) * 2**index_bits`` — which lets a reader bound a layer's size by the
size of its stream.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["decode_positions", "encode_positions", "max_gap", "scatter_relative"]

MAX_INDEX_BITS = 16


def max_gap(index_bits: int) -> int:
    """The largest gap ``index_bits`` can hold: ``2**index_bits - 1``."""
    if not 1 <= int(index_bits) <= MAX_INDEX_BITS:
        raise ValueError(f"index_bits must be in 1..{MAX_INDEX_BITS}, got {index_bits}")
    return (1 << int(index_bits)) - 1


def encode_positions(
    positions: np.ndarray, length: int, index_bits: int
) -> tuple[np.ndarray, np.ndarray]:
    """Gaps and entry positions for the sorted nonzero ``positions`` of a length-``length`` vector.

    Returns ``(gaps, entries)``: ``gaps`` (uint16) has one value per stored entry, fillers
    included; ``entries`` (int64) are the flat positions of those entries, so the caller
    gathers the stored values as ``flat[entries]`` (a filler lands on a zero and stores 0).

    With ``M = 2**index_bits``, a survivor preceded by ``z`` zeros gets ``z // M`` fillers,
    each skipping ``M - 1`` zeros and sitting on the next, then its own gap ``z % M``.
    """
    m = max_gap(index_bits) + 1
    positions = np.asarray(positions, dtype=np.int64).ravel()
    if positions.size and (
        positions[0] < 0 or positions[-1] >= length or np.any(np.diff(positions) <= 0)
    ):
        raise ValueError("positions must be strictly increasing and inside [0, length)")
    # A virtual survivor at ``length`` makes trailing zeros get fillers like any other run.
    ends = np.append(positions, length)
    zeros = np.diff(ends, prepend=-1) - 1  # zeros skipped before each survivor
    fillers = zeros // m
    total = positions.size + int(fillers[:-1].sum()) + int(fillers[-1])
    gaps = np.full(total, m - 1, dtype=np.uint16)
    own = np.arange(positions.size) + np.cumsum(fillers[:-1])  # slots of the real survivors
    gaps[own] = zeros[:-1] - fillers[:-1] * m
    entries = np.cumsum(gaps.astype(np.int64) + 1) - 1
    return gaps, entries


def decode_positions(gaps: np.ndarray, length: int) -> np.ndarray:
    """Flat positions (int64) of the entries described by ``gaps``; inverse of the encoder.

    Raises ``ValueError`` if an entry falls outside ``[0, length)``.
    """
    gaps = np.asarray(gaps).ravel()
    if gaps.size and (not np.issubdtype(gaps.dtype, np.integer) or gaps.min() < 0):
        raise ValueError("gaps must be non-negative integers")
    entries = np.cumsum(gaps.astype(np.int64) + 1) - 1
    if entries.size and entries[-1] >= length:
        raise ValueError(
            f"relative index runs past the end: entry at position {int(entries[-1])} "
            f"in a tensor of {length} values"
        )
    return entries


@numba.njit(cache=True)
def _scatter(gaps, values, out):  # pragma: no cover - compiled
    position = -1
    for i in range(gaps.size):
        position += gaps[i] + 1
        if position >= out.size:
            return i
        out[position] = values[i]
    return -1


def scatter_relative(gaps: np.ndarray, values: np.ndarray, length: int) -> np.ndarray:
    """The dense vector whose entries are ``values`` at the positions ``gaps`` describe.

    One pass, positions accumulated on the fly (no position array): equal to
    ``out[decode_positions(gaps, length)] = values`` on a zero vector, and the hot loop of
    unpacking a pruned layer. Raises ``ValueError`` if an entry falls outside the vector.
    """
    gaps = np.ascontiguousarray(gaps)
    values = np.ascontiguousarray(values)
    if gaps.shape != values.shape or gaps.ndim != 1:
        raise ValueError("gaps and values must be 1-D arrays of the same length")
    if gaps.size and (not np.issubdtype(gaps.dtype, np.integer) or gaps.min() < 0):
        raise ValueError("gaps must be non-negative integers")
    out = np.zeros(length, values.dtype)
    bad = _scatter(gaps.astype(np.int64, copy=False), values, out)
    if bad >= 0:
        raise ValueError(f"relative index runs past the end at entry {bad} of a {length}-vector")
    return out

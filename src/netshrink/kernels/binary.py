"""Bit-packed XNOR-Net kernels: binary GEMM, convolution and fully connected layers (CPU).

Rastegari et al., "XNOR-Net" (ECCV 2016), §3.2: with ±1 inputs and weights a dot
product of length ``k`` is ``k - 2·popcount(a XOR b)`` over the packed signs, 64
multiply-adds per word, so the layer is ``((dot·α)·K) + bias`` at bit-wise cost.

Conventions (the float simulation in :mod:`netshrink.binarize` computes exactly this):

- ``sign(v) = +1`` if ``v >= 0`` else ``-1`` (0 and -0.0 → +1, NaN → -1); a set bit is -1.
- Along the packed axis element ``k`` is bit ``k % 64`` of word ``k // 64``. The padding bits
  of a row's last word are 0 in both operands, so they never mismatch and
  ``dot = k - 2·popcount`` is exact for any length.
- Zero padding of a convolution contributes 0, which one bit cannot say. Padded pixels are
  packed as +1 (bit 0) and the surplus subtracted: ``corr[o, y, x]``, the sum of
  ``sign(w)[o, c, ky, kx]`` over the taps of output (y, x) that fall in the padding (summed
  over c). It depends only on the weights and the map size, is non-zero only on border
  outputs, and costs one pass over the weights (per-tap sums, ``C - 2·popcount``) plus a
  few vector adds per border output, so it is computed on every call into a table of the
  border outputs rather than cached (no state, no stale-cache risk), and subtracted from
  the dots before they are scaled.
- Float outputs are ``((float32(dot)·alpha[o])·input_scale) + bias[o]``, each step rounded
  to float32 in that order and never contracted into an FMA (no ``fastmath``): bit-identical
  to the same expression in torch on the ±1 float tensors; a missing ``input_scale`` or
  ``bias`` is skipped, not replaced by 1 or 0 (``-0.0 + 0.0`` would be ``+0.0``). Each layer
  kind has one compiled kernel with a float32 output, the bare dots (``*_counts``,
  :func:`binary_gemm`) included, so dots must stay below ``2**24`` to be exact; longer
  ones are refused.

Design of :func:`binary_conv2d` (all loops compiled by numba, parallel over work items with
``prange``, so ``numba.set_num_threads`` sets the threads):

1. Sign and pack the activations into a zero-bordered ``(N, H+2p, W+2p, words(C))`` word
   array: channels packed per pixel (NHWC-like), so the ``kw`` pixels of a tap row are
   ``kw·words(C)`` contiguous words.
2. A work item is a run of output pixels of one image. Blocks of up to 96 of its pixels
   are gathered word-wise (im2col) into a ``(block, Kp)`` buffer that stays in L1; rows are
   zero-padded to ``Kp``, a multiple of the SIMD width when that wastes little, so the
   vectorized loop has no scalar tail.
3. A 6 × 2 register-blocked micro-kernel (6 pixels × 2 output channels, 12 accumulators)
   runs over the contiguous words; LLVM vectorizes its xor/popcount/add (``vpopcntq`` on
   AVX-512 VPOPCNTDQ, a ``vpshufb`` nibble table on AVX2), each loaded word serving 2 or 6
   pairs. Each pair of channels sweeps the whole block, so the weights stream once per
   block while the block's dots for those channels are buffered, corrected on the border
   and scaled in a vectorized pass straight into NCHW ``out[n, o, block]``.

:func:`binary_gemm` and :func:`binary_linear` use the same micro-kernel with the operand of
more rows on its 6-row side (the weights, for a batch below 6) and a plain dot per row for
a single input row.
"""

from __future__ import annotations

import math

import llvmlite.binding as llvm
import numba
import numpy as np
from numba import prange

from netshrink.kernels._popcount import popcount

__all__ = [
    "WORD_BITS",
    "binary_conv2d",
    "binary_conv2d_counts",
    "binary_gemm",
    "binary_linear",
    "pack_conv_weight",
    "pack_rows",
    "words",
]

WORD_BITS = 64
_TILE_ROWS = 6  # output pixels (GEMM rows) per micro-kernel tile
_TILE_COLS = 2  # output channels per micro-kernel tile: 12 vector accumulators
_EXACT_BITS = 1 << 24  # float32 holds every integer dot below this exactly
_ITEMS_PER_THREAD = 4  # parallel work items per thread, for load balance
_BLOCK_ROWS = 96  # most output pixels gathered (im2col) at a time ...
_BLOCK_WORDS = 2048  # ... and most words: 16 KiB, the gathered block stays in L1


def words(n_bits: int) -> int:
    """Words of 64 bits holding ``n_bits`` bits: ``ceil(n_bits / 64)``."""
    return -(-int(n_bits) // WORD_BITS)


def _simd_words() -> int:
    """uint64 lanes of the widest vector numba compiles for: 8 with AVX-512, else 4."""
    features = numba.config.CPU_FEATURES
    if features is None:  # numba compiles for the host
        return 8 if llvm.get_host_cpu_features().get("avx512f", False) else 4
    return 8 if "+avx512f" in features else 4


_SIMD_WORDS = _simd_words()


def _padded_words(n_words: int) -> int:
    """Row length in words for the GEMM: a multiple of the SIMD width when it wastes <= 1/3."""
    padded = -(-n_words // _SIMD_WORDS) * _SIMD_WORDS
    return padded if 3 * padded <= 4 * n_words else n_words


# --- compiled kernels ---------------------------------------------------------------------


@numba.njit(cache=True, parallel=True)
def _pack_rows(x, out):  # pragma: no cover - compiled
    """Signs of the rows of x (M, K) into out (M, words(K)), a row per prange iteration."""
    m, k = x.shape
    for i in prange(m):
        for w in range(out.shape[1]):
            word = np.uint64(0)
            for b in range(min(WORD_BITS, k - w * WORD_BITS)):
                word |= np.uint64(not x[i, w * WORD_BITS + b] >= 0) << np.uint64(b)
            out[i, w] = word


@numba.njit(cache=True, inline="always")
def _pack_activations(x, pad_h, pad_w, out):  # pragma: no cover - compiled
    """Signs of ``x`` (N, C, H, W) into ``out`` (N, H+2·pad_h, W+2·pad_w, words(C)), whose
    border must already be zero (bit 0 = +1, which the padding correction assumes)."""
    n_img, chans, height, width = x.shape
    n_words = out.shape[3]
    plane_size = height * width
    x_flat = x.reshape(-1)
    for item in prange(n_img * n_words):
        n = item // n_words
        w = item % n_words
        plane = np.zeros(plane_size, np.uint64)  # word w of every pixel, a bit at a time
        for b in range(min(WORD_BITS, chans - w * WORD_BITS)):
            start = (n * chans + w * WORD_BITS + b) * plane_size
            channel = x_flat[start : start + plane_size]
            shift = np.uint64(b)
            for i in range(plane_size):  # branch-free, so LLVM vectorizes it
                plane[i] |= np.uint64(not channel[i] >= 0) << shift
        for h in range(height):
            for col in range(width):
                out[n, h + pad_h, col + pad_w, w] = plane[h * width + col]


@numba.njit(cache=True, inline="always")
def _mismatches_tile(a, i, b, j, n_words):  # pragma: no cover - compiled
    """popcount(a[i + r] ^ b[j + s]) summed over words, as [s][r] for the 6 x 2 tile.

    Twelve scalar accumulators: LLVM vectorizes the loop over words, one vector register
    each, with the 6 + 2 loaded words shared by the 12 pairs.
    """
    c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = 0
    for t in range(n_words):
        b0 = b[j, t]
        b1 = b[j + 1, t]
        a0 = a[i, t]
        a1 = a[i + 1, t]
        a2 = a[i + 2, t]
        a3 = a[i + 3, t]
        a4 = a[i + 4, t]
        a5 = a[i + 5, t]
        c00 += popcount(a0 ^ b0)
        c01 += popcount(a0 ^ b1)
        c10 += popcount(a1 ^ b0)
        c11 += popcount(a1 ^ b1)
        c20 += popcount(a2 ^ b0)
        c21 += popcount(a2 ^ b1)
        c30 += popcount(a3 ^ b0)
        c31 += popcount(a3 ^ b1)
        c40 += popcount(a4 ^ b0)
        c41 += popcount(a4 ^ b1)
        c50 += popcount(a5 ^ b0)
        c51 += popcount(a5 ^ b1)
    return (c00, c10, c20, c30, c40, c50), (c01, c11, c21, c31, c41, c51)


@numba.njit(cache=True, inline="always")
def _mismatches(a, i, b, j, n_words):  # pragma: no cover - compiled
    """popcount(a[i] ^ b[j]) summed over words."""
    c = 0
    for t in range(n_words):
        c += popcount(a[i, t] ^ b[j, t])
    return c


@numba.njit(cache=True, inline="always")
def _scaled(dot, alpha, scale, bias, has_scale, has_bias):  # pragma: no cover - compiled
    """``((float32(dot)·alpha)·scale) + bias`` in float32, in this order (the float
    simulation's), skipping the factor / the term when absent (its argument is then unused)."""
    v = np.float32(dot) * alpha
    if has_scale:
        v = v * scale
    if has_bias:
        v = v + bias
    return v


@numba.njit(cache=True, inline="always")
def _store(
    out, x, w, dot, alpha, scale, bias, has_scale, has_bias, counts
):  # pragma: no cover - compiled
    """``out[x, w]`` for input row ``x`` and weight row ``w``: the dot, or it scaled."""
    if counts:
        out[x, w] = dot
    else:
        sc = scale[x] if has_scale else np.float32(1)
        term = bias[w] if has_bias else np.float32(0)
        out[x, w] = _scaled(dot, alpha[w], sc, term, has_scale, has_bias)


@numba.njit(cache=True, inline="always")
def _layer_gemm(
    inputs, weights, k_bits, alpha, scale, bias, has_scale, has_bias, counts, out, threads
):  # pragma: no cover - compiled
    """``out[m, n]`` for packed rows inputs (M, Kw) and weights (N, Kw): the dot if
    ``counts``, else ``((float32(dot)·alpha[n])·scale[m]) + bias[n]`` (see :func:`_scaled`).

    The operand of more rows goes on the 6-row side of the tile as ``a`` (the weights, for
    a batch below 6), zero-padded to 6 rows if shorter. Work items are (row tile, column
    block) pairs, split into ``_ITEMS_PER_THREAD`` runs per thread; a last tile that would
    run past the end of a or b is moved back to end there and keeps only its new rows /
    columns. A single ``b`` row (batch-1 linear) is a plain dot per row of ``a``, streamed.
    """
    transposed = inputs.shape[0] < _TILE_ROWS and weights.shape[0] > inputs.shape[0]
    a = weights if transposed else inputs
    b = inputs if transposed else weights
    rows, cols = a.shape[0], b.shape[0]  # the real ones
    if rows < _TILE_ROWS:
        padded = np.zeros((_TILE_ROWS, a.shape[1]), np.uint64)
        padded[:rows] = a
        a = padded
    m, n_words = a.shape
    col_block = min(256, -(-cols // _TILE_COLS) * _TILE_COLS)  # a block's dots stay in L1
    items = -(-m // _TILE_ROWS) * -(-cols // col_block)
    n_chunks = min(items if cols > 1 else rows, threads * _ITEMS_PER_THREAD)
    if cols == 1:
        for chunk in prange(n_chunks):
            for i in range(chunk * rows // n_chunks, (chunk + 1) * rows // n_chunks):
                dot = k_bits - 2 * _mismatches(a, i, b, 0, n_words)
                w, x = (i, 0) if transposed else (0, i)
                _store(out, x, w, dot, alpha, scale, bias, has_scale, has_bias, counts)
    else:
        col_blocks = -(-cols // col_block)
        for chunk in prange(n_chunks):
            dots = np.empty((_TILE_ROWS, col_block), np.int32)
            for item in range(chunk * items // n_chunks, (chunk + 1) * items // n_chunks):
                i0 = (item // col_blocks) * _TILE_ROWS
                it = min(i0, m - _TILE_ROWS)  # == i0 but for a last, partial tile
                i1 = min(rows, i0 + _TILE_ROWS)
                j0 = (item % col_blocks) * col_block
                j1 = min(cols, j0 + col_block)
                for j in range(j0, j1, _TILE_COLS):
                    jt = min(j, cols - _TILE_COLS)
                    tile = _mismatches_tile(a, it, b, jt, n_words)
                    for s in range(j - jt, _TILE_COLS):
                        for r in range(_TILE_ROWS):
                            dots[r, jt + s - j0] = k_bits - 2 * tile[s][r]
                if transposed:  # a holds the weights: out[j, i0:i1] is contiguous
                    for j in range(j0, j1):
                        for i in range(i0, i1):
                            dot = dots[i - it, j - j0]
                            _store(out, j, i, dot, alpha, scale, bias, has_scale, has_bias, counts)
                else:  # out[i, j0:j1] is contiguous
                    for i in range(i0, i1):
                        for j in range(j0, j1):
                            dot = dots[i - it, j - j0]
                            _store(out, i, j, dot, alpha, scale, bias, has_scale, has_bias, counts)


@numba.njit(cache=True, parallel=True)
def _gemm(
    inputs, weights, k_bits, alpha, scale, bias, has_scale, has_bias, counts, out, threads
):  # pragma: no cover - compiled
    """:func:`_layer_gemm` on numba's threads (one compiled variant: float32 ``out``)."""
    _layer_gemm(
        inputs, weights, k_bits, alpha, scale, bias, has_scale, has_bias, counts, out, threads
    )


@numba.njit(cache=True, inline="always")
def _tap_sums(weight_bits, in_chans):  # pragma: no cover - compiled
    """(kh·kw, O) int32: the sum over channels of sign(w) per tap, ``C - 2·popcount``."""
    n_out, kh, kw, n_words = weight_bits.shape
    per_tap = weight_bits.reshape(n_out, kh * kw, n_words)
    sums = np.empty((kh * kw, n_out), np.int32)
    for o in range(n_out):
        for tap in range(kh * kw):
            c = 0
            for t in range(n_words):
                c += popcount(per_tap[o, tap, t])
            sums[tap, o] = in_chans - 2 * c
    return sums


@numba.njit(cache=True, inline="always")
def _border_correction(
    tap_sums, kernel_size, height, width, out_w, stride, padding, slot
):  # pragma: no cover - compiled
    """The padding correction of the border outputs, from tap_sums (kh·kw, O).

    Fills ``slot`` (Ho·Wo,) with -1 where every tap falls inside the map, else with a row of
    the returned ``corr`` (n_border, O) int32: the tap sums of the taps in the padding.
    """
    kh, kw = kernel_size
    n_out = tap_sums.shape[1]
    n_border = 0
    for p in range(slot.size):
        y0 = (p // out_w) * stride[0] - padding[0]
        x0 = (p % out_w) * stride[1] - padding[1]
        inside = y0 >= 0 and x0 >= 0 and y0 + kh <= height and x0 + kw <= width
        slot[p] = -1 if inside else n_border
        n_border += 0 if inside else 1
    corr = np.zeros((n_border, n_out), np.int32)
    for p in range(slot.size):
        if slot[p] < 0:
            continue
        row = corr[slot[p]]
        y0 = (p // out_w) * stride[0] - padding[0]
        x0 = (p % out_w) * stride[1] - padding[1]
        for ky in range(kh):
            for kx in range(kw):
                if not (0 <= y0 + ky < height and 0 <= x0 + kx < width):
                    tap = tap_sums[ky * kw + kx]
                    for o in range(n_out):
                        row[o] += tap[o]
    return corr


@numba.njit(cache=True, parallel=True)
def _conv(
    x,
    weight_bits,
    w,
    kernel_size,
    stride,
    padding,
    alpha,
    scale,
    bias,
    has_scale,
    has_bias,
    counts,
    out,
    items_per_image,
    block_rows,
):  # pragma: no cover - compiled
    """out (N, O, Ho·Wo) from x (N, C, H, W), weight_bits (O, kh, kw, Cw) and the same
    weights as GEMM rows w (>= O, Kp), zero-padded.

    Packs x into a zero-bordered word array, builds the padding correction, then: each work
    item is a run of output pixels of one image, done in blocks of ``block_rows`` (a multiple
    of _TILE_ROWS): the block's taps are gathered into a (block_rows, Kp) word buffer
    (im2col; zero past kh·kw·Cw and past the last pixel), then for each pair of channels the
    tiles' dots are buffered, the border ones corrected, and written to out[n, o, block]
    contiguously.
    """
    n_img, chans, height, width = x.shape
    kh, kw = kernel_size
    cw = weight_bits.shape[3]
    xp = np.zeros((n_img, height + 2 * padding[0], width + 2 * padding[1], cw), np.uint64)
    _pack_activations(x, padding[0], padding[1], xp)
    _, hp, wp, _ = xp.shape
    kp = w.shape[1]
    n_out = out.shape[1]
    n_pix = out.shape[2]
    out_w = (width + 2 * padding[1] - kw) // stride[1] + 1
    slot = np.empty(n_pix, np.int64)
    corr = _border_correction(
        _tap_sums(weight_bits, chans), kernel_size, height, width, out_w, stride, padding, slot
    )
    k_bits = kh * kw * chans
    tap_words = kw * cw  # one tap row: kw neighbouring pixels, contiguous in xp
    xp_flat = xp.reshape(-1)
    image_tiles = -(-n_pix // _TILE_ROWS)
    for item in prange(out.shape[0] * items_per_image):
        n = item // items_per_image
        part = item % items_per_image  # tiles [part·T/items, (part+1)·T/items) of the image
        p_end = min(n_pix, (part + 1) * image_tiles // items_per_image * _TILE_ROWS)
        buf = np.zeros((block_rows, kp), np.uint64)
        dots = np.empty((_TILE_COLS, block_rows), np.int32)
        fix_row = np.empty(block_rows, np.int64)  # the block's border outputs
        fix_slot = np.empty(block_rows, np.int64)
        for q0 in range(part * image_tiles // items_per_image * _TILE_ROWS, p_end, block_rows):
            rows = min(block_rows, p_end - q0)
            n_tiles = -(-rows // _TILE_ROWS)
            n_fix = 0
            for r in range(rows):
                p = q0 + r
                y = p // out_w
                src = ((n * hp + y * stride[0]) * wp + (p - y * out_w) * stride[1]) * cw
                for ky in range(kh):
                    for t in range(tap_words):
                        buf[r, ky * tap_words + t] = xp_flat[src + ky * wp * cw + t]
                if slot[p] >= 0:
                    fix_row[n_fix] = r
                    fix_slot[n_fix] = slot[p]
                    n_fix += 1
            buf[rows : n_tiles * _TILE_ROWS, :] = 0
            j = 0
            while j < n_out:
                jt = min(j, w.shape[0] - _TILE_COLS)  # a last, partial pair moves back
                for t in range(n_tiles):
                    tile = _mismatches_tile(buf, t * _TILE_ROWS, w, jt, kp)
                    for s in range(_TILE_COLS):
                        for r in range(_TILE_ROWS):
                            dots[s, t * _TILE_ROWS + r] = k_bits - 2 * tile[s][r]
                for s in range(j - jt, min(_TILE_COLS, n_out - jt)):  # the new channels
                    o = jt + s
                    for f in range(n_fix):
                        dots[s, fix_row[f]] -= corr[fix_slot[f], o]
                    dst = out[n, o, q0 : q0 + rows]
                    if counts:
                        for r in range(rows):
                            dst[r] = dots[s, r]
                    else:
                        a_o = alpha[o]
                        b_o = bias[o] if has_bias else np.float32(0)
                        k_row = scale[n, q0 : q0 + rows] if has_scale else scale[0, 0:0]
                        for r in range(rows):
                            k = k_row[r] if has_scale else np.float32(1)
                            dst[r] = _scaled(dots[s, r], a_o, k, b_o, has_scale, has_bias)
                j = jt + _TILE_COLS


# --- validation ---------------------------------------------------------------------------


def _array(name: str, value: object, ndim: int, dtype: type) -> np.ndarray:
    """``value`` as a C-contiguous array (copied if strided), or a ValueError saying why not."""
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(value).__name__}")
    if value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {value.shape}")
    if value.dtype != dtype:
        raise ValueError(f"{name} must be {np.dtype(dtype).name}, got {value.dtype}")
    return np.ascontiguousarray(value)


def _pair(name: str, value: object, minimum: int) -> tuple[int, int]:
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or not all(isinstance(v, int | np.integer) for v in value)
    ):
        raise ValueError(f"{name} must be a tuple of two ints, got {value!r}")
    if min(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value[0]), int(value[1])


def _check_padding_bits(name: str, bits: np.ndarray, n_bits: int) -> None:
    """The last word of every packed row must have its bits past ``n_bits`` clear."""
    used = n_bits % WORD_BITS
    if used and bits.size and np.any(bits[..., -1] >> np.uint64(used)):
        raise ValueError(f"{name} has padding bits set past bit {n_bits}: pack it with pack_rows")


def _vector(name: str, value: object, length: int) -> np.ndarray:
    value = _array(name, value, 1, np.float32)
    if value.shape[0] != length:
        raise ValueError(f"{name} must have shape ({length},), got {value.shape}")
    return value


# Stands in for a missing alpha, input_scale or bias, which the kernels then never read
# (writable, so that it has the type of a real argument and needs no extra compilation).
_ABSENT = np.ones((1, 1), np.float32)


def _optional(name: str, value: object, shape: tuple[int, ...]) -> np.ndarray | None:
    """None, or a float32 array of ``shape``."""
    if value is None:
        return None
    value = _array(name, value, len(shape), np.float32)
    if value.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {value.shape}")
    return value


# --- public API ---------------------------------------------------------------------------


def pack_rows(x: np.ndarray) -> np.ndarray:
    """Signs of the rows of ``x`` (M, K) float32 as (M, words(K)) uint64: bit set iff
    ``not x >= 0`` (so -0.0 → +1 and NaN → -1); element k is bit k % 64 of word k // 64."""
    x = _array("x", x, 2, np.float32)
    out = np.empty((x.shape[0], words(x.shape[1])), np.uint64)
    _pack_rows(x, out)
    return out


def binary_gemm(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Dots of ±1 vectors: ``out[m, n] = k - 2·popcount(a[m] XOR b[n])``, int32 (M, N).

    ``a`` (M, Kw) and ``b`` (N, Kw) are packed rows (:func:`pack_rows`) of length
    ``k < 2**24``, ``Kw = words(k)``, with the padding bits of their last word clear.
    """
    a = _array("a", a, 2, np.uint64)
    b = _array("b", b, 2, np.uint64)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have as many words per row, got {a.shape} and {b.shape}")
    if int(k) < 0 or words(k) != a.shape[1]:
        raise ValueError(f"k={k} bits does not fit {a.shape[1]} words per row")
    _check_padding_bits("a", a, int(k))
    _check_padding_bits("b", b, int(k))
    _check_exact(int(k))
    out = np.empty((a.shape[0], b.shape[0]), np.float32)
    if out.size:
        absent = _ABSENT[0]
        threads = numba.get_num_threads()
        _gemm(a, b, int(k), absent, absent, absent, False, False, True, out, threads)
    return out.astype(np.int32)


def _check_exact(k_bits: int) -> None:
    """Dots pass through float32 (one compiled kernel per layer kind), exact below 2**24."""
    if k_bits >= _EXACT_BITS:
        raise ValueError(f"dots of {k_bits} >= 2**24 bits are not exact in float32")


def binary_linear(
    x: np.ndarray,
    weight_bits: np.ndarray,
    in_features: int,
    alpha: np.ndarray,
    input_scale: np.ndarray | None = None,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    """XNOR-Net fully connected layer (XNOR-Net §3.2), float32 (N, O).

    ``out[n, o] = ((float32(dot[n, o]) · alpha[o]) · input_scale[n]) + bias[o]`` with
    ``dot[n, o] = Σ_c sign(x[n, c]) · sign(w[o, c])``, skipping the ``input_scale`` factor
    and the ``bias`` term when None. ``x`` (N, C) float32, ``weight_bits = pack_rows(w)``
    (O, words(C)), ``alpha`` and ``bias`` (O,), ``input_scale`` (N,) float32.
    """
    x = _array("x", x, 2, np.float32)
    weight_bits = _array("weight_bits", weight_bits, 2, np.uint64)
    if x.shape[1] != in_features:
        raise ValueError(f"x has {x.shape[1]} features, the layer takes {in_features}")
    if weight_bits.shape[1] != words(in_features):
        raise ValueError(
            f"weight_bits has {weight_bits.shape[1]} words per row, "
            f"{in_features} features need {words(in_features)}"
        )
    _check_padding_bits("weight_bits", weight_bits, in_features)
    n_out = weight_bits.shape[0]
    alpha = _vector("alpha", alpha, n_out)
    scale = _optional("input_scale", input_scale, (x.shape[0],))
    bias = _optional("bias", bias, (n_out,))
    _check_exact(in_features)
    out = np.empty((x.shape[0], n_out), np.float32)
    if out.size:
        _gemm(
            pack_rows(x),
            weight_bits,
            int(in_features),
            alpha,
            _ABSENT[0] if scale is None else scale,
            _ABSENT[0] if bias is None else bias,
            scale is not None,
            bias is not None,
            False,
            out,
            numba.get_num_threads(),
        )
    return out


def pack_conv_weight(weight: np.ndarray) -> np.ndarray:
    """Signs of a conv weight (O, C, kh, kw) float32 as (O, kh, kw, words(C)) uint64,
    the channels of each tap packed as by :func:`pack_rows`."""
    weight = _array("weight", weight, 4, np.float32)
    n_out, chans, kh, kw = weight.shape
    per_tap = np.ascontiguousarray(weight.transpose(0, 2, 3, 1)).reshape(-1, chans)
    return pack_rows(per_tap).reshape(n_out, kh, kw, words(chans))


def binary_conv2d_counts(
    x: np.ndarray,
    weight_bits: np.ndarray,
    in_chans: int,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
) -> np.ndarray:
    """The dots of :func:`binary_conv2d`, int32 (N, O, Ho, Wo)."""
    return _conv_forward(x, weight_bits, in_chans, kernel_size, stride, padding, None, None, None)


def binary_conv2d(
    x: np.ndarray,
    weight_bits: np.ndarray,
    in_chans: int,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    alpha: np.ndarray,
    input_scale: np.ndarray | None = None,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    """XNOR-Net convolution (XNOR-Net §3.2), float32 (N, O, Ho, Wo) C-contiguous.

    ``dot[n, o, y, x] = Σ_{c, ky, kx} sign(x_pad)[n, c, y·s+ky, x·s+kx] · sign(w)[o, c, ky, kx]``
    where ``x_pad`` is ``x`` zero-padded (a padded position contributes 0), and
    ``out = ((float32(dot) · alpha[o]) · input_scale[n, y, x]) + bias[o]``, skipping the
    ``input_scale`` factor and the ``bias`` term when None.

    ``x`` (N, C, H, W) float32; ``weight_bits`` from :func:`pack_conv_weight`; ``alpha`` (O,),
    ``input_scale`` (N, Ho, Wo) and ``bias`` (O,) float32.
    """
    if alpha is None:
        raise ValueError("alpha is required (binary_conv2d_counts gives the bare dots)")
    return _conv_forward(
        x, weight_bits, in_chans, kernel_size, stride, padding, alpha, input_scale, bias
    )


def _conv_work_split(n_img: int, n_pix: int, row_words: int) -> tuple[int, int]:
    """(items per image, block rows) for :func:`_conv`.

    An item is a run of whole tiles of one image. prange hands each thread an equal run of
    items, so their count is a multiple of the thread count (and, with several threads, a
    few per thread, for balance) while an item keeps at least two tiles. A block of gathered
    rows fits in ``_BLOCK_WORDS`` words (L1).
    """
    threads = numba.get_num_threads()
    image_tiles = -(-n_pix // _TILE_ROWS)
    items_per_image = threads // math.gcd(n_img, threads)
    while (
        threads > 1
        and n_img * items_per_image < threads * _ITEMS_PER_THREAD
        and image_tiles >= 2 * 2 * items_per_image
    ):
        items_per_image *= 2
    item_tiles = -(-image_tiles // items_per_image)
    block_tiles = min(_BLOCK_ROWS, _BLOCK_WORDS // row_words) // _TILE_ROWS
    return items_per_image, max(1, min(block_tiles, item_tiles)) * _TILE_ROWS


def _conv_forward(x, weight_bits, in_chans, kernel_size, stride, padding, alpha, scale, bias):
    """Validate, lay the weights out as GEMM rows, run :func:`_conv`; ``alpha=None`` means
    counts."""
    x = _array("x", x, 4, np.float32)
    weight_bits = _array("weight_bits", weight_bits, 4, np.uint64)
    kh, kw = _pair("kernel_size", kernel_size, 1)
    stride = _pair("stride", stride, 1)
    padding = _pair("padding", padding, 0)
    n_img, chans, height, width = x.shape
    n_out = weight_bits.shape[0]
    if chans != in_chans:
        raise ValueError(f"x has {chans} channels, the layer takes {in_chans}")
    if chans < 1:
        raise ValueError("a binary convolution needs at least one input channel")
    if weight_bits.shape[1:] != (kh, kw, words(in_chans)) or n_out == 0:
        raise ValueError(
            f"weight_bits must have shape (O > 0, {kh}, {kw}, {words(in_chans)}) for "
            f"kernel_size {(kh, kw)} and {in_chans} channels, got {weight_bits.shape}"
        )
    _check_padding_bits("weight_bits", weight_bits, in_chans)
    out_h = (height + 2 * padding[0] - kh) // stride[0] + 1
    out_w = (width + 2 * padding[1] - kw) // stride[1] + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"a {(height, width)} map padded by {padding} is smaller than the {(kh, kw)} kernel"
        )
    counts = alpha is None
    alpha = _ABSENT[0] if counts else _vector("alpha", alpha, n_out)
    n_pix = out_h * out_w
    scale = _optional("input_scale", scale, (n_img, out_h, out_w))
    bias = _optional("bias", bias, (n_out,))
    n_words = kh * kw * words(chans)
    w = weight_bits.reshape(n_out, n_words)
    row_words = _padded_words(n_words)
    if row_words != n_words or n_out < _TILE_COLS:  # zero words / channels: no effect on dots
        w = np.zeros((max(n_out, _TILE_COLS), row_words), np.uint64)
        w[:n_out, :n_words] = weight_bits.reshape(n_out, n_words)
    items_per_image, block_rows = _conv_work_split(n_img, n_pix, row_words)
    _check_exact(kh * kw * chans)
    out = np.empty((n_img, n_out, n_pix), np.float32)
    _conv(
        x,
        weight_bits,
        w,
        (kh, kw),
        stride,
        padding,
        alpha,
        _ABSENT if scale is None else scale.reshape(n_img, n_pix),
        _ABSENT[0] if bias is None else bias,
        scale is not None,
        bias is not None,
        counts,
        out,
        items_per_image,
        block_rows,
    )
    out = out.reshape(n_img, n_out, out_h, out_w)
    return out.astype(np.int32) if counts else out

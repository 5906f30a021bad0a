"""The compiled loops of :mod:`netshrink.kernels.binary`: packing, the popcount GEMM and the
binary convolution, all compiled by numba (``cache=True``, no ``fastmath``).

They read their arguments unchecked: :mod:`netshrink.kernels.binary` validates them
(:mod:`netshrink.kernels.checks`), chooses the work split and the row padding, and documents
the conventions these loops implement (sign and bit order, the padding correction, the
float32 rounding order of the scaled outputs).

Design of :func:`_conv` (parallel over work items with ``prange``, so
``numba.set_num_threads`` sets the threads):

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

:func:`_gemm` (binary GEMM and linear layers) uses the same micro-kernel with the operand
of more rows on its 6-row side (the weights, for a batch below 6) and a plain dot per row
for a single input row.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from netshrink.kernels._popcount import popcount
from netshrink.kernels.checks import WORD_BITS

_TILE_ROWS = 6  # output pixels (GEMM rows) per micro-kernel tile
_TILE_COLS = 2  # output channels per micro-kernel tile: 12 vector accumulators
_ITEMS_PER_THREAD = 4  # parallel work items per thread, for load balance


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


@numba.njit(cache=True, parallel=True)
def _max_pool(x, kernel_size, stride, out):  # pragma: no cover - compiled
    """out (N, C, Ho, Wo): the max of each ``kernel_size`` window of x (N, C, H, W) at
    ``stride``, no padding, scanning the window row by row from ``-inf`` and taking a value
    if it is greater or NaN: PyTorch's CPU rule, so ties keep the first (-0.0 before 0.0)
    and a NaN anywhere in the window gives NaN. A plane per prange iteration."""
    n_img, chans, _, _ = x.shape
    kh, kw = kernel_size
    sh, sw = stride
    out_h, out_w = out.shape[2], out.shape[3]
    for plane in prange(n_img * chans):
        n = plane // chans
        c = plane % chans
        src = x[n, c]
        dst = out[n, c]
        if kh == 2 and kw == 2 and sh == 2 and sw == 2:  # the common case, vectorized
            for y in range(out_h):
                top = src[2 * y]
                low = src[2 * y + 1]
                row = dst[y]
                for col in range(out_w):
                    best = top[2 * col]  # > -inf, or NaN, or -inf itself: taken
                    v = top[2 * col + 1]
                    best = v if (v > best) | (v != v) else best
                    v = low[2 * col]
                    best = v if (v > best) | (v != v) else best
                    v = low[2 * col + 1]
                    best = v if (v > best) | (v != v) else best
                    row[col] = best
            continue
        for y in range(out_h):
            for col in range(out_w):
                best = np.float32(-np.inf)
                for ky in range(kh):
                    for kx in range(kw):
                        v = src[y * sh + ky, col * sw + kx]
                        best = v if (v > best) | (v != v) else best  # a select: vectorizes
                dst[y, col] = best

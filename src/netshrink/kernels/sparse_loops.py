"""The compiled loops of the sparse kernels (numba, ``cache=True``), read unchecked: the
callers in :mod:`netshrink.kernels.sparse` validate every argument first.

A weight matrix is in compressed-row form: row ``o``'s surviving weights are entries
``indptr[o] .. indptr[o+1]`` of ``cols`` (column, 16 or 32 bits) and of ``codes``, each
either a codebook index (uint8, the weight is ``codebook[code]``, looked up here as EIE
does) or the float32 weight itself (``codebook`` None). :func:`_weight` resolves the two at
compile time, so each layout gets its own loop and neither pays a branch.

Work is split into ``chunks`` (row ranges holding about equal numbers of nonzeros, several
per thread) and spread over numba's threads with ``prange``:

- :func:`_spmv`: one vector, ``y = W x`` (batch 1, the latency case): a row is a dot of its
  nonzeros with gathered inputs, vectorized with gathers (reassociated sums).
- :func:`_spmm`: ``Y[n] = W B[n]`` for B of shape (N, K, P) — a batch of vectors laid out
  as (K, P) columns, or a 1x1 convolution's image (C, H·W) — each nonzero adds ``w·B[c, :]``
  to its output row, contiguous and vectorized (XNNPACK's sparse-dense GEMM, "Fast Sparse
  ConvNets" §3); groups offset each row's columns.
- :func:`_chain`: several fully connected layers at batch 1 in one call (an MLP's per-layer
  call costs more than its products).
- :func:`_im2col`: the patches of a zero-padded image as the GEMM's dense operand
  ``(C·kh·kw, Ho·Wo)``, for convolutions other than the plain 1x1.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange, types
from numba.extending import overload


def _weight(codes, codebook, j):  # pragma: no cover - replaced by the overload
    raise NotImplementedError


@overload(_weight, inline="always")
def _weight_impl(codes, codebook, j):
    if isinstance(codebook, types.NoneType):
        return lambda codes, codebook, j: codes[j]  # float32 weights
    return lambda codes, codebook, j: codebook[codes[j]]  # codebook indices


@numba.njit(cache=True, inline="always")
def _finish(value, bias, o, relu):  # pragma: no cover - compiled
    if bias.size:
        value += bias[o]
    if relu and value < 0:
        value = 0.0
    return value


# Reassociation lets LLVM vectorize the gathered dot products (float tolerance, not bits).
_FAST = {"reassoc", "nsz", "contract"}


@numba.njit(cache=True, fastmath=_FAST, inline="never")
def _dot(cols, codes, codebook, x):  # pragma: no cover - compiled
    """sum_j w_j · x[cols[j]] over one row's nonzeros (slices: LLVM then sees no aliasing
    and vectorizes the gathers, about 4x faster than indexing the whole arrays)."""
    acc = np.float32(0.0)
    for j in range(cols.size):
        acc += _weight(codes, codebook, j) * x[cols[j]]
    return acc


@numba.njit(cache=True, fastmath=_FAST, inline="always")
def _axpy(w, line, row):  # pragma: no cover - compiled
    """row += w · line, vectorized."""
    for p in range(row.size):
        row[p] += w * line[p]


@numba.njit(cache=True, fastmath=_FAST, inline="always")
def _axpy4(w0, l0, w1, l1, w2, l2, w3, l3, row):  # pragma: no cover - compiled
    """row += w0·l0 + w1·l1 + w2·l2 + w3·l3: one load and store of row per four nonzeros."""
    for p in range(row.size):
        row[p] += (w0 * l0[p] + w1 * l1[p]) + (w2 * l2[p] + w3 * l3[p])


@numba.njit(cache=True, parallel=True)
def _spmv(indptr, cols, codes, codebook, chunks, x, bias, relu, out):  # pragma: no cover
    """out[o] = sum_j w_j · x[cols[j]] (+ bias[o], then ReLU) for every row o."""
    for item in prange(chunks.size - 1):
        for o in range(chunks[item], chunks[item + 1]):
            start, end = indptr[o], indptr[o + 1]
            value = _dot(cols[start:end], codes[start:end], codebook, x)
            out[o] = _finish(value, bias, o, relu)


@numba.njit(cache=True)
def _spmv_serial(indptr, cols, codes, codebook, x, bias, relu, out):  # pragma: no cover
    """:func:`_spmv` on the calling thread: small layers, where a parallel launch costs
    more than the products."""
    for o in range(indptr.size - 1):
        start, end = indptr[o], indptr[o + 1]
        value = _dot(cols[start:end], codes[start:end], codebook, x)
        out[o] = _finish(value, bias, o, relu)


@numba.njit(cache=True, parallel=True)
def _spmm(
    indptr, cols, codes, codebook, chunks, group, b, bias, relu, out
):  # pragma: no cover - compiled
    """out[n, o, :] = sum_j w_j · b[n, col_j, :] (+ bias[o], then ReLU), b (N, K, P).

    ``group = (cols per group, rows per group)``: row o reads columns offset by
    ``(o // group[1]) · group[0]`` (a grouped convolution's channels), four nonzeros a
    pass so each output element is loaded and stored once per four products.
    """
    n_items = chunks.size - 1
    for item in prange(b.shape[0] * n_items):
        n = item // n_items
        chunk = item % n_items
        src = b[n]
        for o in range(chunks[chunk], chunks[chunk + 1]):
            row = out[n, o]
            row[:] = 0.0
            first = (o // group[1]) * group[0]
            j, end = indptr[o], indptr[o + 1]
            while j + 4 <= end:
                _axpy4(
                    _weight(codes, codebook, j), src[first + cols[j]],
                    _weight(codes, codebook, j + 1), src[first + cols[j + 1]],
                    _weight(codes, codebook, j + 2), src[first + cols[j + 2]],
                    _weight(codes, codebook, j + 3), src[first + cols[j + 3]], row,
                )  # fmt: skip
                j += 4
            while j < end:
                _axpy(_weight(codes, codebook, j), src[first + cols[j]], row)
                j += 1
            if bias.size or relu:
                for p in range(row.size):
                    row[p] = _finish(row[p], bias, o, relu)


@numba.njit(cache=True, parallel=True)
def _im2col(x, kernel, stride, out):  # pragma: no cover - compiled
    """out[n, (c·kh + ky)·kw + kx, y·Wo + xo] = x[n, c, y·sy + ky, xo·sx + kx]; x padded."""
    kh, kw = kernel
    sy, sx = stride
    n_img, chans = x.shape[0], x.shape[1]
    out_w = (x.shape[3] - kw) // sx + 1
    out_h = out.shape[2] // out_w
    for item in prange(n_img * chans):
        n = item // chans
        c = item % chans
        for ky in range(kh):
            for kx in range(kw):
                dst = out[n, (c * kh + ky) * kw + kx]
                for y in range(out_h):
                    line = x[n, c, y * sy + ky]
                    for p in range(out_w):
                        dst[y * out_w + p] = line[p * sx + kx]


@numba.njit(cache=True)
def _balanced_chunks(indptr, n_chunks):  # pragma: no cover - compiled
    """Row boundaries of ``n_chunks`` ranges holding about equal nonzeros (+1 per row, so
    empty rows still count as work): a (k+1,) array, k <= n_chunks, from 0 to the rows."""
    rows = indptr.size - 1
    total = indptr[rows] + rows
    bounds = np.empty(n_chunks + 1, np.int64)
    bounds[0] = 0
    k = 1
    for o in range(rows):
        if k < n_chunks and indptr[o + 1] + o + 1 >= k * total / n_chunks:
            bounds[k] = o + 1
            k += 1
    bounds[k] = rows
    return bounds[: k + 1]


def _book(books, start, end):  # pragma: no cover - replaced by the overload
    raise NotImplementedError


@overload(_book, inline="always")
def _book_impl(books, start, end):
    if isinstance(books, types.NoneType):
        return lambda books, start, end: None  # float32 weights: no codebook
    return lambda books, start, end: books[start:end]


@numba.njit(cache=True)
def _chain(indptr, cols, codes, books, meta, biases, x, work, out):  # pragma: no cover
    """Consecutive fully connected layers at batch 1 in one call, EIE's way (Han et al.
    2016, §3): each layer is stored by *input* (the rows of ``W^T``), and an input that is
    zero — most of an MNIST image, about half of a ReLU's outputs — is skipped with its
    whole column; a nonzero input scatters ``w·x_j`` into the outputs it feeds. The
    activations stay in ``work`` (2, width) between layers.

    Layer l's ``meta[l]`` = (first entry in ``indptr``, inputs, outputs, codebook start,
    codebook end, first bias or -1, ReLU): input j's entries start at
    ``indptr[meta[l, 0] + j]``.
    """
    src = work[0, : x.size]
    src[:] = x
    n_layers = meta.shape[0]
    for layer in range(n_layers):
        first, inputs, outputs, book_start, book_end, bias_start, relu = meta[layer]
        dst = out if layer == n_layers - 1 else work[(layer + 1) % 2, :outputs]
        book = _book(books, book_start, book_end)
        if bias_start >= 0:
            dst[:] = biases[bias_start : bias_start + outputs]
        else:
            dst[:] = 0.0
        for j in range(inputs):
            xj = src[j]
            if xj != 0.0:
                for e in range(indptr[first + j], indptr[first + j + 1]):
                    dst[cols[e]] += _weight(codes, book, e) * xj
        if relu:
            for o in range(outputs):
                if dst[o] < 0.0:
                    dst[o] = 0.0
        src = dst

"""Sparse codebook kernels for pruned, weight-shared layers (CPU): EIE's layout in software.

Han et al., "EIE" (ISCA 2016), §3: a pruned layer's surviving weights are stored with
their positions and a few bits of codebook index each, and the codebook is looked up as
the product is formed, so a batch-1 fully connected layer — memory-bound — moves a few
bytes per survivor instead of four bytes per weight, zeros included.

:class:`SparseRows` is that layout for a weight matrix ``(rows, cols)`` (a convolution's
filters flattened to ``(out_chans, in_chans/groups·kh·kw)``): compressed rows, a 16-bit
column per survivor where the row is short enough (32-bit otherwise), and either an 8-bit
codebook index or the float32 weight. Built once per layer
(:func:`sparse_rows`, :func:`sparse_rows_from_positions`), it feeds

- :func:`sparse_linear`: ``y = x Wᵀ + b`` (batch 1 as a sparse matrix-vector product,
  batches as a sparse-dense GEMM over the batch);
- :func:`sparse_conv2d`: a sparse-dense GEMM per image, whose dense operand is the image
  itself for a 1x1 convolution (an NCHW image is already ``(C, H·W)``) and its im2col
  patches for other kernel sizes; groups offset each filter's columns.

Both take float32 NumPy arrays, optionally add the bias and apply ReLU in the same pass,
and compute in float32 with their own summation order: results equal the dense product
within float32 rounding, not to the bit. They run on numba's threads (``prange``,
``numba.set_num_threads``), the work split by nonzeros, not rows. The loops are in
:mod:`netshrink.kernels.sparse_loops`; plain scalar code that LLVM vectorizes for the
machine it runs on (AVX2 or AVX-512), no CPU-specific intrinsics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np

from netshrink.kernels.checks import as_array, as_pair, as_vector
from netshrink.kernels.sparse_loops import (
    _balanced_chunks,
    _chain,
    _im2col,
    _spmm,
    _spmv,
    _spmv_serial,
)

__all__ = [
    "MAX_CODEBOOK",
    "SERIAL_NNZ",
    "SparseChain",
    "SparseRows",
    "set_threads",
    "sparse_chain",
    "sparse_conv2d",
    "sparse_linear",
    "sparse_rows",
    "sparse_rows_from_positions",
    "to_dense",
    "transpose",
]

MAX_CODEBOOK = 256  # the most codebook entries an 8-bit index reaches
_CHUNKS_PER_THREAD = 4  # parallel work items per thread, for load balance
SERIAL_NNZ = 1 << 15  # a batch-1 layer with fewer nonzeros runs on the calling thread
_NO_BIAS = np.zeros(0, np.float32)


@dataclass(eq=False)
class SparseRows:
    """A ``(rows, cols)`` weight matrix in compressed-row form, validated on creation.

    Row ``o`` holds entries ``indptr[o]:indptr[o+1]`` of ``cols`` (ascending within the row)
    and of ``codes``: codebook indices (uint8) when ``codebook`` is given, else the float32
    weights themselves.
    """

    shape: tuple[int, int]
    indptr: np.ndarray  # int64 (rows + 1,)
    cols: np.ndarray  # uint16 if cols <= 65536, else int32 (nnz,)
    codes: np.ndarray  # uint8 codebook indices, or float32 weights (nnz,)
    codebook: np.ndarray | None = None  # float32 (<= 256,)
    _chunks: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        rows, n_cols = self.shape
        if rows < 0 or n_cols < 0:
            raise ValueError(f"shape must be non-negative, got {self.shape}")
        self.indptr = as_array("indptr", self.indptr, 1, np.int64)
        self.cols = as_array("cols", self.cols, 1, _col_dtype(n_cols))
        values = np.uint8 if self.codebook is not None else np.float32
        self.codes = as_array("codes", self.codes, 1, values)
        if self.indptr.shape != (rows + 1,):
            raise ValueError(f"indptr must have shape ({rows + 1},), got {self.indptr.shape}")
        nnz = self.cols.size
        if self.indptr[0] != 0 or self.indptr[-1] != nnz or np.any(np.diff(self.indptr) < 0):
            raise ValueError(f"indptr must rise from 0 to the {nnz} nonzeros")
        if self.codes.size != nnz:
            raise ValueError(f"codes must have {nnz} entries, got {self.codes.size}")
        if nnz and int(self.cols.max()) >= n_cols:
            raise ValueError(f"cols must be below {n_cols}, got {int(self.cols.max())}")
        if self.codebook is not None:
            self.codebook = as_array("codebook", self.codebook, 1, np.float32)
            if not 0 < self.codebook.size <= MAX_CODEBOOK:
                raise ValueError(f"codebook must have 1..{MAX_CODEBOOK} entries")
            if nnz and int(self.codes.max()) >= self.codebook.size:
                raise ValueError(f"codes must be below the codebook's {self.codebook.size}")

    @property
    def nnz(self) -> int:
        return int(self.cols.size)

    @property
    def density(self) -> float:
        return self.nnz / max(self.shape[0] * self.shape[1], 1)

    @property
    def nbytes(self) -> int:
        """Bytes the kernels read: row pointers, columns, codes and codebook."""
        book = 0 if self.codebook is None else self.codebook.nbytes
        return self.indptr.nbytes + self.cols.nbytes + self.codes.nbytes + book

    def chunks(self) -> np.ndarray:
        """Row ranges of about equal work, several per thread of numba's current count."""
        n_chunks = max(1, min(self.shape[0], numba.get_num_threads() * _CHUNKS_PER_THREAD))
        if n_chunks not in self._chunks:
            self._chunks[n_chunks] = _balanced_chunks(self.indptr, n_chunks)
        return self._chunks[n_chunks]


def _col_dtype(n_cols: int) -> type:
    return np.uint16 if n_cols <= 1 << 16 else np.int32


def sparse_rows(
    weight: np.ndarray, *, codebook: np.ndarray | None = None, max_codebook: int = MAX_CODEBOOK
) -> SparseRows:
    """The nonzeros of ``weight`` (a 2-D float32 array) as :class:`SparseRows`.

    With ``codebook`` every nonzero must be one of its values; without, the distinct
    nonzero values become the codebook when there are at most ``max_codebook`` of them
    (a weight-shared layer), else the weights are kept as float32.
    """
    weight = as_array("weight", weight, 2, np.float32)
    positions = np.flatnonzero(weight)
    values = weight.reshape(-1)[positions]
    if codebook is None:
        distinct = np.unique(values)
        if 0 < distinct.size <= min(max_codebook, MAX_CODEBOOK):
            codebook = distinct
    if codebook is None:
        return sparse_rows_from_positions(weight.shape, positions, values, None)
    codebook = as_array("codebook", codebook, 1, np.float32)
    order = np.argsort(codebook, kind="stable")
    found = np.searchsorted(codebook[order], values).clip(0, max(codebook.size - 1, 0))
    codes = order[found] if codebook.size else found
    if values.size and not np.array_equal(codebook[codes], values):
        raise ValueError("weight has nonzeros that are not in the codebook")
    return sparse_rows_from_positions(weight.shape, positions, codes, codebook)


def sparse_rows_from_positions(
    shape: tuple[int, int],
    positions: np.ndarray,
    codes: np.ndarray,
    codebook: np.ndarray | None,
) -> SparseRows:
    """:class:`SparseRows` from flat row-major ``positions`` (ascending) of the nonzeros and
    their ``codes`` (indices into ``codebook``, or float32 weights when it is None)."""
    rows, n_cols = as_pair("shape", tuple(shape), 0)
    positions = np.asarray(positions, np.int64)
    if positions.ndim != 1 or np.asarray(codes).shape != positions.shape:
        raise ValueError("positions and codes must be 1-D and of the same length")
    if positions.size and (
        positions[0] < 0 or positions[-1] >= rows * n_cols or np.any(np.diff(positions) <= 0)
    ):
        raise ValueError(f"positions must rise strictly within a {rows}x{n_cols} matrix")
    if codebook is not None:
        codebook = np.asarray(codebook, np.float32)
        codes = np.asarray(codes)
        if codes.size and (codes.min() < 0 or codes.max() >= min(codebook.size, MAX_CODEBOOK)):
            raise ValueError(f"codes must index a codebook of at most {MAX_CODEBOOK} entries")
        codes = codes.astype(np.uint8)
    else:
        codes = np.asarray(codes, np.float32)
    counts = np.bincount(positions // max(n_cols, 1), minlength=rows)[:rows]
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    cols = (positions % max(n_cols, 1)).astype(_col_dtype(n_cols))
    return SparseRows((rows, n_cols), indptr, cols, codes, codebook)


def to_dense(rows: SparseRows) -> np.ndarray:
    """The float32 matrix ``rows`` stands for (zeros filled in)."""
    out = np.zeros(rows.shape, np.float32)
    values = rows.codes if rows.codebook is None else rows.codebook[rows.codes]
    row_of = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
    out[row_of, rows.cols.astype(np.int64)] = values
    return out


def _bias(bias: np.ndarray | None, length: int) -> np.ndarray:
    return _NO_BIAS if bias is None else as_vector("bias", bias, length)


def sparse_linear(
    x: np.ndarray, weight: SparseRows, bias: np.ndarray | None = None, *, relu: bool = False
) -> np.ndarray:
    """``x @ W.T + bias`` (then ``max(·, 0)`` with ``relu``): x (N, K) float32 → (N, M)."""
    x = as_array("x", x, 2, np.float32)
    rows, n_cols = weight.shape
    if x.shape[1] != n_cols:
        raise ValueError(f"x must have {n_cols} features, got shape {x.shape}")
    bias = _bias(bias, rows)
    book = weight.codebook
    if x.shape[0] == 1:
        out = np.empty((1, rows), np.float32)
        if weight.nnz < SERIAL_NNZ or numba.get_num_threads() == 1:
            _spmv_serial(weight.indptr, weight.cols, weight.codes, book, x[0], bias, relu, out[0])
        else:
            _spmv(weight.indptr, weight.cols, weight.codes, book, weight.chunks(), x[0], bias,
                  relu, out[0])  # fmt: skip
        return out
    columns = np.ascontiguousarray(x.T)[None]  # (1, K, N): each column an input vector
    out = np.empty((1, rows, x.shape[0]), np.float32)
    group = np.array([0, rows], np.int64)
    _spmm(weight.indptr, weight.cols, weight.codes, book, weight.chunks(), group, columns,
          bias, relu, out)  # fmt: skip
    return np.ascontiguousarray(out[0].T)  # (N, M)


def sparse_conv2d(
    x: np.ndarray,
    weight: SparseRows,
    in_chans: int,
    kernel_size: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    groups: int = 1,
    bias: np.ndarray | None = None,
    *,
    relu: bool = False,
) -> np.ndarray:
    """``conv2d(x, W, bias, stride, padding, groups)`` (zero padding, dilation 1), then
    ReLU with ``relu``: x (N, C, H, W) float32 → (N, O, Ho, Wo); W's rows are the filters
    flattened as ``(C/groups, kh, kw)``."""
    x = as_array("x", x, 4, np.float32)
    kh, kw = as_pair("kernel_size", kernel_size, 1)
    sy, sx = as_pair("stride", stride, 1)
    ph, pw = as_pair("padding", padding, 0)
    out_chans, n_cols = weight.shape
    if groups < 1 or in_chans % groups or out_chans % groups:
        raise ValueError(f"groups={groups} must divide in_chans {in_chans} and {out_chans}")
    if n_cols != in_chans // groups * kh * kw:
        raise ValueError(f"weight has {n_cols} columns, not in_chans/groups·kh·kw")
    n, chans, height, width = x.shape
    if chans != in_chans:
        raise ValueError(f"x must have {in_chans} channels, got shape {x.shape}")
    out_h, out_w = (height + 2 * ph - kh) // sy + 1, (width + 2 * pw - kw) // sx + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"a {kh}x{kw} kernel does not fit the padded {height}x{width} input")
    bias = _bias(bias, out_chans)
    book = weight.codebook
    if (kh, kw, ph, pw) == (1, 1, 0, 0):  # the image is the GEMM's dense operand
        if (sy, sx) != (1, 1):
            x = np.ascontiguousarray(x[:, :, ::sy, ::sx])
        columns = x.reshape(n, chans, out_h * out_w)  # (N, C, P)
    else:
        if ph or pw:
            x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        columns = np.empty((n, chans * kh * kw, out_h * out_w), np.float32)
        _im2col(x, (kh, kw), (sy, sx), columns)  # (N, C·kh·kw, P)
    out = np.empty((n, out_chans, out_h * out_w), np.float32)
    group = np.array([n_cols, out_chans // groups], np.int64)
    _spmm(weight.indptr, weight.cols, weight.codes, book, weight.chunks(), group, columns, bias,
          relu, out)  # fmt: skip
    return out.reshape(n, out_chans, out_h, out_w)


def transpose(rows: SparseRows) -> SparseRows:
    """``W^T`` in compressed-row form (one row per input of ``W``), same codes and codebook."""
    n_rows, n_cols = rows.shape
    row_of = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(rows.indptr))
    positions = rows.cols.astype(np.int64) * n_rows + row_of
    order = np.argsort(positions, kind="stable")
    return sparse_rows_from_positions(
        (n_cols, n_rows), positions[order], rows.codes[order], rows.codebook
    )


@dataclass(eq=False)
class SparseChain:
    """Fully connected layers applied one after another (``W_l``, bias, ReLU or not), their
    arrays joined so that :func:`sparse_chain` runs them all in one call at batch 1.

    All layers hold codebook indices, or all float32 weights; each layer's input width is
    the previous one's output width. The chain keeps each ``W_l`` transposed (by input),
    the layout in which zero inputs are skipped.
    """

    layers: tuple[SparseRows, ...]
    biases: tuple[np.ndarray | None, ...]
    relus: tuple[bool, ...]
    indptr: np.ndarray = field(init=False, repr=False)
    cols: np.ndarray = field(init=False, repr=False)
    codes: np.ndarray = field(init=False, repr=False)
    books: np.ndarray | None = field(init=False, repr=False)
    meta: np.ndarray = field(init=False, repr=False)
    bias_values: np.ndarray = field(init=False, repr=False)
    work: np.ndarray = field(init=False, repr=False)  # the activations between layers

    def __post_init__(self) -> None:
        layers = self.layers = tuple(self.layers)
        if not layers or len(self.biases) != len(layers) or len(self.relus) != len(layers):
            raise ValueError("a chain needs one bias (or None) and one ReLU flag per layer")
        if len({rows.codebook is None for rows in layers}) != 1:
            raise ValueError("a chain's layers must all hold codebook indices or all values")
        for before, after in zip(layers, layers[1:], strict=False):
            if after.shape[1] != before.shape[0]:
                raise ValueError(f"a {after.shape} layer cannot follow a {before.shape} one")
        biases = [_bias(b, rows.shape[0]) for b, rows in zip(self.biases, layers, strict=True)]
        by_input = [transpose(rows) for rows in layers]
        nnz = np.cumsum([0] + [rows.nnz for rows in layers])
        books = np.cumsum([0] + [0 if r.codebook is None else r.codebook.size for r in layers])
        bias_starts = np.cumsum([0] + [b.size for b in biases])
        first = np.cumsum([0] + [r.shape[0] + 1 for r in by_input])
        self.indptr = np.concatenate([r.indptr + n for r, n in zip(by_input, nnz, strict=False)])
        width = max(rows.shape[0] for rows in layers)
        self.cols = np.concatenate([r.cols for r in by_input]).astype(_col_dtype(width))
        self.codes = np.concatenate([r.codes for r in by_input])
        self.books = (
            None if layers[0].codebook is None else np.concatenate([r.codebook for r in layers])
        )
        self.meta = np.array(
            [
                (first[i], rows.shape[1], rows.shape[0], books[i], books[i + 1],
                 bias_starts[i] if biases[i].size else -1, int(bool(self.relus[i])))
                for i, rows in enumerate(layers)
            ],
            np.int64,
        ).reshape(len(layers), 7)  # fmt: skip
        self.bias_values = np.concatenate(biases).astype(np.float32)
        self.work = np.empty((2, max(max(rows.shape) for rows in layers)), np.float32)

    @property
    def shape(self) -> tuple[int, int]:
        """(outputs of the last layer, inputs of the first)."""
        return self.layers[-1].shape[0], self.layers[0].shape[1]

    @property
    def nbytes(self) -> int:
        """Bytes the kernel reads: the transposed layers' arrays, codebooks and biases."""
        book = 0 if self.books is None else self.books.nbytes
        arrays = self.indptr.nbytes + self.cols.nbytes + self.codes.nbytes
        return arrays + book + self.bias_values.nbytes


def sparse_chain(x: np.ndarray, chain: SparseChain) -> np.ndarray:
    """The chain's layers applied to one input vector: x (K,) or (1, K) float32 → (1, M).

    The activations between layers go through the chain's own buffer: one call at a time
    per chain (the kernel holds the GIL)."""
    outputs, inputs = chain.shape
    ready = type(x) is np.ndarray and x.dtype == np.float32 and x.flags.c_contiguous
    if not (ready and x.shape == (1, inputs)):  # else checked, as every kernel's input
        x = as_array("x", np.reshape(x, (1, -1)) if np.ndim(x) == 1 else x, 2, np.float32)
    if x.shape != (1, inputs):
        raise ValueError(f"x must be one vector of {inputs} features, got shape {x.shape}")
    out = np.empty((1, outputs), np.float32)
    _chain(chain.indptr, chain.cols, chain.codes, chain.books, chain.meta, chain.bias_values,
           x[0], chain.work, out[0])  # fmt: skip
    return out


def set_threads(count: int) -> None:
    """Run the kernels on ``count`` of numba's threads (at most as many as it started)."""
    numba.set_num_threads(max(1, min(int(count), numba.config.NUMBA_NUM_THREADS)))

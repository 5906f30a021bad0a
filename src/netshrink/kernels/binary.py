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

This module is the public API and the glue around the compiled loops: it validates the
inputs (:mod:`netshrink.kernels.checks`), lays the weights out as GEMM rows zero-padded to a
multiple of the SIMD width when that wastes little, splits the work of a convolution into
items and L1-sized blocks (:func:`_conv_work_split`), and calls the numba loops of
:mod:`netshrink.kernels.binary_loops`, which run in parallel on numba's threads (so
``numba.set_num_threads`` sets them) and whose docstring describes the 6 × 2 popcount
micro-kernel and the im2col blocking of the convolution.
"""

from __future__ import annotations

import math

import llvmlite.binding as llvm
import numba
import numpy as np

from netshrink.kernels.binary_loops import (
    _ITEMS_PER_THREAD,
    _TILE_COLS,
    _TILE_ROWS,
    _conv,
    _gemm,
    _max_pool,
    _pack_rows,
)
from netshrink.kernels.checks import (
    ABSENT,
    WORD_BITS,
    as_array,
    as_optional,
    as_pair,
    as_vector,
    check_exact,
    check_padding_bits,
)

__all__ = [
    "WORD_BITS",
    "binary_conv2d",
    "binary_conv2d_counts",
    "binary_gemm",
    "binary_linear",
    "max_pool2d",
    "pack_conv_weight",
    "pack_rows",
    "words",
]

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


# --- public API ---------------------------------------------------------------------------


def pack_rows(x: np.ndarray) -> np.ndarray:
    """Signs of the rows of ``x`` (M, K) float32 as (M, words(K)) uint64: bit set iff
    ``not x >= 0`` (so -0.0 → +1 and NaN → -1); element k is bit k % 64 of word k // 64."""
    x = as_array("x", x, 2, np.float32)
    out = np.empty((x.shape[0], words(x.shape[1])), np.uint64)
    _pack_rows(x, out)
    return out


def binary_gemm(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Dots of ±1 vectors: ``out[m, n] = k - 2·popcount(a[m] XOR b[n])``, int32 (M, N).

    ``a`` (M, Kw) and ``b`` (N, Kw) are packed rows (:func:`pack_rows`) of length
    ``k < 2**24``, ``Kw = words(k)``, with the padding bits of their last word clear.
    """
    a = as_array("a", a, 2, np.uint64)
    b = as_array("b", b, 2, np.uint64)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have as many words per row, got {a.shape} and {b.shape}")
    if int(k) < 0 or words(k) != a.shape[1]:
        raise ValueError(f"k={k} bits does not fit {a.shape[1]} words per row")
    check_padding_bits("a", a, int(k))
    check_padding_bits("b", b, int(k))
    check_exact(int(k))
    out = np.empty((a.shape[0], b.shape[0]), np.float32)
    if out.size:
        absent = ABSENT[0]
        threads = numba.get_num_threads()
        _gemm(a, b, int(k), absent, absent, absent, False, False, True, out, threads)
    return out.astype(np.int32)


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
    x = as_array("x", x, 2, np.float32)
    weight_bits = as_array("weight_bits", weight_bits, 2, np.uint64)
    if x.shape[1] != in_features:
        raise ValueError(f"x has {x.shape[1]} features, the layer takes {in_features}")
    if weight_bits.shape[1] != words(in_features):
        raise ValueError(
            f"weight_bits has {weight_bits.shape[1]} words per row, "
            f"{in_features} features need {words(in_features)}"
        )
    check_padding_bits("weight_bits", weight_bits, in_features)
    n_out = weight_bits.shape[0]
    alpha = as_vector("alpha", alpha, n_out)
    scale = as_optional("input_scale", input_scale, (x.shape[0],))
    bias = as_optional("bias", bias, (n_out,))
    check_exact(in_features)
    out = np.empty((x.shape[0], n_out), np.float32)
    if out.size:
        _gemm(
            pack_rows(x),
            weight_bits,
            int(in_features),
            alpha,
            ABSENT[0] if scale is None else scale,
            ABSENT[0] if bias is None else bias,
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
    weight = as_array("weight", weight, 4, np.float32)
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


def max_pool2d(x: np.ndarray, kernel_size: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """Max pooling of ``x`` (N, C, H, W) float32 without padding, float32 (N, C, Ho, Wo)
    with ``Ho = (H - kh) // sh + 1`` (and alike for W): ``torch.nn.functional.max_pool2d``
    to the bit, NaN and -0.0 included (a NaN in a window gives NaN; of tied values the
    first in row-major order is kept). The packed engine pools the float32 outputs of its
    layers with it, in place of PyTorch's NCHW pooling, which is slow at batch 1."""
    x = as_array("x", x, 4, np.float32)
    kh, kw = as_pair("kernel_size", kernel_size, 1)
    stride = as_pair("stride", stride, 1)
    n_img, chans, height, width = x.shape
    if height < kh or width < kw:
        raise ValueError(f"a {(height, width)} map is smaller than the {(kh, kw)} window")
    out_h = (height - kh) // stride[0] + 1
    out_w = (width - kw) // stride[1] + 1
    out = np.empty((n_img, chans, out_h, out_w), np.float32)
    if out.size:
        _max_pool(x, (kh, kw), stride, out)
    return out


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
    x = as_array("x", x, 4, np.float32)
    weight_bits = as_array("weight_bits", weight_bits, 4, np.uint64)
    kh, kw = as_pair("kernel_size", kernel_size, 1)
    stride = as_pair("stride", stride, 1)
    padding = as_pair("padding", padding, 0)
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
    check_padding_bits("weight_bits", weight_bits, in_chans)
    out_h = (height + 2 * padding[0] - kh) // stride[0] + 1
    out_w = (width + 2 * padding[1] - kw) // stride[1] + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"a {(height, width)} map padded by {padding} is smaller than the {(kh, kw)} kernel"
        )
    counts = alpha is None
    alpha = ABSENT[0] if counts else as_vector("alpha", alpha, n_out)
    n_pix = out_h * out_w
    scale = as_optional("input_scale", scale, (n_img, out_h, out_w))
    bias = as_optional("bias", bias, (n_out,))
    n_words = kh * kw * words(chans)
    w = weight_bits.reshape(n_out, n_words)
    row_words = _padded_words(n_words)
    if row_words != n_words or n_out < _TILE_COLS:  # zero words / channels: no effect on dots
        w = np.zeros((max(n_out, _TILE_COLS), row_words), np.uint64)
        w[:n_out, :n_words] = weight_bits.reshape(n_out, n_words)
    items_per_image, block_rows = _conv_work_split(n_img, n_pix, row_words)
    check_exact(kh * kw * chans)
    out = np.empty((n_img, n_out, n_pix), np.float32)
    _conv(
        x,
        weight_bits,
        w,
        (kh, kw),
        stride,
        padding,
        alpha,
        ABSENT if scale is None else scale.reshape(n_img, n_pix),
        ABSENT[0] if bias is None else bias,
        scale is not None,
        bias is not None,
        counts,
        out,
        items_per_image,
        block_rows,
    )
    out = out.reshape(n_img, n_out, out_h, out_w)
    return out.astype(np.int32) if counts else out

"""Whole XNOR-Net stages in one call: what lies between binary layers fused into their kernels.

In an XNOR network (Rastegari et al. 2016, §3.3: BatchNorm → binary activation → binary
conv → pooling) a binary layer reads the float output of a BatchNorm and a clamp
(``Hardtanh``), computes its input scale ``K`` from their magnitudes, and is followed by a
max pool. Run as separate PyTorch ops at batch 1, that glue costs more than the popcount
layer itself (~10 µs of dispatch per op, and a 5x5 box filter for ``K`` took ~130 µs on
LeNet-5's conv2). A stage does it all in numba on arrays prepared once:

1. the prologue: ``y = clamp(fma(x, scale[c], shift[c]), lo, hi)`` per element, with the
   sum of ``|y|`` over channels per pixel. ``scale`` and ``shift`` are PyTorch's own
   inference BatchNorm terms, ``scale = γ·(1/√(σ²+ε))`` and
   ``shift = fma(-μ, scale, β)`` in float32, applied with one fused multiply-add as its
   CPU kernel does, so ``y`` and hence every sign equals PyTorch's to the bit;
2. ``K`` (XNOR-Net §3.2): ``A = Σ_c|y| / C`` box-filtered over each output's window (zero
   padded); a linear stage takes ``K = Σ_c|y| / C`` per sample;
3. the popcount convolution or GEMM of :mod:`netshrink.kernels.binary_loops`, its output
   ``((dot·α)·K) + bias`` as the float simulation rounds it;
4. an optional max pool (no padding), exact.

``K``'s sums run in the order the float simulation fixes
(:func:`netshrink.binarize.functions.input_scale_conv2d`: a pairwise tree over channels,
rows then columns of each window, exactly rounded divisions), so with or without an input
scale every output is bit-identical to the float simulation's, on any CPU. Stages check the
input's shape and dtype; the weights are checked once, when the stage is built.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

from netshrink.kernels.binary import _conv_work_split, _padded_words, words
from netshrink.kernels.binary_loops import _TILE_COLS, _conv, _gemm, _max_pool
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

__all__ = ["Prologue", "XnorConvStage", "XnorLinearStage", "batch_norm_terms"]


@intrinsic
def _fma(typingctx, a, b, c):
    """``a·b + c`` rounded once (LLVM ``llvm.fma.f32``), float32."""
    if not (a == b == c == types.float32):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return types.float32(types.float32, types.float32, types.float32), codegen


def batch_norm_terms(mean, var, weight, bias, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's inference BatchNorm as ``(scale, shift)`` float32: ``y = fma(x, scale,
    shift)`` with ``scale = weight·(1/√(var+eps))`` and ``shift = fma(-mean, scale, bias)``
    (``weight`` / ``bias`` None mean 1 / 0), each step rounded to float32 as its CPU kernel
    rounds it."""
    mean = np.ascontiguousarray(mean, np.float32)
    invstd = np.float32(1) / np.sqrt(np.asarray(var, np.float32) + np.float32(eps))
    scale = invstd if weight is None else np.asarray(weight, np.float32) * invstd
    beta = np.zeros_like(mean) if bias is None else np.ascontiguousarray(bias, np.float32)
    scale = np.ascontiguousarray(scale, np.float32)
    return scale, _fma_vector(-mean, scale, beta)


@numba.njit(cache=True)
def _fma_vector(a, b, c):  # pragma: no cover - compiled
    out = np.empty_like(a)
    for i in range(a.shape[0]):
        out[i] = _fma(a[i], b[i], c[i])
    return out


class Prologue:
    """What a stage applies to its input before the signs: an optional per-channel affine
    (``scale``, ``shift``: a BatchNorm from :func:`batch_norm_terms`) and an optional clamp
    to ``[lo, hi]`` (``Hardtanh``; NaN passes, as in ``torch.clamp``)."""

    def __init__(
        self,
        chans: int,
        scale: np.ndarray | None = None,
        shift: np.ndarray | None = None,
        clamp: tuple[float, float] | None = None,
    ) -> None:
        if (scale is None) != (shift is None):
            raise ValueError("scale and shift come together (a BatchNorm's two terms)")
        self.has_affine = scale is not None
        self.scale = as_vector("scale", scale, chans) if self.has_affine else ABSENT[0]
        self.shift = as_vector("shift", shift, chans) if self.has_affine else ABSENT[0]
        self.has_clamp = clamp is not None
        lo, hi = clamp if clamp is not None else (-np.inf, np.inf)
        if not lo <= hi:
            raise ValueError(f"clamp needs lo <= hi, got {clamp}")
        self.lo, self.hi = np.float32(lo), np.float32(hi)


def _tree_rows(chans: int) -> int:
    """Rows of a pairwise-sum tree over ``chans`` values: the power of two at or above."""
    return 1 << max(0, (chans - 1).bit_length())


@numba.njit(cache=True)
def _halve(tree):  # pragma: no cover - compiled
    """tree (P, M), P a power of two: tree[0] becomes the pairwise sum of its rows, by
    ``tree[i] += tree[i + P/2]`` for i < P/2 and so on down to one row (the order of
    :func:`netshrink.binarize.functions.pairwise_sum`)."""
    size = tree.shape[0]
    while size > 1:
        size //= 2
        for i in range(size):
            dst = tree[i]
            src = tree[i + size]
            for p in range(dst.shape[0]):
                dst[p] += src[p]


@numba.njit(cache=True)
def _prologue(  # pragma: no cover
    x, scale, shift, lo, hi, has_affine, has_clamp, tree, y, abs_sum
):
    """y (N, C, P) = clamp(fma(x, scale[c], shift[c])); abs_sum (N, P) = the pairwise sum
    over c of |y|. ``tree`` (T, P) zeros, T the power of two at or above C: its rows from C
    up stay zero, the rest are rewritten for each image."""
    n_img, chans, n_pix = x.shape
    for n in range(n_img):
        for c in range(chans):
            a_c = scale[c] if has_affine else np.float32(1)
            b_c = shift[c] if has_affine else np.float32(0)
            src = x[n, c]
            dst = y[n, c]
            row = tree[c]
            for i in range(n_pix):
                v = _fma(src[i], a_c, b_c) if has_affine else src[i]
                if has_clamp:
                    v = lo if v < lo else v
                    v = hi if v > hi else v
                dst[i] = v
                row[i] = abs(v)
        _halve(tree)
        abs_sum[n] = tree[0]


@numba.njit(cache=True)
def _box_scale(  # pragma: no cover
    abs_sum, chans, height, width, kernel_size, stride, padding, out
):
    """out (N, Ho·Wo): ``A = abs_sum / C`` (N, H·W) box-filtered, zero padded (XNOR-Net K),
    each window summed along its rows, then the row sums added, then divided by kh·kw: the
    order of :func:`netshrink.binarize.functions.input_scale_conv2d` (zeros skipped:
    adding +0 to a sum of magnitudes changes no bit)."""
    kh, kw = kernel_size
    area = np.float32(kh * kw)
    out_w = (width + 2 * padding[1] - kw) // stride[1] + 1
    n_img, n_out = out.shape
    a = abs_sum / np.float32(chans)
    for n in range(n_img):
        for p in range(n_out):
            oy, ox = p // out_w, p % out_w
            acc = np.float32(0)
            for ky in range(kh):
                iy = oy * stride[0] + ky - padding[0]
                if 0 <= iy < height:
                    row = np.float32(0)
                    for kx in range(kw):
                        ix = ox * stride[1] + kx - padding[1]
                        if 0 <= ix < width:
                            row += a[n, iy * width + ix]
                    acc += row
            out[n, p] = acc / area


@numba.njit(cache=True)
def _prologue_packed(  # pragma: no cover
    x, scale, shift, lo, hi, has_affine, has_clamp, tree, bits, k_out
):
    """For a linear stage: the signs of clamp(fma(x, scale, shift)) (N, C) packed into bits
    (N, words(C)), and ``K`` = the pairwise sum of ``|y|`` over c, divided by C, per row
    into k_out (N,). ``tree`` (P, 1) zeros, P the power of two at or above C."""
    n_img, chans = x.shape
    for n in range(n_img):
        for w in range(bits.shape[1]):
            word = np.uint64(0)
            for b in range(min(WORD_BITS, chans - w * WORD_BITS)):
                c = w * WORD_BITS + b
                v = _fma(x[n, c], scale[c], shift[c]) if has_affine else x[n, c]
                if has_clamp:
                    v = lo if v < lo else v
                    v = hi if v > hi else v
                tree[c, 0] = abs(v)
                word |= np.uint64(not v >= 0) << np.uint64(b)
            bits[n, w] = word
        _halve(tree)
        k_out[n] = tree[0, 0] / np.float32(chans)


def _bias(bias: np.ndarray | None, n_out: int) -> tuple[np.ndarray, bool]:
    bias = as_optional("bias", bias, (n_out,))
    return (ABSENT[0], False) if bias is None else (bias, True)


class XnorConvStage:
    """Prologue → XNOR convolution (groups 1, dilation 1, zero padding) → optional max pool,
    on float32 (N, C, H, W) arrays; see the module docstring for what is computed.

    ``weight_bits`` from :func:`~netshrink.kernels.binary.pack_conv_weight`, ``alpha`` (O,)
    and ``bias`` (O,) float32; ``input_scale`` computes XNOR-Net's ``K``; ``pool`` is a max
    pool's (kernel size, stride).
    """

    def __init__(
        self,
        prologue: Prologue,
        weight_bits: np.ndarray,
        in_chans: int,
        kernel_size: tuple[int, int],
        stride: tuple[int, int],
        padding: tuple[int, int],
        alpha: np.ndarray,
        bias: np.ndarray | None,
        input_scale: bool,
        pool: tuple[tuple[int, int], tuple[int, int]] | None = None,
    ) -> None:
        self.prologue = prologue
        self.weight_bits = as_array("weight_bits", weight_bits, 4, np.uint64)
        self.in_chans = int(in_chans)
        self.kernel_size = as_pair("kernel_size", kernel_size, 1)
        self.stride = as_pair("stride", stride, 1)
        self.padding = as_pair("padding", padding, 0)
        kh, kw = self.kernel_size
        n_out = self.weight_bits.shape[0]
        if self.in_chans < 1 or self.weight_bits.shape[1:] != (kh, kw, words(self.in_chans)):
            raise ValueError(
                f"weight_bits must have shape (O, {kh}, {kw}, {words(self.in_chans)}), "
                f"got {self.weight_bits.shape}"
            )
        if prologue.has_affine and prologue.scale.shape[0] != self.in_chans:
            raise ValueError(f"the prologue has {prologue.scale.shape[0]} channels, not {in_chans}")
        check_padding_bits("weight_bits", self.weight_bits, self.in_chans)
        check_exact(kh * kw * self.in_chans)
        self.alpha = as_vector("alpha", alpha, n_out)
        self.bias, self.has_bias = _bias(bias, n_out)
        self.input_scale = bool(input_scale)
        self.pool = None
        if pool is not None:
            self.pool = (as_pair("pool kernel", pool[0], 1), as_pair("pool stride", pool[1], 1))
        n_words = kh * kw * words(self.in_chans)
        row_words = _padded_words(n_words)
        rows = self.weight_bits.reshape(n_out, n_words)
        if row_words != n_words or n_out < _TILE_COLS:  # zero words: no effect on the dots
            rows = np.zeros((max(n_out, _TILE_COLS), row_words), np.uint64)
            rows[:n_out, :n_words] = self.weight_bits.reshape(n_out, n_words)
        self.rows = rows
        self._split: dict[tuple[int, int, int], tuple[int, int]] = {}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = as_array("x", x, 4, np.float32)
        n_img, chans, height, width = x.shape
        if chans != self.in_chans:
            raise ValueError(f"x has {chans} channels, the stage takes {self.in_chans}")
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        out_h, out_w = (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1
        if out_h < 1 or out_w < 1:
            raise ValueError(f"a {(height, width)} map is smaller than the {(kh, kw)} kernel")
        n_pix = out_h * out_w
        pro = self.prologue
        y = np.empty_like(x)
        abs_sum = np.empty((n_img, height * width), np.float32)
        tree = np.zeros((_tree_rows(chans), height * width), np.float32)
        _prologue(
            x.reshape(n_img, chans, -1), pro.scale, pro.shift, pro.lo, pro.hi,
            pro.has_affine, pro.has_clamp, tree, y.reshape(n_img, chans, -1), abs_sum,
        )  # fmt: skip
        scale = ABSENT
        if self.input_scale:
            scale = np.empty((n_img, n_pix), np.float32)
            _box_scale(abs_sum, chans, height, width, self.kernel_size, self.stride,
                       self.padding, scale)  # fmt: skip
        key = (n_img, n_pix, numba.get_num_threads())
        if key not in self._split:
            self._split[key] = _conv_work_split(n_img, n_pix, self.rows.shape[1])
        items_per_image, block_rows = self._split[key]
        out = np.empty((n_img, self.weight_bits.shape[0], n_pix), np.float32)
        _conv(
            y, self.weight_bits, self.rows, self.kernel_size, self.stride, self.padding,
            self.alpha, scale, self.bias, self.input_scale, self.has_bias, False, out,
            items_per_image, block_rows,
        )  # fmt: skip
        out = out.reshape(n_img, -1, out_h, out_w)
        if self.pool is None:
            return out
        (pkh, pkw), (psh, psw) = self.pool
        if out_h < pkh or out_w < pkw:
            raise ValueError(f"a {(out_h, out_w)} map is smaller than the {(pkh, pkw)} pool")
        pooled = np.empty(
            (n_img, out.shape[1], (out_h - pkh) // psh + 1, (out_w - pkw) // psw + 1), np.float32
        )
        _max_pool(out, self.pool[0], self.pool[1], pooled)
        return pooled


class XnorLinearStage:
    """Prologue → XNOR fully connected layer, on float32 (N, C) arrays; ``weight_bits`` from
    :func:`~netshrink.kernels.binary.pack_rows`, ``alpha`` and ``bias`` (O,) float32."""

    def __init__(
        self,
        prologue: Prologue,
        weight_bits: np.ndarray,
        in_features: int,
        alpha: np.ndarray,
        bias: np.ndarray | None,
        input_scale: bool,
    ) -> None:
        self.prologue = prologue
        self.weight_bits = as_array("weight_bits", weight_bits, 2, np.uint64)
        self.in_features = int(in_features)
        if self.in_features < 1 or self.weight_bits.shape[1] != words(self.in_features):
            raise ValueError(
                f"weight_bits must have {words(self.in_features)} words per row, "
                f"got {self.weight_bits.shape}"
            )
        if prologue.has_affine and prologue.scale.shape[0] != self.in_features:
            raise ValueError(f"the prologue has {prologue.scale.shape[0]} features")
        check_padding_bits("weight_bits", self.weight_bits, self.in_features)
        check_exact(self.in_features)
        n_out = self.weight_bits.shape[0]
        self.alpha = as_vector("alpha", alpha, n_out)
        self.bias, self.has_bias = _bias(bias, n_out)
        self.input_scale = bool(input_scale)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = as_array("x", x, 2, np.float32)
        if x.shape[1] != self.in_features:
            raise ValueError(f"x has {x.shape[1]} features, the stage takes {self.in_features}")
        pro = self.prologue
        bits = np.empty((x.shape[0], self.weight_bits.shape[1]), np.uint64)
        k = np.empty(x.shape[0], np.float32)
        tree = np.zeros((_tree_rows(self.in_features), 1), np.float32)
        _prologue_packed(x, pro.scale, pro.shift, pro.lo, pro.hi, pro.has_affine,
                         pro.has_clamp, tree, bits, k)  # fmt: skip
        out = np.empty((x.shape[0], self.weight_bits.shape[0]), np.float32)
        if out.size:
            _gemm(
                bits, self.weight_bits, self.in_features, self.alpha,
                k if self.input_scale else ABSENT[0], self.bias, self.input_scale,
                self.has_bias, False, out, numba.get_num_threads(),
            )  # fmt: skip
        return out

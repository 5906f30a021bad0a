"""The maths of Binary-Weight-Networks and XNOR-Net, as pure tensor functions.

Rastegari, Ordonez, Redmon & Farhadi, "XNOR-Net: ImageNet Classification Using Binary
Convolutional Neural Networks", ECCV 2016 (arXiv:1603.05279).

- §3.1 (BWN): ``W ≈ α·B`` with ``B = sign(W)`` and ``α = mean(|W|)`` per output filter.
- §3.2 (XNOR-Net): inputs binarized too, ``I ≈ K·sign(I)`` with the per-position scale
  ``K = A ⊛ k``: ``A = mean_c |I|`` (one value per pixel), ``k`` a ``kh×kw`` box filter of
  value ``1/(kh·kw)``, ``⊛`` a convolution with the binary conv's own stride and (zero)
  padding. Then ``I ⊛ W ≈ (sign(I) ⊛ sign(W)) ⊙ K·α``.

``sign`` here is +1 for ``v >= 0`` and -1 otherwise (0 maps to +1, NaN to -1), the
convention of the packed kernels (:mod:`netshrink.kernels.binary`), so the float
simulation and the packed engine binarize every value alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "binary_sign",
    "filter_scale",
    "input_scale_conv2d",
    "input_scale_linear",
    "pairwise_sum",
    "sign",
]


def sign(x: Tensor) -> Tensor:
    """+1 where ``x >= 0``, -1 elsewhere (NaN included), in ``x``'s dtype. No gradient."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


class _SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, clip: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.clip = clip
        return sign(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= ctx.clip).to(grad.dtype), None


def binary_sign(x: Tensor, clip: float = 1.0) -> Tensor:
    """``sign(x)`` with the straight-through estimator (XNOR-Net §3.1, after Hubara et al.).

    forward:  ``y = sign(x)`` (+1 for ``x >= 0``, else -1)
    gradient: ``dL/dx = dL/dy · 1{|x| <= clip}``: passed straight through, cancelled where
    ``|x|`` is beyond ``clip`` (1 in the paper).
    """
    return _SignSTE.apply(x, clip)


def filter_scale(weight: Tensor) -> Tensor:
    """``α``: the mean of ``|W|`` over every dimension but the first, shape ``(out,)``.

    Differentiable: with ``W̃ = α·binary_sign(W)`` autograd gives the exact chain rule,
    ``dL/dW_i = α·1{|W_i| <= 1}·g_i + sign(W_i)/n · Σ_j sign(W_j) g_j`` (``g = dL/dW̃``, n
    weights per filter), which is XNOR-Net's equation 7 with the α term written out in full.
    """
    return weight.abs().flatten(1).mean(1)


def pairwise_sum(x: Tensor, dim: int) -> Tensor:
    """``Σ`` over ``dim`` in a fixed order: zero-padded to a power of two, then halved by
    ``x[:half] + x[half:]`` until one is left (the dimension kept, of size 1).

    Each step is an exactly rounded element-wise addition, so the result is the same to the
    bit on every CPU and in the packed kernels (:mod:`netshrink.kernels.xnor_stage`), which
    repeat the same tree; a library reduction (``Tensor.sum``) is free to choose its order.
    """
    n = x.shape[dim]
    size = 1 << max(0, (n - 1).bit_length())
    if size != n:
        shape = list(x.shape)
        shape[dim] = size - n
        x = torch.cat([x, x.new_zeros(shape)], dim)
    while size > 1:
        size //= 2
        x = x.narrow(dim, 0, size) + x.narrow(dim, size, size)
    return x


def input_scale_conv2d(
    x: Tensor,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int] | str,
    dilation: tuple[int, int] = (1, 1),
) -> Tensor:
    """``K`` of XNOR-Net §3.2 for a convolution: ``(N, C, H, W)`` → ``(N, Ho, Wo)``.

    ``A = mean_c |x|`` convolved with a box filter of ``1/(kh·kw)`` at the conv's stride,
    padding (zeros, as the conv pads its input; ``"valid"`` and ``"same"`` as
    ``F.conv2d`` reads them, an odd ``"same"`` total padded one more at the end) and
    dilation. Differentiable.

    Every sum has an order fixed here, so the packed kernels reproduce ``K`` to the bit:
    ``A = pairwise_sum_c(|x|) / C``; each window's sum runs along its rows first
    (``kx = 0, 1, …`` in turn), then adds the row sums (``ky = 0, 1, …``), and is divided
    by ``kh·kw``.
    """
    n_img, chans, height, width = x.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    if padding == "valid":
        padding = (0, 0)
    if padding == "same":
        (top, bottom), (left, right) = (
            (t // 2, t - t // 2) for t in (dh * (kh - 1), dw * (kw - 1))
        )
    else:
        (top, left), (bottom, right) = padding, padding
    a = pairwise_sum(x.abs(), 1) / chans  # (N, 1, H, W)
    a = F.pad(a, (left, right, top, bottom))
    out_h = (height + top + bottom - dh * (kh - 1) - 1) // sh + 1
    out_w = (width + left + right - dw * (kw - 1) - 1) // sw + 1
    rows = a[..., 0 : (out_w - 1) * sw + 1 : sw]  # kx = 0, every padded row
    for kx in range(1, kw):
        start = kx * dw
        rows = rows + a[..., start : start + (out_w - 1) * sw + 1 : sw]
    box = rows[..., 0 : (out_h - 1) * sh + 1 : sh, :]  # ky = 0
    for ky in range(1, kh):
        start = ky * dh
        box = box + rows[..., start : start + (out_h - 1) * sh + 1 : sh, :]
    return (box / (kh * kw)).squeeze(1)  # (N, Ho, Wo)


def input_scale_linear(x: Tensor) -> Tensor:
    """``K`` for a fully connected layer: ``mean |x|`` per sample, ``(N, C)`` → ``(N,)``
    (over the last dimension for inputs with more); the sum is :func:`pairwise_sum`."""
    return (pairwise_sum(x.abs(), -1) / x.shape[-1]).squeeze(-1)

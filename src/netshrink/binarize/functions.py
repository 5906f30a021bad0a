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


def input_scale_conv2d(
    x: Tensor,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int] = (1, 1),
) -> Tensor:
    """``K`` of XNOR-Net §3.2 for a convolution: ``(N, C, H, W)`` → ``(N, Ho, Wo)``.

    ``A = mean_c |x|`` convolved with a box filter of ``1/(kh·kw)`` at the conv's stride,
    padding (zeros, as the conv pads its input) and dilation. Differentiable.
    """
    a = x.abs().mean(1, keepdim=True)  # (N, 1, H, W)
    kh, kw = kernel_size
    box = torch.full((1, 1, kh, kw), 1.0 / (kh * kw), dtype=x.dtype, device=x.device)
    return F.conv2d(a, box, None, stride, padding, dilation).squeeze(1)  # (N, Ho, Wo)


def input_scale_linear(x: Tensor) -> Tensor:
    """``K`` for a fully connected layer: ``mean |x|`` per sample, ``(N, C)`` → ``(N,)``
    (over the last dimension for inputs with more)."""
    return x.abs().mean(-1)

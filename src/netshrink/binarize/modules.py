"""Binary ``Conv2d`` and ``Linear`` layers: BWN (binary weights) and XNOR (binary inputs too).

They subclass the float layers and keep their ``weight`` and ``bias`` Parameters: the real
weights are what the optimizer updates (XNOR-Net §3.1, "we keep the real-valued weights"),
the forward uses their signs, and the state-dict keys do not change. Forward, with ``B``
the ±1 signs and the scales of :mod:`netshrink.binarize.functions`::

    bwn:   y = (x ⊛ B) · α + b
    xnor:  y = ((sign(x) ⊛ B) · α) · K + b

computed in that order: ``sign(x) ⊛ B`` is a sum of ±1 products, exact in float32, and
the packed kernels apply ``α``, ``K`` and ``b`` in the same order, so the float
simulation and the packed engine agree to the bit.
"""

from __future__ import annotations

from typing import Self

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from netshrink.binarize.functions import (
    binary_sign,
    filter_scale,
    input_scale_conv2d,
    input_scale_linear,
    sign,
)

__all__ = ["MODES", "BinaryConv2d", "BinaryLinear", "is_binary"]

MODES = ("bwn", "xnor")


class _Binary:
    """What both binary layers add to their float parent."""

    mode: str = "bwn"
    input_scale: bool = True  # xnor: multiply by K (False: α only)
    clip: float = 1.0  # the straight-through estimator's cancel threshold

    def _setup(self, mode: str, input_scale: bool, clip: float) -> None:
        if mode not in MODES:
            raise ValueError(f"binary mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode, self.input_scale, self.clip = mode, bool(input_scale), float(clip)
        self._frozen: tuple[Tensor, Tensor] | None = None

    def freeze(self) -> None:
        """Inference only: compute ``sign(W)`` and ``α`` once instead of on every call
        (the packed engine does this for the layers it runs in float). The outputs do not
        change; later weight updates are ignored, so never freeze a layer being trained."""
        with torch.no_grad():
            self._frozen = (sign(self.weight), filter_scale(self.weight))

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self._frozen = None  # new weights: a frozen sign(W) and α would be stale
        super()._load_from_state_dict(*args, **kwargs)  # type: ignore[misc]

    def _weights(self) -> tuple[Tensor, Tensor]:
        """``(sign(W), α)`` with the straight-through estimator, or the frozen pair."""
        if self._frozen is not None:
            return self._frozen
        return binary_sign(self.weight, self.clip), filter_scale(self.weight)

    @classmethod
    def from_float(
        cls, layer: nn.Module, mode: str, input_scale: bool = True, clip: float = 1.0
    ) -> Self:
        """A binary layer sharing float ``layer``'s Parameters and buffers (no copy)."""
        binary = cls.__new__(cls)
        nn.Module.__init__(binary)
        # The float layer's settings (in/out sizes, stride, padding ...), not its internals.
        binary.__dict__.update({k: v for k, v in layer.__dict__.items() if not k.startswith("_")})
        if hasattr(layer, "_reversed_padding_repeated_twice"):  # Conv2d's padding_mode pads
            binary._reversed_padding_repeated_twice = layer._reversed_padding_repeated_twice
        binary._parameters = layer._parameters
        binary._buffers = layer._buffers
        binary.train(layer.training)
        binary._setup(mode, input_scale, clip)
        return binary

    def extra_repr(self) -> str:
        text = super().extra_repr()  # type: ignore[misc]
        scale = "" if self.mode == "bwn" or self.input_scale else ", input_scale=False"
        return f"{text}, mode={self.mode}{scale}"


class BinaryConv2d(_Binary, nn.Conv2d):
    """``nn.Conv2d`` computing with ``α·sign(W)`` (and, in xnor mode, ``K·sign(x)``)."""

    def forward(self, x: Tensor) -> Tensor:
        weight_sign, alpha = self._weights()  # (O, ...), (O,)
        scale = None
        if self.mode == "xnor":
            if self.input_scale:
                scale = input_scale_conv2d(
                    x, self.kernel_size, self.stride, self.padding, self.dilation
                )  # (N, Ho, Wo)
            x = binary_sign(x, self.clip)
        if self.padding_mode != "zeros":
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = 0
        else:
            padding = self.padding
        out = F.conv2d(
            x,
            weight_sign,
            None,
            self.stride,
            padding,
            self.dilation,
            self.groups,
        )  # (N, O, Ho, Wo)
        out = out * alpha.view(1, -1, 1, 1)
        if scale is not None:
            out = out * scale.unsqueeze(1)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return out


class BinaryLinear(_Binary, nn.Linear):
    """``nn.Linear`` computing with ``α·sign(W)`` (and, in xnor mode, ``K·sign(x)``)."""

    def forward(self, x: Tensor) -> Tensor:
        weight_sign, alpha = self._weights()  # (O, ...), (O,)
        scale = None
        if self.mode == "xnor":
            if self.input_scale:
                scale = input_scale_linear(x)  # (N,) or x's leading dims
            x = binary_sign(x, self.clip)
        out = F.linear(x, weight_sign)  # (N, O)
        out = out * alpha
        if scale is not None:
            out = out * scale.unsqueeze(-1)
        if self.bias is not None:
            out = out + self.bias
        return out


def is_binary(module: nn.Module) -> bool:
    """Whether ``module`` is a binary layer made by :func:`netshrink.binarize.binarize_`."""
    return isinstance(module, BinaryConv2d | BinaryLinear)

"""The packed inference engine: XNOR layers run on bit-packed popcount kernels.

:func:`to_packed` returns a copy of a binarized network in which every XNOR layer the
kernels of :mod:`netshrink.kernels.binary` can run is replaced by a packed module holding
its weight signs as 64-bit words; everything else (real-valued layers, BatchNorm,
pooling) stays PyTorch float. The packed modules compute exactly what the float
simulation of :class:`~netshrink.binarize.BinaryConv2d` computes: the same ±1 sums
(integers, exact), then ``α``, ``K`` and the bias applied in the same order, with ``α``
and ``K`` from the same torch functions, so outputs agree to the bit.

Layers that stay float, said once (a ``UserWarning``) and listed in the notes:

- BWN layers: their inputs are real-valued, so there is nothing to popcount; a BWN layer
  costs what a float one does (its gain is storage, 1 bit per weight). Such layers are
  frozen (``sign(W)`` and ``α`` computed once, not on every call).
- XNOR convolutions with groups, dilation or a padding mode other than zeros.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from netshrink.binarize.functions import filter_scale, input_scale_conv2d, input_scale_linear
from netshrink.binarize.modules import BinaryConv2d, BinaryLinear, is_binary
from netshrink.engine.packed_stages import fuse_stages
from netshrink.engine.registry import Engine, EngineNote, register_engine
from netshrink.errors import NetshrinkError
from netshrink.kernels import binary as kernels

__all__ = ["PackedBinaryConv2d", "PackedBinaryLinear", "PackedMaxPool2d", "to_packed"]


def _numpy(t: Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().cpu().float().contiguous().numpy().copy()


class PackedBinaryConv2d(nn.Module):
    """Inference-only XNOR convolution on packed sign bits (groups 1, dilation 1)."""

    def __init__(self, layer: BinaryConv2d) -> None:
        super().__init__()
        self.in_chans, self.out_chans = layer.in_channels, layer.out_channels
        self.kernel_size, self.stride = tuple(layer.kernel_size), tuple(layer.stride)
        self.padding = tuple(layer.padding)
        self.input_scale = layer.input_scale
        weight = layer.weight.detach().cpu().float()
        self.weight_bits = kernels.pack_conv_weight(weight.numpy())  # (O, kh, kw, Cw) uint64
        self.alpha = _numpy(filter_scale(weight))
        self.bias = _numpy(layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = x.detach().float().contiguous()  # (N, C, H, W)
        scale = None
        if self.input_scale:
            scale = input_scale_conv2d(x, self.kernel_size, self.stride, self.padding)
            scale = scale.contiguous().numpy()  # (N, Ho, Wo)
        out = kernels.binary_conv2d(
            x.numpy(), self.weight_bits, self.in_chans, self.kernel_size, self.stride,
            self.padding, self.alpha, scale, self.bias,
        )  # fmt: skip
        return torch.from_numpy(out)  # (N, O, Ho, Wo)

    def extra_repr(self) -> str:
        return (
            f"{self.in_chans}, {self.out_chans}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, packed"
        )


class PackedBinaryLinear(nn.Module):
    """Inference-only XNOR fully connected layer on packed sign bits."""

    def __init__(self, layer: BinaryLinear) -> None:
        super().__init__()
        self.in_features, self.out_features = layer.in_features, layer.out_features
        self.input_scale = layer.input_scale
        weight = layer.weight.detach().cpu().float()
        self.weight_bits = kernels.pack_rows(weight.numpy())  # (O, Cw) uint64
        self.alpha = _numpy(filter_scale(weight))
        self.bias = _numpy(layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = x.detach().float()
        lead = x.shape[:-1]
        x = x.reshape(-1, self.in_features).contiguous()  # (N, C)
        scale = input_scale_linear(x).contiguous().numpy() if self.input_scale else None
        out = kernels.binary_linear(
            x.numpy(), self.weight_bits, self.in_features, self.alpha, scale, self.bias
        )  # (N, O)
        return torch.from_numpy(out).reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, packed"


class PackedMaxPool2d(nn.Module):
    """Inference-only max pooling (no padding, dilation 1, floor mode) on the numba kernel.

    A max rounds nothing, and :func:`~netshrink.kernels.binary.max_pool2d` keeps PyTorch's
    NaN and tie rules, so the output is the same to the bit. PyTorch's NCHW pooling is the
    slowest layer of the small binary networks at batch 1 (64 channels at 28x28: ~250 µs
    against ~12 µs on one thread); other inputs (not 4-D float32) go to PyTorch.
    """

    def __init__(self, pool: nn.MaxPool2d) -> None:
        super().__init__()
        self.kernel_size = _pair(pool.kernel_size)
        self.stride = _pair(pool.stride if pool.stride is not None else pool.kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        if (
            x.dim() != 4
            or x.dtype != torch.float32
            or x.device.type != "cpu"
            or (not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last))
        ):  # PyTorch's channels-last pooling is fast (the fused engine's layout)
            return F.max_pool2d(x, self.kernel_size, self.stride)
        x = x.detach().contiguous()  # (N, C, H, W)
        return torch.from_numpy(kernels.max_pool2d(x.numpy(), self.kernel_size, self.stride))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, packed"


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _poolable(pool: nn.Module) -> bool:
    """A plain ``nn.MaxPool2d`` that :class:`PackedMaxPool2d` computes alike."""
    return (
        type(pool) is nn.MaxPool2d
        and _pair(pool.padding) == (0, 0)
        and _pair(pool.dilation) == (1, 1)
        and not pool.ceil_mode
        and not pool.return_indices
    )


def _why_float(layer: nn.Module) -> str:
    if layer.mode != "xnor":
        return "bwn: real-valued inputs, nothing to popcount"
    if isinstance(layer, BinaryConv2d):
        if layer.groups != 1:
            return f"groups={layer.groups} (the kernels run groups=1)"
        if tuple(layer.dilation) != (1, 1):
            return f"dilation={tuple(layer.dilation)} (the kernels run dilation 1)"
        if isinstance(layer.padding, str):
            return f"padding={layer.padding!r} (the kernels take explicit padding)"
        if layer.padding_mode != "zeros":
            return f"padding_mode={layer.padding_mode!r} (the kernels pad with zeros)"
    return ""


def to_packed(
    model: nn.Module, *, warn: bool = True, fuse: bool = True
) -> tuple[nn.Module, list[EngineNote]]:
    """A copy of binarized ``model`` (eval mode) with its XNOR layers on packed kernels.

    With ``fuse`` each packed layer runs as one XNOR stage with the BatchNorm and Hardtanh
    before it and the max pool after it (:mod:`netshrink.engine.packed_stages`); without,
    only the layers are replaced. Either way every output equals the float simulation's to
    the bit.

    Returns the copy and one :class:`EngineNote` per binary layer. Layers the kernels
    cannot run stay float (see the module docstring); with ``warn`` that is said once, in
    one ``UserWarning`` naming them. A model with no binary layer is an error.
    """
    binary = {name: m for name, m in model.named_modules() if is_binary(m)}
    if not binary:
        raise NetshrinkError(
            "packed engine: the model has no binary layer (binarize it first: "
            "`netshrink binarize` or `netshrink train --binarize`)"
        )
    packed = copy.deepcopy(model).eval()
    notes = []
    for name, layer in binary.items():
        reason = _why_float(layer)
        parent_name, _, child = name.rpartition(".")
        parent = packed.get_submodule(parent_name)
        if reason:
            getattr(parent, child).freeze()  # sign(W) and α once, not on every call
            notes.append(EngineNote(name, "float", reason))
            continue
        kind = PackedBinaryConv2d if isinstance(layer, BinaryConv2d) else PackedBinaryLinear
        setattr(parent, child, kind(layer))
        notes.append(EngineNote(name, "packed"))
    for name, pool in list(packed.named_modules()):
        if _poolable(pool):
            parent_name, _, child = name.rpartition(".")
            setattr(packed.get_submodule(parent_name), child, PackedMaxPool2d(pool))
    if fuse:
        packed, notes = fuse_stages(packed, notes)
    fallback = [n for n in notes if n.engine == "float"]
    if warn and fallback:
        reasons = sorted({n.reason for n in fallback})
        warnings.warn(
            f"packed engine: {len(fallback)} binary layer(s) run in float "
            f"({', '.join(n.layer for n in fallback)}): {'; '.join(reasons)}",
            stacklevel=2,
        )
    return packed, notes


register_engine(
    Engine("packed", "XNOR layers on the bit-packed popcount kernels, the rest float", to_packed)
)

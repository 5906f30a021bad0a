"""Shared helpers for the model tests: an independent parameter/MAC counter.

Deliberately separate from ``netshrink.profile``: forward hooks on Conv2d/Linear with the
papers.md convention (Conv MACs = C_out*H_out*W_out*(C_in/groups)*kH*kW, Linear MACs =
in*out; params = every ``nn.Parameter``). Models are built on the meta device, so counting
VGG-16 at 224 allocates and computes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch
from torch import nn

from netshrink.models import create


@dataclass
class Counts:
    params: int
    macs: int
    layer_macs: dict[str, int] = field(default_factory=dict)  # per Conv2d/Linear module
    layer_outputs: dict[str, tuple[int, ...]] = field(default_factory=dict)  # output shapes


def count(model: nn.Module, input_size: tuple[int, int, int]) -> Counts:
    """Parameters and MACs of one forward pass of a single (C, H, W) image."""
    counts = Counts(params=sum(p.numel() for p in model.parameters()), macs=0)
    names = {m: n for n, m in model.named_modules()}

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            c_out, h_out, w_out = output.shape[1:]
            k_h, k_w = module.kernel_size
            macs = c_out * h_out * w_out * (module.in_channels // module.groups) * k_h * k_w
        else:
            macs = module.in_features * module.out_features
        counts.layer_macs[names[module]] = macs
        counts.layer_outputs[names[module]] = tuple(output.shape[1:])
        counts.macs += macs

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    device = next(model.parameters()).device
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_size, device=device))
    finally:
        for h in handles:
            h.remove()
    return counts


def meta_model(name: str, **kwargs) -> nn.Module:
    """Build registered model ``name`` on the meta device (shapes only, no memory)."""
    with torch.device("meta"):
        return create(name, **kwargs)


def meta_counts(name: str, input_size: tuple[int, int, int], **kwargs) -> Counts:
    return count(meta_model(name, **kwargs), input_size)


@pytest.fixture
def counts():
    """``counts(name, input_size, **builder_kwargs) -> Counts`` on the meta device."""
    return meta_counts

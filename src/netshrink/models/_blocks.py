"""Pieces shared by several families: the fc6-fc8 classifier and the collapse check."""

from __future__ import annotations

from collections import OrderedDict

import torch.fx
from torch import Tensor, nn

__all__ = ["fc_classifier", "forward_features"]


def fc_classifier(in_features: int, num_classes: int) -> nn.Sequential:
    """AlexNet's and VGG's fc6 (4096) → fc7 (4096) → fc8, with ReLU and dropout 0.5."""
    return nn.Sequential(
        OrderedDict(
            fc6=nn.Linear(in_features, 4096),
            relu6=nn.ReLU(inplace=True),
            drop6=nn.Dropout(0.5),
            fc7=nn.Linear(4096, 4096),
            relu7=nn.ReLU(inplace=True),
            drop7=nn.Dropout(0.5),
            fc8=nn.Linear(4096, num_classes),
        )
    )


def _window_fits(x: Tensor, layer: nn.Conv2d | nn.MaxPool2d) -> bool:
    """True if ``layer``'s window fits in its padded input, i.e. its output is at least 1x1."""
    k, p = layer.kernel_size, layer.padding
    k = k[0] if isinstance(k, tuple) else k
    p = p[0] if isinstance(p, tuple) else p
    return min(x.shape[-2:]) + 2 * p >= k


def forward_features(features: nn.Sequential, x: Tensor, name: str, small_input: bool) -> Tensor:
    """Run ``features`` layer by layer, raising a clear ``ValueError`` where a window no
    longer fits (instead of torch's error deep inside, or a silent 0x0 map). Under
    ``torch.fx`` tracing (int8 FX quantization) shapes are symbolic: the layers run as is."""
    if isinstance(x, torch.fx.Proxy):
        return features(x)
    h, w = x.shape[-2:]
    for layer_name, layer in features.named_children():
        if isinstance(layer, nn.Conv2d | nn.MaxPool2d) and not _window_fits(x, layer):
            hint = "" if small_input else "; use small_input=True"
            raise ValueError(
                f"input {h}x{w} is too small for {name} "
                f"(feature map collapses at features.{layer_name}){hint}"
            )
        x = layer(x)
    return x

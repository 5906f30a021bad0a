"""MobileNet v1: Howard et al., "MobileNets: Efficient Convolutional Neural Networks for
Mobile Vision Applications", arXiv:1704.04861 (2017).

A standard 3x3/2 convolution followed by 13 ``DepthwiseSeparable`` blocks (3x3 depthwise
conv + BN + ReLU, then 1x1 pointwise conv + BN + ReLU), global average pooling and one
fully connected layer (Table 1). Table 1's last depthwise layer has stride 1 (its "s2" is a
typo: the map is already 7x7). No conv has a bias (BN follows each); the FC has one.
At alpha=1, 224: 4,231,976 parameters (4,210,088 without BN gamma/beta), 568,740,352 MACs;
1x1 convolutions carry 94.86% of the MACs and 74.59% of the parameters (Table 2).

Width multiplier (§3.3): every layer's channel count c becomes ``int(c * width_mult)``.
Every width in Table 1 is a multiple of 32, so alpha = 0.75, 0.5, 0.25 give whole
channels and the paper's 325/149/41 M MACs and 2.6/1.3/0.5 M parameters without any
divisibility rounding (no make_divisible needed). Resolution (the paper's rho) is just the
input size: 192/160/128 give 418/290/186 M MACs, thanks to the global average pool.

Small inputs (``small_input=True``): conv1 has stride 1 instead of 2 (there is no pooling
after the stem); a 28x28 image ends as 2x2 before the average pool. 3x3 convs with padding
1 never shrink a map below 1x1, so no input collapses.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from netshrink.models._registry import register_model

__all__ = ["DepthwiseSeparable", "MobileNetV1", "mobilenet_v1"]

# (output channels, stride) of the 13 depthwise separable blocks in Table 1.
BLOCKS = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),  # stride 1: Table 1's "s2" here is a typo
)


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise conv (one filter per channel) then a 1x1 pointwise conv, each + BN + ReLU.

    MACs: 9*M*Df^2 + M*N*Df^2 instead of a standard conv's 9*M*N*Df^2 (§3.1).
    """

    def __init__(self, in_chans: int, out_chans: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(
            in_chans, in_chans, 3, stride=stride, padding=1, groups=in_chans, bias=False
        )
        self.bn_depthwise = nn.BatchNorm2d(in_chans)
        self.pointwise = nn.Conv2d(in_chans, out_chans, 1, bias=False)
        self.bn_pointwise = nn.BatchNorm2d(out_chans)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn_depthwise(self.depthwise(x)))  # (B, M, H/s, W/s)
        return self.relu(self.bn_pointwise(self.pointwise(x)))  # (B, N, H/s, W/s)


class MobileNetV1(nn.Module):
    """conv1 (32 filters, 3x3/2), 13 depthwise separable blocks, global pool, fc."""

    def __init__(
        self,
        width_mult: float = 1.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        small_input: bool = False,
    ) -> None:
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")

        def width(c: int) -> int:
            scaled = int(c * width_mult)
            if scaled < 1:
                raise ValueError(f"width_mult={width_mult} leaves a layer of {c} with 0 channels")
            return scaled

        chans = width(32)
        self.conv1 = nn.Conv2d(
            in_chans, chans, 3, stride=1 if small_input else 2, padding=1, bias=False
        )
        self.bn1 = nn.BatchNorm2d(chans)
        self.relu = nn.ReLU(inplace=True)
        blocks = []
        for out_chans, stride in BLOCKS:
            blocks.append(DepthwiseSeparable(chans, width(out_chans), stride))
            chans = width(out_chans)
        self.blocks = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))  # the paper's 7x7 average pool at 224
        self.fc = nn.Linear(chans, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))  # (B, 32a, H/2, W/2)
        x = self.blocks(x)  # (B, 1024a, H/32, W/32)
        x = torch.flatten(self.avgpool(x), 1)  # (B, 1024a)
        return self.fc(x)  # (B, num_classes)


@register_model(
    family="mobilenet",
    input_size=(3, 224, 224),
    paper="Howard et al. 2017, MobileNet v1",
    published={"params": 4_231_976, "macs": 568_740_352},
)
def mobilenet_v1(
    num_classes: int = 1000,
    in_chans: int = 3,
    small_input: bool = False,
    width_mult: float = 1.0,
) -> nn.Module:
    return MobileNetV1(
        width_mult=width_mult, num_classes=num_classes, in_chans=in_chans, small_input=small_input
    )

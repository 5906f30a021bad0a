"""ShuffleNet v1: Zhang, Zhou, Lin & Sun, "ShuffleNet: An Extremely Efficient Convolutional
Neural Network for Mobile Devices", CVPR 2018 (arXiv:1707.01083).

conv1 (24 filters, 3x3/2) and a 3x3/2 max-pool, three stages of ``ShuffleUnit`` (4, 8, 4
units), global average pooling and a fully connected layer (Table 1). A unit is a 1x1 group
conv (bottleneck = stage output / 4) + BN + ReLU, a ``channel_shuffle``, a 3x3 depthwise
conv + BN (no ReLU after it, §3.2), and a 1x1 group conv + BN. Stride-1 units add an
identity shortcut; the first unit of a stage has stride 2, a 3x3/2 average-pool shortcut,
and concatenates it with its branch, whose output is (out - in) channels. The first 1x1
conv of stage 2 is not grouped (its input has only 24 channels). BN everywhere; no conv
has a bias, the FC does. Stage outputs at 1x: g=1 144, g=2 200, g=3 240, g=4 272, g=8 384
(doubling per stage). 1x, g=3: 1,865,728 parameters, 137,460,672 MACs with the FC.

Scale ("s x", Table 2) rule, which keeps every group conv valid:

- stage output channels: s * c rounded to the nearest multiple of 4*g (so the bottleneck
  c/4 divides into g groups);
- conv1: max(12, 24 * s) rounded to the nearest multiple of g (so a stride-2 branch's
  out - in divides into g groups). The floor of 12 is ours: the paper gives conv1 12 at
  0.5x, and 0.25x only reaches its 13 M with conv1 kept at 12 (6 filters give 11 M).

At 1x nothing moves. Table 2's complexities include the FC: 0.5x g=3 (conv1 12, stages
120/240/480) has 37.6 M MACs (38), 0.25x g=3 (conv1 12, 60/120/240) 13.3 M (13); Table 1's
1x figures (143/140/137/133/137 M for g=1/2/3/4/8) count the conv layers only.

``shuffle=False`` is the paper's no-shuffle ablation (same parameters and MACs).

Small inputs (``small_input=True``): conv1 has stride 1; the max-pool and every stage stay,
so 28x28 reaches stage 4 as 2x2 (a quarter of its 7x7 ImageNet side, as in the other
families). Every 3x3 window here is padded by 1, so no input collapses.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from netshrink.models._registry import register_model

__all__ = ["ShuffleUnit", "ShuffleNetV1", "channel_shuffle", "shufflenet_v1"]

# Stage output channels at 1x per group count (Table 1).
STAGE_CHANNELS = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}
STAGE_REPEATS = (4, 8, 4)


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave channels across groups (§3.1): view C as (groups, C/groups), transpose, flatten.

    Channel ``j*n + k`` (group j, position k) moves to position ``k*groups + j``.
    """
    b, c, h, w = x.shape
    x = x.view(b, groups, c // groups, h, w)  # (B, g, C/g, H, W)
    return x.transpose(1, 2).reshape(b, c, h, w)  # (B, C, H, W), groups interleaved


def _round_to(value: float, divisor: int) -> int:
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``divisor``)."""
    return max(divisor, int(value / divisor + 0.5) * divisor)


class ShuffleUnit(nn.Module):
    """ShuffleNet unit (Fig. 2b for stride 1, Fig. 2c for stride 2)."""

    def __init__(
        self,
        in_chans: int,
        out_chans: int,
        stride: int,
        groups: int,
        first_groups: int | None = None,
        shuffle: bool = True,
    ) -> None:
        super().__init__()
        self.stride, self.groups, self.shuffle = stride, groups, shuffle
        mid = out_chans // 4
        branch_out = out_chans - in_chans if stride == 2 else out_chans
        first_groups = groups if first_groups is None else first_groups
        self.gconv1 = nn.Conv2d(in_chans, mid, 1, groups=first_groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.dwconv = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.gconv2 = nn.Conv2d(mid, branch_out, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(branch_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.gconv1(x)))  # (B, mid, H, W)
        if self.shuffle and self.groups > 1:
            out = channel_shuffle(out, self.groups)
        out = self.bn2(self.dwconv(out))  # (B, mid, H/s, W/s); no ReLU here (§3.2)
        out = self.bn3(self.gconv2(out))  # (B, branch_out, H/s, W/s)
        if self.stride == 2:
            return self.relu(torch.cat([self.shortcut(x), out], dim=1))  # (B, out, H/2, W/2)
        return self.relu(x + out)  # (B, out, H, W)


class ShuffleNetV1(nn.Module):
    """conv1, max-pool, stages 2-4 of ShuffleUnits, global pool, fc."""

    def __init__(
        self,
        groups: int = 3,
        scale: float = 1.0,
        shuffle: bool = True,
        num_classes: int = 1000,
        in_chans: int = 3,
        small_input: bool = False,
    ) -> None:
        super().__init__()
        if groups not in STAGE_CHANNELS:
            raise ValueError(f"groups must be one of {sorted(STAGE_CHANNELS)}, got {groups}")
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        stem = _round_to(max(12.0, 24 * scale), groups)
        self.conv1 = nn.Conv2d(
            in_chans, stem, 3, stride=1 if small_input else 2, padding=1, bias=False
        )
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        chans = stem
        stages = zip(STAGE_CHANNELS[groups], STAGE_REPEATS, strict=True)
        for stage, (width, repeats) in enumerate(stages, start=2):
            out_chans = _round_to(width * scale, 4 * groups)
            units = []
            for i in range(repeats):
                first_groups = 1 if (stage == 2 and i == 0) else groups  # 24 input channels
                stride = 2 if i == 0 else 1
                units.append(ShuffleUnit(chans, out_chans, stride, groups, first_groups, shuffle))
                chans = out_chans
            self.add_module(f"stage{stage}", nn.Sequential(*units))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
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
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, 24, H/4, W/4)
        x = self.stage2(x)  # (B, c2, H/8, W/8)
        x = self.stage3(x)  # (B, c3, H/16, W/16)
        x = self.stage4(x)  # (B, c4, H/32, W/32)
        x = torch.flatten(self.avgpool(x), 1)  # (B, c4)
        return self.fc(x)  # (B, num_classes)


@register_model(
    family="shufflenet",
    input_size=(3, 224, 224),
    paper="Zhang et al. 2018, ShuffleNet v1",
    published={"params": 1_865_728, "macs": 137_460_672},
)
def shufflenet_v1(
    num_classes: int = 1000,
    in_chans: int = 3,
    small_input: bool = False,
    groups: int = 3,
    scale: float = 1.0,
    shuffle: bool = True,
) -> nn.Module:
    return ShuffleNetV1(
        groups=groups,
        scale=scale,
        shuffle=shuffle,
        num_classes=num_classes,
        in_chans=in_chans,
        small_input=small_input,
    )
